import Foundation
import Testing

@testable import AdminAPI

/// `/openapi.json` is compiled into the binary as it is written (Console/openapi.json): these
/// tests hold it to the router, so that the document cannot drift from what the server does.
@Suite(.timeLimit(.minutes(1))) struct OpenAPIDocumentTests {
    /// The operation keys of an OpenAPI path item (everything else in it is not an operation).
    static let methods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    /// One operation of the document: `METHOD PATH` (as ``AdminEndpoint/routeList`` writes it),
    /// its path, and the operation object.
    struct Operation {
        var route: String
        var path: String
        var object: [String: Any]
    }

    /// The embedded bytes, parsed.
    static func document() throws -> [String: Any] {
        let parsed = try JSONSerialization.jsonObject(with: Data(PackageResources.openapi_json))
        return try #require(parsed as? [String: Any], "the document is not a JSON object")
    }

    static func operations() throws -> [Operation] {
        let paths = try #require(try document()["paths"] as? [String: Any], "the document has no paths")
        var operations: [Operation] = []
        for (path, item) in paths {
            let item = try #require(item as? [String: Any], "path item \(path) is not an object")
            for (method, operation) in item where methods.contains(method) {
                let operation = try #require(operation as? [String: Any], "\(method) \(path) is not an object")
                operations.append(Operation(route: "\(method.uppercased()) \(path)", path: path, object: operation))
            }
        }
        return operations.sorted { $0.route < $1.route }
    }

    @Test func isOpenAPI31() throws {
        #expect(try Self.document()["openapi"] as? String == "3.1.0")
    }

    @Test func documentsEveryRouteAndNothingElse() throws {
        let documented = try Self.operations().map(\.route)
        let routes = AdminEndpoint.routeList
        #expect(Set(routes).count == routes.count, "a route is registered twice")
        #expect(
            Set(routes).subtracting(documented).sorted() == [],
            "routes of AdminEndpoint missing from openapi.json"
        )
        #expect(
            Set(documented).subtracting(routes).sorted() == [],
            "operations of openapi.json that AdminEndpoint does not route"
        )
    }

    @Test func tokenOperationsDeclare401AndBodiesDeclare400() throws {
        for operation in try Self.operations() {
            let responses = try #require(
                operation.object["responses"] as? [String: Any],
                "\(operation.route) has no responses"
            )
            if operation.path.hasPrefix("/api/") || operation.path.hasPrefix("/provision/") {
                #expect(responses["401"] != nil, "\(operation.route) needs the token but does not declare 401")
            }
            if operation.object["requestBody"] != nil {
                #expect(responses["400"] != nil, "\(operation.route) takes a body but does not declare 400")
            }
        }
    }

    @Test func operationIDsAndSecurityFollowTheEndpoints() throws {
        let operations = Dictionary(uniqueKeysWithValues: try Self.operations().map { ($0.route, $0.object) })
        for endpoint in AdminEndpoint.allCases {
            let route = "\(endpoint.method.rawValue) \(endpoint.path)"
            let operation = try #require(operations[route], "\(route) is not documented")
            #expect(operation["operationId"] as? String == endpoint.rawValue, "\(route): operationId")
            let security = try #require(operation["security"] as? [Any], "\(route) does not say its security")
            #expect(security.isEmpty == !endpoint.needsToken, "\(route): security does not match needsToken")
        }
    }
}
