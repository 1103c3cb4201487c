import Foundation
import SIPCore
import Testing

/// Hand-written requests for the raw-socket tests, addressed so that the server can answer them
/// (the Via's sent-by is the socket's own address, with `rport`, RFC 3581).
enum SIPRequests {
    static func via(_ transport: Transport, localPort: Int, branch: String = newBranch()) -> String {
        "Via: SIP/2.0/\(transport.rawValue.uppercased()) 127.0.0.1:\(localPort);branch=\(branch);rport"
    }

    static func newBranch() -> String { "z9hG4bK-e2e-\(UUID().uuidString.prefix(12))" }

    /// An OPTIONS to the platform domain (RFC 3261 §11), the liveness probe.
    static func options(_ transport: Transport, localPort: Int, callID: String = UUID().uuidString) -> String {
        """
        OPTIONS sip:\(DirectoryFixture.domain) SIP/2.0\r
        \(via(transport, localPort: localPort))\r
        Max-Forwards: 70\r
        From: <sip:probe@127.0.0.1:\(localPort)>;tag=probe\(localPort)\r
        To: <sip:\(DirectoryFixture.domain)>\r
        Call-ID: \(callID)\r
        CSeq: 1 OPTIONS\r
        Accept: application/sdp\r
        Content-Length: 0\r
        \r

        """
    }

    /// The header section of a request whose Via, From, To, Call-ID and CSeq are readable, so
    /// that a 400 can be built for it (RFC 3261 §8.2.6.2); `requestLine` and the rest vary.
    static func readableHead(
        _ transport: Transport,
        localPort: Int,
        requestLine: String? = nil,
        callID: String
    ) -> String {
        """
        \(requestLine ?? "OPTIONS sip:\(DirectoryFixture.domain) SIP/2.0")\r
        \(via(transport, localPort: localPort))\r
        Max-Forwards: 70\r
        From: <sip:probe@127.0.0.1:\(localPort)>;tag=bad\(localPort)\r
        To: <sip:\(DirectoryFixture.domain)>\r
        Call-ID: \(callID)\r
        CSeq: 7 OPTIONS\r

        """
    }
}

/// The server still serves: an OPTIONS on a fresh socket gets a 200 within `probeTimeout`.
enum Liveness {
    /// How fast a healthy server answers an OPTIONS on loopback, even after abuse.
    static let probeTimeout: Duration = .seconds(2)

    static func expectAnswersOptions(
        _ server: ServerProcess,
        over transport: Transport,
        after what: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let socket = try LoopbackSocket(transport, to: transport.port(of: server))
        let callID = "probe-\(UUID().uuidString)"
        try await socket.send(SIPRequests.options(transport, localPort: socket.localPort, callID: callID))
        let response = try await socket.receiveResponse(within: probeTimeout)
        #expect(
            response?.statusCode == 200,
            "after \(what): OPTIONS over \(transport) got \(response.map { "\($0.statusCode) \($0.reasonPhrase)" } ?? "no answer") within \(probeTimeout); server output:\n\(server.output)",
            sourceLocation: sourceLocation
        )
        if let response {
            #expect(
                response.callID == callID,
                "after \(what): the 200 answers our OPTIONS",
                sourceLocation: sourceLocation
            )
        }
    }
}
