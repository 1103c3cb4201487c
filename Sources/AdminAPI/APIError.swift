import Foundation
import Hummingbird

/// An API error as INTERFACE.md spells it: `{"error": "...", "detail": "...", "field": "..."}`
/// with a fitting status. Every failure of a route is one of these, so clients (the console,
/// scripts) read one shape.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var detail: String
    /// The body field that is wrong, for a 400 about one field.
    public var field: String?
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ detail: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
    }

    static func badField(_ field: String, _ detail: String) -> APIError {
        APIError(.badRequest, "bad_request", "\(field): \(detail)", field: field)
    }

    static func badRequest(_ detail: String) -> APIError { APIError(.badRequest, "bad_request", detail) }

    static func notFound(_ detail: String) -> APIError { APIError(.notFound, "not_found", detail) }

    static func conflict(_ detail: String, field: String? = nil) -> APIError {
        APIError(.conflict, "conflict", detail, field: field)
    }

    struct Body: Encodable {
        var error: String
        var detail: String
        var field: String?
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try JSONBody.response(Body(error: code, detail: detail, field: field), status: status)
        for field in headers { response.headers.append(field) }
        return response
    }
}

/// Turns every error a route or Hummingbird throws (its 404 for an unknown path, 413 for a body
/// too large) into ``APIError``'s JSON shape.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as HTTPResponseError {
            let status = error.status
            let code: String
            switch status {
            case .notFound: code = "not_found"
            case .contentTooLarge: code = "body_too_large"
            case .methodNotAllowed: code = "method_not_allowed"
            case .badRequest: code = "bad_request"
            default: code = status.code >= 500 ? "internal_error" : "error"
            }
            return try APIError(status, code, status.reasonPhrase).response(from: request, context: context)
        }
    }
}

/// JSON responses with one encoder configuration (snake_case keys are spelled by the types).
enum JSONBody {
    /// One configuration for every body and event (JSONEncoder is safe to share: it keeps no
    /// state between calls).
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try encoder.encode(value)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}
