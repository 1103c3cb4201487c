import BusyLampCore
import SIPCore
import Testing

@Suite("RequestGate", .timeLimit(.minutes(1)))
struct RequestGateTests {
    static let gate = RequestGate(capabilities: .blfAndCalls, localHosts: ["sip.busylamp.test", "localhost"])

    struct NotARequest: Error {}

    static func request(_ startLine: String, method: String, extraHeaders: [String] = []) throws -> SIPRequest {
        let lines =
            [
                startLine,
                "Via: SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bK-gate",
                "Max-Forwards: 70",
                "From: <sip:201@sip.busylamp.test>;tag=a1",
                "To: <sip:202@sip.busylamp.test>",
                "Call-ID: gate-1@192.0.2.4",
                "CSeq: 1 \(method)",
            ] + extraHeaders + ["Content-Length: 0"]
        let text = lines.joined(separator: "\r\n") + "\r\n\r\n"
        guard case .request(let request) = try SIPParser().parse(Array(text.utf8)) else { throw NotARequest() }
        return request
    }

    @Test func passesAKnownMethodForALocalSIPURI() throws {
        #expect(
            Self.gate.refusal(of: try Self.request("OPTIONS sip:sip.busylamp.test SIP/2.0", method: "OPTIONS")) == nil
        )
        // Host names compare without case (RFC 3261 §19.1.4).
        #expect(
            Self.gate.refusal(of: try Self.request("REGISTER sip:SIP.BusyLamp.Test SIP/2.0", method: "REGISTER")) == nil
        )
        #expect(
            Self.gate.refusal(
                of: try Self.request(
                    "OPTIONS sip:localhost SIP/2.0",
                    method: "OPTIONS",
                    extraHeaders: ["Require: replaces"]
                )
            ) == nil
        )
    }

    @Test func refusesAnUnknownMethodWith501AndTheCapabilities() throws {
        let refusal = Self.gate.refusal(
            of: try Self.request("FROBNICATE sip:sip.busylamp.test SIP/2.0", method: "FROBNICATE")
        )
        #expect(refusal == RequestGate.Refusal(status: 501, includeCapabilities: true))
    }

    @Test func refusesANonSIPSchemeWith416() throws {
        let refusal = Self.gate.refusal(of: try Self.request("OPTIONS tel:+15551234 SIP/2.0", method: "OPTIONS"))
        #expect(refusal?.status == 416)
        // SIPS is a SIP URI.
        #expect(
            Self.gate.refusal(of: try Self.request("OPTIONS sips:sip.busylamp.test SIP/2.0", method: "OPTIONS")) == nil
        )
    }

    @Test func refusesAForeignDomainWith404ExceptForSubscribeAndInvite() throws {
        let refusal = Self.gate.refusal(of: try Self.request("REGISTER sip:example.org SIP/2.0", method: "REGISTER"))
        #expect(
            refusal == RequestGate.Refusal(status: 404, reason: "Domain Not Served Here", countedAs: "foreign_domain")
        )
        // Their own layers check the host after identifying the sender.
        #expect(
            Self.gate.refusal(of: try Self.request("SUBSCRIBE sip:202@example.org SIP/2.0", method: "SUBSCRIBE")) == nil
        )
        #expect(Self.gate.refusal(of: try Self.request("INVITE sip:202@example.org SIP/2.0", method: "INVITE")) == nil)
    }

    @Test func refusesUnknownRequiredOptionTagsWith420AndUnsupported() throws {
        let request = try Self.request(
            "OPTIONS sip:sip.busylamp.test SIP/2.0",
            method: "OPTIONS",
            extraHeaders: ["Require: replaces, 100rel, gruu"]
        )
        let refusal = Self.gate.refusal(of: request)
        #expect(refusal?.status == 420)
        #expect(refusal?.headers == [SIPHeaders.Field(name: .unsupported, value: "100rel, gruu")])
    }

    @Test func checksInRFCOrder() throws {
        // An unknown method with a tel: URI and a foreign Require: the method is the first fault.
        let request = try Self.request("FROB tel:+1555 SIP/2.0", method: "FROB", extraHeaders: ["Require: gruu"])
        #expect(Self.gate.refusal(of: request)?.status == 501)
        let scheme = try Self.request("OPTIONS tel:+1555 SIP/2.0", method: "OPTIONS", extraHeaders: ["Require: gruu"])
        #expect(Self.gate.refusal(of: scheme)?.status == 416)
        let domain = try Self.request(
            "OPTIONS sip:example.org SIP/2.0",
            method: "OPTIONS",
            extraHeaders: ["Require: gruu"]
        )
        #expect(Self.gate.refusal(of: domain)?.status == 404)
    }
}
