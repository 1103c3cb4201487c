import Foundation
import SIPCore
import Testing

/// What RFC 4475 says an element must do with one of its messages.
enum TortureExpectation: Sendable, CustomStringConvertible {
    /// §3.1.1 and the syntactically valid cases: must parse.
    case parses
    /// Must be refused by the parser with this status and a reason phrase naming the fault.
    case refused(status: Int, reasonNames: String)
    /// Parses; the transaction or application layer then acts (the note says how).
    case parsesThenApplication(String)

    var description: String {
        switch self {
        case .parses: return "parses"
        case .refused(let status, let reason): return "refused \(status) (\(reason))"
        case .parsesThenApplication(let note): return "parses; \(note)"
        }
    }
}

struct TortureCase: Sendable, CustomStringConvertible {
    var section: String
    var name: String
    var expectation: TortureExpectation
    var description: String { "§\(section) \(name)" }
}

/// Every message of RFC 4475 with the RFC's verdict.
let rfc4475Cases: [TortureCase] = [
    // §3.1.1 Valid messages
    .init(section: "3.1.1.1", name: "wsinv", expectation: .parses),
    .init(
        section: "3.1.1.2",
        name: "intmeth",
        expectation: .parsesThenApplication("unknown method: a UAS answers 501")
    ),
    .init(section: "3.1.1.3", name: "esc01", expectation: .parses),
    .init(section: "3.1.1.4", name: "escnull", expectation: .parses),
    .init(section: "3.1.1.5", name: "esc02", expectation: .parsesThenApplication("RE%47IST%45R is not REGISTER: 501")),
    .init(section: "3.1.1.6", name: "lwsdisp", expectation: .parses),
    .init(section: "3.1.1.7", name: "longreq", expectation: .parses),
    .init(section: "3.1.1.8", name: "dblreq", expectation: .parses),
    .init(section: "3.1.1.9", name: "semiuri", expectation: .parses),
    .init(section: "3.1.1.10", name: "transports", expectation: .parses),
    .init(section: "3.1.1.11", name: "mpart01", expectation: .parses),
    .init(section: "3.1.1.12", name: "unreason", expectation: .parses),
    .init(section: "3.1.1.13", name: "noreason", expectation: .parses),
    // §3.1.2 Invalid messages
    .init(section: "3.1.2.1", name: "badinv01", expectation: .refused(status: 400, reasonNames: "Via")),
    .init(section: "3.1.2.2", name: "clerr", expectation: .refused(status: 400, reasonNames: "Content-Length")),
    .init(section: "3.1.2.3", name: "ncl", expectation: .refused(status: 400, reasonNames: "Content-Length")),
    .init(section: "3.1.2.4", name: "scalar02", expectation: .refused(status: 400, reasonNames: "CSeq")),
    // A response: the element discards it (makeResponse gives nil).
    .init(section: "3.1.2.5", name: "scalarlg", expectation: .refused(status: 400, reasonNames: "CSeq")),
    .init(section: "3.1.2.6", name: "quotbal", expectation: .refused(status: 400, reasonNames: "To")),
    .init(section: "3.1.2.7", name: "ltgtruri", expectation: .refused(status: 400, reasonNames: "Request-URI")),
    .init(section: "3.1.2.8", name: "lwsruri", expectation: .refused(status: 400, reasonNames: "Request-Line")),
    .init(section: "3.1.2.9", name: "lwsstart", expectation: .refused(status: 400, reasonNames: "Request-Line")),
    .init(section: "3.1.2.10", name: "trws", expectation: .refused(status: 400, reasonNames: "Request-Line")),
    .init(section: "3.1.2.11", name: "escruri", expectation: .refused(status: 400, reasonNames: "Request-URI")),
    .init(section: "3.1.2.12", name: "baddate", expectation: .refused(status: 400, reasonNames: "Date")),
    .init(section: "3.1.2.13", name: "regbadct", expectation: .refused(status: 400, reasonNames: "Contact")),
    .init(section: "3.1.2.14", name: "badaspec", expectation: .refused(status: 400, reasonNames: "To")),
    .init(section: "3.1.2.15", name: "baddn", expectation: .refused(status: 400, reasonNames: "From")),
    .init(section: "3.1.2.16", name: "badvers", expectation: .refused(status: 505, reasonNames: "Version")),
    .init(section: "3.1.2.17", name: "mismatch01", expectation: .refused(status: 400, reasonNames: "CSeq Method")),
    // The RFC prefers 501 but accepts 400; the mismatch is found before the method is judged.
    .init(section: "3.1.2.18", name: "mismatch02", expectation: .refused(status: 400, reasonNames: "CSeq Method")),
    .init(section: "3.1.2.19", name: "bigcode", expectation: .refused(status: 400, reasonNames: "Status-Line")),
    // §3.2 Transaction layer
    .init(
        section: "3.2.1",
        name: "badbranch",
        expectation: .parsesThenApplication(
            "branch is the bare magic cookie: reject 400 statelessly or match RFC 2543-style"
        )
    ),
    // §3.3 Application layer
    .init(section: "3.3.1", name: "insuf", expectation: .refused(status: 400, reasonNames: "Missing")),
    .init(section: "3.3.2", name: "unkscm", expectation: .parsesThenApplication("unknown Request-URI scheme: 416")),
    .init(section: "3.3.3", name: "novelsc", expectation: .parsesThenApplication("unknown Request-URI scheme: 416")),
    .init(
        section: "3.3.4",
        name: "unksm2",
        expectation: .parsesThenApplication("non-SIP To/From/Contact URIs: registrar 400/404")
    ),
    .init(
        section: "3.3.5",
        name: "bext01",
        expectation: .parsesThenApplication("unknown Require: 420 with Unsupported")
    ),
    .init(section: "3.3.6", name: "invut", expectation: .parsesThenApplication("unknown body type: 415 with Accept")),
    .init(
        section: "3.3.7",
        name: "regaut01",
        expectation: .parsesThenApplication("unknown auth scheme: 401 challenge")
    ),
    .init(section: "3.3.8", name: "multi01", expectation: .refused(status: 400, reasonNames: "Multiple")),
    .init(section: "3.3.9", name: "mcl01", expectation: .refused(status: 400, reasonNames: "Content-Length")),
    .init(
        section: "3.3.10",
        name: "bcast",
        expectation: .parsesThenApplication("response to a broadcast Via: never sent there")
    ),
    .init(
        section: "3.3.11",
        name: "zeromf",
        expectation: .parsesThenApplication("Max-Forwards 0: UAS answers, proxy 483")
    ),
    .init(
        section: "3.3.12",
        name: "cparam01",
        expectation: .parsesThenApplication("unknownparam is a Contact header param")
    ),
    .init(section: "3.3.13", name: "cparam02", expectation: .parsesThenApplication("unknownparam is a URI param")),
    .init(
        section: "3.3.14",
        name: "regescrt",
        expectation: .parsesThenApplication("registrar must not keep the URI headers as routing")
    ),
    .init(section: "3.3.15", name: "sdp01", expectation: .parsesThenApplication("Accept excludes the SDP: 415/488")),
    // §3.4 Backwards compatibility
    .init(
        section: "3.4.1",
        name: "inv2543",
        expectation: .parsesThenApplication(
            "RFC 2543 request: no branch cookie, no Max-Forwards, no Content-Length over UDP"
        )
    ),
]

func fixture(_ name: String) throws -> [UInt8] {
    let url = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures/rfc4475/\(name).dat")
    // A missing fixture fails the case loudly: never a silent skip.
    return try [UInt8](Data(contentsOf: url))
}

/// Parse → serialize → parse gives the same message (Content-Length is rewritten to the body's
/// real size, so it is compared through the body).
func expectRoundTrip(_ message: SIPMessage, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let bytes = message.serializedBytes
    let reparsed = try SIPParser().parse(bytes, framing: .stream)
    func strip(_ headers: SIPHeaders) -> [SIPHeaders.Field] { headers.fields.filter { $0.name != .contentLength } }
    switch (message, reparsed) {
    case (.request(let a), .request(let b)):
        #expect(a.method == b.method, sourceLocation: sourceLocation)
        #expect(a.uri == b.uri, sourceLocation: sourceLocation)
        #expect(strip(a.headers) == strip(b.headers), sourceLocation: sourceLocation)
        #expect(a.body == b.body, sourceLocation: sourceLocation)
    case (.response(let a), .response(let b)):
        #expect(a.statusCode == b.statusCode && a.reasonPhrase == b.reasonPhrase, sourceLocation: sourceLocation)
        #expect(strip(a.headers) == strip(b.headers), sourceLocation: sourceLocation)
        #expect(a.body == b.body, sourceLocation: sourceLocation)
    default:
        Issue.record("round trip changed the kind of message", sourceLocation: sourceLocation)
    }
    #expect(reparsed.serializedBytes == bytes, sourceLocation: sourceLocation)
}

@Suite(.timeLimit(.minutes(1))) struct RFC4475Tests {
    @Test func everyCaseOfTheRFCIsInTheTable() throws {
        #expect(rfc4475Cases.count == 49)
        #expect(Set(rfc4475Cases.map(\.name)).count == 49)
    }

    @Test(arguments: rfc4475Cases)
    func tortureMessage(_ torture: TortureCase) throws {
        let bytes = try fixture(torture.name)
        switch torture.expectation {
        case .parses, .parsesThenApplication:
            let message = try SIPParser().parse(bytes, framing: .datagram)
            try expectRoundTrip(message)
            try checkDetails(torture.name, message)
        case .refused(let status, let reasonNames):
            do {
                let message = try SIPParser().parse(bytes, framing: .datagram)
                Issue.record("accepted a message RFC 4475 §\(torture.section) refuses: \(message)")
            } catch {
                #expect(error.statusCode == status)
                #expect(error.reasonPhrase.contains(reasonNames), "reason phrase \(error.reasonPhrase)")
                #expect((400..<600).contains(error.statusCode))
            }
        }
    }

    /// What the RFC says a parser must have understood in particular cases.
    func checkDetails(_ name: String, _ message: SIPMessage) throws {
        switch (name, message) {
        case ("wsinv", .request(let request)):
            #expect(request.vias.count == 3)
            #expect(request.vias.map(\.transport) == ["UDP", "TCP", "UDP"])
            #expect(request.from?.displayName == "J Rosenberg \\\"")
            #expect(request.from?.tag == "98asjd8")
            #expect(request.to?.tag == "1918181833n")
            #expect(request.maxForwards == 68)
            #expect(request.cseq == CSeq(number: 9, method: .invite))
            #expect(request.headers[SIPHeaderName("NewFangledHeader")] == "newfangled value continued newfangled value")
            #expect(request.headers[.subject] == "")
            #expect(request.body.count == 150)
            if case .address(let contact)? = request.contacts?.first {
                #expect(contact.displayName == "Quoted string \"\"")
                #expect(contact.parameters["newparam"] == .some("newvalue"))
                #expect(contact.parameters["secondparam"] == .some(nil))
            } else {
                Issue.record("Contact not parsed")
            }
        case ("intmeth", .request(let request)):
            #expect(request.method.rawValue == "!interesting-Method0123456789_*+`.%indeed'~")
            #expect(!SIPMethod.known.contains(request.method))
            #expect(request.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
            #expect(request.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
            #expect(request.to?.displayName == "BEL:\u{07} NUL:\u{00} DEL:\u{7F}")
            #expect(request.from?.displayName == "token1~` token2'+_ token3*%!.-")
        case ("esc01", .request(let request)):
            #expect(request.uri.user == "sips:user@example.com")
            #expect(request.to?.uri.user == "user")
            #expect(request.from?.uri.user == "I have spaces")
        case ("escnull", .request(let request)):
            #expect(request.to?.uri.user == "null-\u{00}-null")
            #expect(request.contacts?.count == 2)
        case ("esc02", .request(let request)):
            #expect(request.method.rawValue == "RE%47IST%45R")
            #expect(request.contacts?.count == 2)
        case ("lwsdisp", .request(let request)):
            #expect(request.from?.displayName == "caller")
        case ("longreq", .request(let request)):
            #expect(request.vias.count == 34)
            #expect(request.to?.uri.port == 6000)
        case ("dblreq", .request(let request)):
            #expect(request.method == .register)
            #expect(request.body.isEmpty)
        case ("semiuri", .request(let request)):
            #expect(request.uri.user == "user;par=u@example.net")
            #expect(request.uri.host == "example.com")
        case ("transports", .request(let request)):
            #expect(request.vias.map(\.transport) == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"])
        case ("mpart01", .request(let request)):
            #expect(request.body.contains(0))
            #expect(request.body.count == Int(request.headers[.contentLength] ?? ""))
        case ("unreason", .response(let response)):
            #expect(response.statusCode == 200)
            #expect(response.reasonPhrase.hasPrefix("= 2**3 * 5**2 но сто девяносто девять"))
        case ("noreason", .response(let response)):
            #expect(response.statusCode == 100)
            #expect(response.reasonPhrase == "")
        case ("badbranch", .request(let request)):
            #expect(request.topVia?.branch == Via.magicCookie)
        case ("unkscm", .request(let request)), ("novelsc", .request(let request)):
            #expect(!request.uri.isSIP)
        case ("unksm2", .request(let request)):
            #expect(request.to?.uri.scheme == "isbn")
            #expect(request.from?.uri.scheme == "http")
        case ("cparam01", .request(let request)):
            if case .address(let contact)? = request.contacts?.first {
                #expect(contact.parameters.contains("unknownparam"))
                #expect(!contact.uri.parameters.contains("unknownparam"))
            } else {
                Issue.record("Contact not parsed")
            }
        case ("cparam02", .request(let request)):
            if case .address(let contact)? = request.contacts?.first {
                #expect(contact.uri.parameters.contains("unknownparam"))
            } else {
                Issue.record("Contact not parsed")
            }
        case ("zeromf", .request(let request)):
            #expect(request.maxForwards == 0)
        case ("inv2543", .request(let request)):
            #expect(request.maxForwards == nil)
            #expect(request.topVia?.branch == nil)
            #expect(request.body.count > 0)
        default:
            break
        }
    }

    /// The parse error for a fixture RFC 4475 says is refused.
    func refusal(_ name: String) throws -> SIPParseError {
        let bytes = try fixture(name)
        do {
            _ = try SIPParser().parse(bytes)
        } catch {
            return error
        }
        Issue.record("\(name) accepted")
        throw CancellationError()
    }

    @Test func refusedRequestsGetAResponseNamingTheFault() throws {
        let mismatch = try refusal("mismatch01")
        let response = try #require(mismatch.makeResponse(toTag: "srv1"))
        #expect(response.statusCode == 400)
        #expect(response.reasonPhrase == mismatch.reasonPhrase)
        #expect(response.headers[.callID] == "mismatch01.dj0234sxdfl3")
        #expect(response.headers[.cseq] == "8 INVITE")
        #expect(response.to?.tag == "srv1")
        #expect(response.from?.tag == "34525")
        #expect(response.headers.values(.via) == ["SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw"])
        // A malformed response is dropped, never answered (RFC 3261 §18.1.2).
        let bigcode = try refusal("bigcode")
        #expect(bigcode.makeResponse(toTag: "x") == nil)
        // badvers: 505, and a To tag is added.
        let badvers = try refusal("badvers")
        let version = try #require(badvers.makeResponse(toTag: "t9"))
        #expect(version.statusCode == 505)
        #expect(version.to?.tag == "t9")
        // insuf: too little is readable to address an answer.
        let insuf = try refusal("insuf")
        #expect(insuf.responseContext == nil)
    }
}
