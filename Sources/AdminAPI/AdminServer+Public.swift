import BusyLampCore
import BusyLampProvisioning
import Foundation
import Hummingbird

/// Provisioning files and health.
extension AdminServer {
    /// `GET /provision/{vendor}/{account}/{extension}`: the line's BLF keys in the vendor's
    /// own format (``PhoneProvisioning``), as a file to download.
    func provision(
        vendor: String,
        accountID: String,
        extensionNumber: String,
        request: Request
    ) async throws
        -> Response
    {
        guard let phoneVendor = PhoneVendor(rawValue: vendor.lowercased()) else {
            throw APIError.notFound(
                "no provisioning for vendor \"\(vendor)\": one of \(PhoneVendor.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        let directory = try await editor.directory()
        let line = try Self.line(accountID, extensionNumber, in: directory)
        // Phones reach the server at the address the operator used for this request, when it
        // says one; else the platform domain.
        let document = PhoneProvisioning.render(phoneVendor, for: line, in: directory, server: nil)
        return Response(
            status: .ok,
            headers: [
                .contentType: document.contentType,
                .contentDisposition: "attachment; filename=\"\(document.fileName)\"",
                .cacheControl: "no-store",
            ],
            body: ResponseBody(byteBuffer: ByteBuffer(string: document.body))
        )
    }

    /// `/healthz`: the store answers and the SIP listeners are bound.
    func health() async throws -> Response {
        let storeOK = (try? store.platformSettings()) != nil
        let listeners = await server.boundListenerCount()
        let healthy = storeOK && listeners > 0
        return try JSONBody.response(
            API.HealthBody(
                status: healthy ? "ok" : "unhealthy",
                store: storeOK ? "ok" : "unreachable",
                sip_listeners: listeners
            ),
            status: healthy ? .ok : .serviceUnavailable
        )
    }
}
