import Foundation
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampCore

/// Phones, lines and messages for the call machine tests: every message is built as the phone
/// would send it (Via with its branch, tags, CSeq, Contact), so that the machines see what the
/// driver would hand them. No sockets, no clock: `now` is fixed and identifiers are counted.
enum CallFixture {
    static let domain = "sip.busylamp.test"
    static let now = Date(timeIntervalSince1970: 1_700_000_000)

    static func line(_ accountID: String, _ ext: String, _ number: String, group: String = Line.defaultGroup) -> Line {
        Line(accountID: accountID, extensionNumber: ext, number: number, group: group, credentials: [:])
    }

    static let alice = line("acme", "201", "6495550201")
    static let bob = line("acme", "202", "6495550202")
    static let joe = line("acme", "203", "6495550203")
    static let leo = line("acme", "204", "6495550204")
    /// Same account as Bob, another pickup group.
    static let sam = line("acme", "205", "6495550205", group: "SALES")
    /// Another account.
    static let zed = line("globex", "301", "6495550301")

    static let alicePhone = SIPPeer(transport: .udp, host: "198.51.100.1", port: 5060)
    static let bobPhone1 = SIPPeer(transport: .udp, host: "198.51.100.2", port: 5060)
    static let bobPhone2 = SIPPeer(transport: .udp, host: "198.51.100.3", port: 5062)
    static let joePhone = SIPPeer(transport: .udp, host: "198.51.100.4", port: 5060)
    static let tcpPhone = SIPPeer(transport: .tcp, host: "198.51.100.9", port: 5060, connectionID: 7)

    static func identity(_ line: Line, _ display: String) -> NameAddress {
        NameAddress(displayName: display, uri: SIPURI(user: line.number, host: domain))
    }

    static func party(_ line: Line, _ display: String) -> CallStateMachine.Party {
        CallStateMachine.Party(line: line, identity: identity(line, display))
    }

    static func destination(_ peer: SIPPeer, user: String = "202") -> CallStateMachine.Destination {
        CallStateMachine.Destination(
            requestURI: SIPURI(user: user, host: peer.host, port: peer.port),
            peer: peer
        )
    }

    static var settings: CallStateMachine.Settings { CallStateMachine.Settings() }

    // MARK: SDP

    static func sdp(
        user: String,
        session: String,
        version: UInt64,
        host: String,
        port: Int,
        video: Int? = nil
    ) -> [UInt8] {
        var text = "v=0\r\no=\(user) \(session) \(version) IN IP4 \(host)\r\ns=-\r\nc=IN IP4 \(host)\r\nt=0 0\r\n"
        text += "m=audio \(port) RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
        text += "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
        if let video { text += "m=video \(video) RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" }
        return Array(text.utf8)
    }

    static let aliceSDP = sdp(
        user: "alice",
        session: "2890844526",
        version: 2_890_844_527,
        host: "198.51.100.1",
        port: 49170
    )
    static let bobSDP = sdp(user: "bob", session: "1001", version: 1001, host: "198.51.100.2", port: 51372)
    static let joeSDP = sdp(user: "joe", session: "3003", version: 7, host: "198.51.100.4", port: 40000)
    static let joeAnswerSDP = sdp(user: "joe", session: "3003", version: 8, host: "198.51.100.4", port: 40002)

    // MARK: Messages

    /// A request as a phone at `peer` sends it, its top Via carrying `branch`.
    static func request(
        _ method: SIPMethod,
        uri: SIPURI,
        from: String,
        to: String,
        callID: String,
        cseq: UInt32,
        cseqMethod: SIPMethod? = nil,
        branch: String,
        peer: SIPPeer,
        contact: String? = nil,
        body: [UInt8] = [],
        extra: [(SIPHeaderName, String)] = []
    ) -> SIPRequest {
        var headers = SIPHeaders()
        headers.add(.via, "SIP/2.0/\(peer.transport.viaToken) \(peer.host):\(peer.port);branch=\(branch)")
        headers.add(.maxForwards, "70")
        headers.add(.from, from)
        headers.add(.to, to)
        headers.add(.callID, callID)
        headers.add(.cseq, CSeq(number: cseq, method: cseqMethod ?? method).description)
        if let contact { headers.add(.contact, contact) }
        for (name, value) in extra { headers.add(name, value) }
        if !body.isEmpty { headers.add(.contentType, SessionDescription.contentType) }
        return SIPRequest(method: method, uri: uri, headers: headers, body: body)
    }

    /// Alice's INVITE to Bob (CSeq 2: the one after the 407), as the machine gets it.
    static func callerInvite(
        body: [UInt8] = aliceSDP,
        peer: SIPPeer = alicePhone,
        line: Line = alice,
        display: String = "Alice",
        callID: String = "call-a@198.51.100.1",
        extra: [(SIPHeaderName, String)] = []
    ) -> CallStateMachine.IncomingInvite {
        let request = request(
            .invite,
            uri: SIPURI(user: "202", host: domain),
            from: "\"\(display)\" <sip:\(line.extensionNumber)@\(domain)>;tag=ph-a",
            to: "<sip:202@\(domain)>",
            callID: callID,
            cseq: 2,
            branch: "z9hG4bK-a-\(token(callID))",
            peer: peer,
            contact: "<sip:\(line.extensionNumber)@\(peer.host):\(peer.port)>",
            body: body,
            extra: extra
        )
        return incoming(request, peer: peer, party: party(line, display))
    }

    /// A picker's INVITE (Joe dialling `*89202`, or with `Replaces`).
    static func pickerInvite(
        body: [UInt8] = joeSDP,
        peer: SIPPeer = joePhone,
        line: Line = joe,
        display: String = "Joe",
        callID: String = "call-j@198.51.100.4",
        extra: [(SIPHeaderName, String)] = []
    ) -> CallStateMachine.IncomingInvite {
        let request = request(
            .invite,
            uri: SIPURI(user: "*89202", host: domain),
            from: "\"\(display)\" <sip:\(line.extensionNumber)@\(domain)>;tag=ph-j",
            to: "<sip:*89202@\(domain)>",
            callID: callID,
            cseq: 5,
            branch: "z9hG4bK-j-\(token(callID))",
            peer: peer,
            contact: "<sip:\(line.extensionNumber)@\(peer.host):\(peer.port)>",
            body: body,
            extra: extra
        )
        return incoming(request, peer: peer, party: party(line, display))
    }

    /// `text` with only what a Via branch (a token) may hold.
    static func token(_ text: String) -> String {
        String(text.filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." })
    }

    static func incoming(
        _ request: SIPRequest,
        peer: SIPPeer,
        party: CallStateMachine.Party
    )
        -> CallStateMachine.IncomingInvite
    {
        CallStateMachine.IncomingInvite(
            request: request,
            transaction: TransactionKey(incoming: request)!,
            peer: peer,
            party: party
        )
    }

    /// A response from a callee phone to `request` (one we sent), with the phone's tag and
    /// Contact. Our requests leave without Via; the driver matches by branch.
    static func response(
        _ status: Int,
        to request: SIPRequest,
        tag: String?,
        contact: String? = nil,
        body: [UInt8] = []
    ) -> SIPResponse {
        var response = SIPResponse(replyingTo: request, statusCode: status, toTag: tag)
        if let contact { response.headers.add(.contact, contact) }
        if !body.isEmpty {
            response.headers.add(.contentType, SessionDescription.contentType)
            response.body = body
        }
        return response
    }

    /// An in-dialog request from the phone at the other end of `dialog` as we see it: its From
    /// is our dialog's To and the other way round.
    static func inDialog(
        _ method: SIPMethod,
        ourSide dialog: (callID: String, ourTag: String, ourURI: String, theirTag: String, theirURI: String),
        cseq: UInt32,
        cseqMethod: SIPMethod? = nil,
        branch: String,
        peer: SIPPeer,
        body: [UInt8] = [],
        contact: String? = nil
    ) -> SIPRequest {
        request(
            method,
            uri: SIPURI(user: "busylamp", host: "192.0.2.10"),
            from: "<\(dialog.theirURI)>;tag=\(dialog.theirTag)",
            to: "<\(dialog.ourURI)>;tag=\(dialog.ourTag)",
            callID: dialog.callID,
            cseq: cseq,
            cseqMethod: cseqMethod,
            branch: branch,
            peer: peer,
            contact: contact,
            body: body
        )
    }

    // MARK: Reading actions

    struct Sent: Hashable {
        var request: SIPRequest
        var branch: String
        var peer: SIPPeer
    }

    static func sent(_ actions: [CallAction]) -> [Sent] {
        actions.compactMap { action in
            guard case .send(let request, let branch, let peer) = action else { return nil }
            return Sent(request: request, branch: branch, peer: peer)
        }
    }

    static func sent(_ actions: [CallAction], _ method: SIPMethod) -> [Sent] {
        sent(actions).filter { $0.request.method == method }
    }

    static func responses(_ actions: [CallAction], to transaction: TransactionKey? = nil) -> [SIPResponse] {
        actions.compactMap { action in
            guard case .respond(let response, let key) = action, transaction == nil || key == transaction else {
                return nil
            }
            return response
        }
    }

    static func lamps(_ actions: [CallAction]) -> [String: LineDialog] {
        var result: [String: LineDialog] = [:]
        for case .lineChanged(let number, let dialog) in actions { result[number] = dialog }
        return result
    }

    static func lampCount(_ actions: [CallAction]) -> Int {
        actions.filter { if case .lineChanged = $0 { return true } else { return false } }.count
    }

    static func text(_ body: [UInt8]) -> String { String(decoding: body, as: UTF8.self) }
}

/// One call driven the way the engine drives it, remembering what it needs to answer: the
/// INVITE each fork got, the caller's leg, the phones' tags.
struct CallHarness {
    typealias F = CallFixture

    var machine: CallStateMachine
    let caller: CallStateMachine.IncomingInvite
    /// What each fork was sent, in order.
    var forks: [CallFixture.Sent] = []
    var lastActions: [CallAction] = []

    init(
        caller: CallStateMachine.IncomingInvite = CallFixture.callerInvite(),
        calleeLine: Line? = CallFixture.bob,
        settings: CallStateMachine.Settings = CallFixture.settings,
        id: String = "c1",
        now: Date = CallFixture.now
    ) {
        self.caller = caller
        machine = CallStateMachine(
            id: id,
            caller: caller,
            calleeLine: calleeLine,
            calleeIdentity: CallFixture.identity(CallFixture.bob, "Bob"),
            settings: settings,
            identifiers: .sequential(prefix: "t"),
            now: now
        )
    }

    /// Starts ringing `destinations` and keeps the INVITEs sent.
    mutating func start(_ destinations: [CallStateMachine.Destination]) -> [CallAction] {
        let actions = machine.start(ringing: destinations)
        forks = CallFixture.sent(actions, .invite)
        lastActions = actions
        return actions
    }

    /// The tag fork `index`'s phone answers with.
    static func tag(_ index: Int) -> String { "callee-\(index)" }

    /// The Contact fork `index`'s phone answers with.
    func contact(_ index: Int) -> String {
        let peer = forks[index].peer
        return "<sip:202@\(peer.host):\(peer.port)>"
    }

    func response(_ status: Int, fork index: Int, body: [UInt8] = []) -> SIPResponse {
        CallFixture.response(
            status,
            to: forks[index].request,
            tag: status == 100 ? nil : Self.tag(index),
            contact: (101..<300).contains(status) ? contact(index) : nil,
            body: body
        )
    }

    @discardableResult
    mutating func fork(_ index: Int, responds status: Int, body: [UInt8] = []) -> [CallAction] {
        let actions = machine.receivedResponse(response(status, fork: index, body: body), branch: forks[index].branch)
        lastActions = actions
        return actions
    }

    /// The caller's ACK for our 200, carrying `body` (an answer to an offer in our 200).
    func callerACK(body: [UInt8] = []) -> SIPRequest {
        let invite = caller.request
        return CallFixture.request(
            .ack,
            uri: SIPURI(user: "busylamp", host: "192.0.2.10"),
            from: invite.headers[.from]!,
            to: (invite.headers[.to] ?? "") + ";tag=\(machine.caller.localTag)",
            callID: invite.callID!,
            cseq: invite.cseq!.number,
            branch: "z9hG4bK-ack-a",
            peer: caller.peer,
            body: body
        )
    }

    /// Our dialog with the caller, as in-dialog requests from the caller name it.
    var callerDialog: (callID: String, ourTag: String, ourURI: String, theirTag: String, theirURI: String) {
        (
            caller.request.callID!, machine.caller.localTag, "sip:202@\(CallFixture.domain)", "ph-a",
            "sip:201@\(CallFixture.domain)"
        )
    }

    /// Our dialog with fork `index`'s phone.
    func calleeDialog(
        _ index: Int
    ) -> (callID: String, ourTag: String, ourURI: String, theirTag: String, theirURI: String) {
        (
            machine.calleeCallID, machine.calleeFromTag, "sip:6495550201@\(CallFixture.domain)", Self.tag(index),
            "sip:6495550202@\(CallFixture.domain)"
        )
    }
}
