import SIPCore
import Testing

@testable import SIPTransactions

/// Messages for the tests, parsed from text as they would arrive.
enum TestMessages {
    static func request(_ lines: [String]) throws -> SIPRequest {
        let text = lines.joined(separator: "\r\n") + "\r\n\r\n"
        guard case .request(let request) = try SIPParser().parse(Array(text.utf8)) else {
            throw TestFailure("not a request")
        }
        return request
    }

    static func invite(
        branch: String = "z9hG4bK776asdhds",
        sentBy: String = "pc33.atlanta.example.com:5060",
        transport: String = "UDP",
        toTag: String? = nil
    ) throws -> SIPRequest {
        try request([
            "INVITE sip:bob@biloxi.example.com SIP/2.0",
            "Via: SIP/2.0/\(transport) \(sentBy);branch=\(branch)",
            "Max-Forwards: 70",
            "Route: <sip:proxy.example.com;lr>",
            "To: Bob <sip:bob@biloxi.example.com>" + (toTag.map { ";tag=\($0)" } ?? ""),
            "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
            "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
            "CSeq: 314159 INVITE",
            "Timestamp: 54",
            "Contact: <sip:alice@pc33.atlanta.example.com>",
        ])
    }

    static func register(branch: String = "z9hG4bKnashds7") throws -> SIPRequest {
        try request([
            "REGISTER sip:registrar.biloxi.example.com SIP/2.0",
            "Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=\(branch)",
            "Max-Forwards: 70",
            "To: Bob <sip:bob@biloxi.example.com>",
            "From: Bob <sip:bob@biloxi.example.com>;tag=456248",
            "Call-ID: 843817637684230@998sdasdh09",
            "CSeq: 1826 REGISTER",
            "Contact: <sip:bob@192.0.2.4>",
            "Expires: 7200",
        ])
    }

    /// The ACK an RFC 3261 UAC sends for a non-2xx: same branch as the INVITE.
    static func ack(for invite: SIPRequest, toTag: String, branch: String? = nil) throws -> SIPRequest {
        let via =
            branch.map { "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=\($0)" }
            ?? invite.headers.listElements(.via)[0]
        return try request([
            "ACK \(invite.uri) SIP/2.0",
            "Via: \(via)",
            "Max-Forwards: 70",
            "To: Bob <sip:bob@biloxi.example.com>;tag=\(toTag)",
            "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
            "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
            "CSeq: 314159 ACK",
        ])
    }

    static func cancel(for invite: SIPRequest) throws -> SIPRequest {
        try request([
            "CANCEL \(invite.uri) SIP/2.0",
            "Via: \(invite.headers.listElements(.via)[0])",
            "Max-Forwards: 70",
            "To: \(invite.headers[.to]!)",
            "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
            "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
            "CSeq: 314159 CANCEL",
        ])
    }

    /// A response to `request` built as RFC 3261 §8.2.6.2 says.
    static func response(
        _ statusCode: Int,
        to request: SIPRequest,
        toTag: String? = nil,
        extraHeaders: [(SIPHeaderName, String)] = []
    ) -> SIPResponse {
        var headers = SIPHeaders()
        for via in request.headers.values(.via) { headers.add(.via, via) }
        headers.add(.from, request.headers[.from]!)
        var to = request.to!
        if let toTag { to.tag = toTag }
        headers.add(.to, to.description)
        headers.add(.callID, request.callID!)
        headers.add(.cseq, request.headers[.cseq]!)
        for (name, value) in extraHeaders { headers.add(name, value) }
        return SIPResponse(statusCode: statusCode, headers: headers)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
