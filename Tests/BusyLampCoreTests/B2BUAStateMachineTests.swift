import Foundation
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampCore

/// The set of calls: how each message finds its call (branch, dialog, INVITE transaction), which
/// ringing call a pickup takes and who may take it, and that an ended call is forgotten.
@Suite("B2BUA state machine", .timeLimit(.minutes(1)))
struct B2BUAStateMachineTests {
    typealias F = CallFixture
    typealias Action = B2BUAStateMachine.Action

    static func b2bua() -> B2BUAStateMachine {
        B2BUAStateMachine(settings: F.settings, identifiers: .sequential(prefix: "b"))
    }

    static func inner(_ actions: [Action]) -> [CallAction] { actions.map(\.action) }

    /// A call from `caller` to `callee`, ringing at one phone (which has sent 180 when `ring`).
    struct Placed {
        var id: String
        var caller: CallStateMachine.IncomingInvite
        var invite: CallFixture.Sent
    }

    static func place(
        _ b2bua: inout B2BUAStateMachine,
        from callerLine: Line = F.alice,
        display: String = "Alice",
        to callee: Line = F.bob,
        phone: SIPPeer = F.bobPhone1,
        at offset: TimeInterval = 0,
        ring: Bool = true
    ) throws -> Placed {
        let caller = F.callerInvite(
            peer: SIPPeer(transport: .udp, host: "198.51.100.\(100 + Int(offset) % 100)", port: 5060),
            line: callerLine,
            display: display,
            callID: "call-\(callerLine.extensionNumber)-\(Int(offset))@phone"
        )
        let actions = b2bua.placeCall(
            caller: caller,
            calleeLine: callee,
            calleeIdentity: F.identity(callee, "Callee"),
            destinations: [F.destination(phone, user: callee.extensionNumber)],
            now: F.now.addingTimeInterval(offset)
        )
        let invite = try #require(F.sent(inner(actions), .invite).first)
        let id = try #require(actions.first?.callID)
        #expect(actions.allSatisfy { $0.callID == id })
        if ring {
            let ringing = F.response(180, to: invite.request, tag: "ring-\(id)", contact: "<sip:x@\(phone.host)>")
            let relayed = b2bua.receivedResponse(ringing, branch: invite.branch)
            #expect(F.responses(inner(relayed), to: caller.transaction).map(\.statusCode) == [180])
        }
        return Placed(id: id, caller: caller, invite: invite)
    }

    /// Bob's phone answers the placed call with its SDP; returns what the B2BUA did.
    @discardableResult
    static func answer(_ placed: Placed, in b2bua: inout B2BUAStateMachine) -> [B2BUAStateMachine.Action] {
        let ok = F.response(
            200,
            to: placed.invite.request,
            tag: "ring-\(placed.id)",
            contact: "<sip:x@h>",
            body: F.bobSDP
        )
        return b2bua.receivedResponse(ok, branch: placed.invite.branch)
    }

    // MARK: Routing messages to calls

    @Test("responses find their call by branch; an unknown branch is dropped")
    func responsesByBranch() throws {
        var b2bua = Self.b2bua()
        let first = try Self.place(&b2bua, at: 0)
        let second = try Self.place(&b2bua, from: F.leo, display: "Leo", to: F.joe, phone: F.joePhone, at: 1)
        #expect(b2bua.count == 2)
        #expect(first.id != second.id)
        #expect(first.invite.branch != second.invite.branch)

        let actions = Self.answer(second, in: &b2bua)
        #expect(actions.allSatisfy { $0.callID == second.id })
        #expect(F.responses(Self.inner(actions), to: second.caller.transaction).map(\.statusCode) == [200])
        #expect(b2bua.call(id: first.id)?.isRinging == true)
        #expect(b2bua.call(id: second.id)?.isRinging == false)

        let stray = F.response(200, to: second.invite.request, tag: "stray", contact: "<sip:x@h>")
        #expect(b2bua.receivedResponse(stray, branch: "z9hG4bK-nobody") == [])
        #expect(b2bua.requestFailed(branch: "z9hG4bK-nobody", status: 408) == [])
    }

    @Test("in-dialog requests find their call by Call-ID and our To tag; unknown ones are nil (481)")
    func requestsByDialog() throws {
        var b2bua = Self.b2bua()
        let placed = try Self.place(&b2bua)
        Self.answer(placed, in: &b2bua)
        let call = try #require(b2bua.call(id: placed.id))
        let callerTag = call.caller.localTag
        let dialog = (
            callID: placed.caller.request.callID!, ourTag: callerTag, ourURI: "sip:202@\(F.domain)", theirTag: "ph-a",
            theirURI: "sip:201@\(F.domain)"
        )
        // The caller's ACK finds the call and goes on to Bob.
        let ack = F.inDialog(.ack, ourSide: dialog, cseq: 2, branch: "z9hG4bK-ack", peer: placed.caller.peer)
        let acked = b2bua.receivedACK(ack)
        #expect(F.sent(Self.inner(acked), .ack).map(\.peer) == [F.bobPhone1])
        #expect(acked.allSatisfy { $0.callID == placed.id })

        // The callee's INFO, by the forks' Call-ID and our From tag.
        let calleeDialog = (
            callID: call.calleeCallID, ourTag: call.calleeFromTag, ourURI: "sip:6495550201@\(F.domain)",
            theirTag: "ring-\(placed.id)", theirURI: "sip:6495550202@\(F.domain)"
        )
        let info = F.inDialog(.info, ourSide: calleeDialog, cseq: 5, branch: "z9hG4bK-info", peer: F.bobPhone1)
        let infoActions = b2bua.receivedRequest(info, transaction: TransactionKey(incoming: info)!)
        let relayed = try #require(infoActions)
        #expect(F.sent(Self.inner(relayed), .info).map(\.peer) == [placed.caller.peer])

        // Another tag, another Call-ID: not ours.
        var wrongTag = dialog
        wrongTag.ourTag = "nope"
        let stray = F.inDialog(.bye, ourSide: wrongTag, cseq: 3, branch: "z9hG4bK-s1", peer: placed.caller.peer)
        #expect(b2bua.receivedRequest(stray, transaction: TransactionKey(incoming: stray)!) == nil)
        var wrongCall = dialog
        wrongCall.callID = "other@phone"
        let other = F.inDialog(.bye, ourSide: wrongCall, cseq: 3, branch: "z9hG4bK-s2", peer: placed.caller.peer)
        #expect(b2bua.receivedRequest(other, transaction: TransactionKey(incoming: other)!) == nil)
        #expect(b2bua.receivedACK(other) == [])
    }

    @Test("CANCEL finds the call by the INVITE transaction it names; an unknown one is nil")
    func cancelByInviteTransaction() throws {
        var b2bua = Self.b2bua()
        let placed = try Self.place(&b2bua)
        // The caller's CANCEL: same branch and sent-by as its INVITE (RFC 3261 §9.1).
        var cancel = placed.caller.request
        cancel.method = .cancel
        cancel.headers.set(.cseq, CSeq(number: 2, method: .cancel).description)
        cancel.body = []
        cancel.headers.remove(.contentType)
        let key = try #require(TransactionKey.matchingInvite(forCancel: cancel))
        #expect(key == placed.caller.transaction)
        let cancelled = b2bua.receivedCancel(forInvite: key)
        let actions = try #require(cancelled)
        #expect(F.responses(Self.inner(actions), to: placed.caller.transaction).map(\.statusCode) == [487])
        #expect(F.sent(Self.inner(actions), .cancel).map(\.branch) == [placed.invite.branch])

        var stranger = cancel
        stranger.headers.set(.via, "SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK-other")
        #expect(b2bua.receivedCancel(forInvite: TransactionKey.matchingInvite(forCancel: stranger)!) == nil)
    }

    @Test("an ended call is forgotten: count back to 0, its branches, dialogs and INVITE unknown")
    func endedCallForgotten() throws {
        var b2bua = Self.b2bua()
        let placed = try Self.place(&b2bua)
        #expect(b2bua.count == 1)
        let busy = F.response(486, to: placed.invite.request, tag: "ring-\(placed.id)")
        let actions = b2bua.receivedResponse(busy, branch: placed.invite.branch)
        #expect(F.responses(Self.inner(actions), to: placed.caller.transaction).map(\.statusCode) == [486])
        #expect(Self.inner(actions).contains(.ended))
        #expect(b2bua.count == 0)
        #expect(b2bua.call(id: placed.id) == nil)
        #expect(b2bua.receivedResponse(busy, branch: placed.invite.branch) == [])
        #expect(b2bua.receivedCancel(forInvite: placed.caller.transaction) == nil)
        #expect(b2bua.timerFired(.ringTimeout, callID: placed.id) == [])
        #expect(b2bua.latestRingingCall { _ in true } == nil)
    }

    @Test("a call with no destination ends at once and is not kept")
    func noDestinationNotKept() {
        var b2bua = Self.b2bua()
        let actions = b2bua.placeCall(
            caller: F.callerInvite(),
            calleeLine: F.bob,
            calleeIdentity: F.identity(F.bob, "Bob"),
            destinations: [],
            now: F.now
        )
        #expect(F.responses(Self.inner(actions)).map(\.statusCode) == [480])
        #expect(b2bua.count == 0)
    }

    @Test("a full call through the set: answered, BYE relayed, its answer back, then the call is forgotten")
    func fullCall() throws {
        var b2bua = Self.b2bua()
        let placed = try Self.place(&b2bua)
        Self.answer(placed, in: &b2bua)
        let callerTag = try #require(b2bua.call(id: placed.id)?.caller.localTag)
        let dialog = (
            callID: placed.caller.request.callID!, ourTag: callerTag, ourURI: "sip:202@\(F.domain)", theirTag: "ph-a",
            theirURI: "sip:201@\(F.domain)"
        )
        _ = b2bua.receivedACK(F.inDialog(.ack, ourSide: dialog, cseq: 2, branch: "z9hG4bK-a", peer: placed.caller.peer))
        let bye = F.inDialog(.bye, ourSide: dialog, cseq: 3, branch: "z9hG4bK-b", peer: placed.caller.peer)
        let byeActions = b2bua.receivedRequest(bye, transaction: TransactionKey(incoming: bye)!)
        let actions = try #require(byeActions)
        let ourBye = try #require(F.sent(Self.inner(actions), .bye).first)
        #expect(!Self.inner(actions).contains(.ended))
        #expect(b2bua.count == 1, "until the callee answers our BYE")
        let answer = F.response(200, to: ourBye.request, tag: nil)
        let answered = b2bua.receivedResponse(answer, branch: ourBye.branch)
        #expect(F.responses(Self.inner(answered)).map(\.statusCode) == [200])
        #expect(Self.inner(answered).last == .ended)
        #expect(b2bua.count == 0)
        // Its retransmission, and the caller's BYE again: nobody's any more.
        #expect(b2bua.receivedResponse(answer, branch: ourBye.branch) == [])
        #expect(b2bua.receivedRequest(bye, transaction: TransactionKey(incoming: bye)!) == nil)
    }

    // MARK: Pickup: which call

    @Test("directed pickup takes the latest ringing call of the target line")
    func directedPickup() throws {
        var b2bua = Self.b2bua()
        let older = try Self.place(&b2bua, at: 0)
        let newer = try Self.place(&b2bua, from: F.leo, display: "Leo", to: F.bob, phone: F.bobPhone2, at: 10)
        let elsewhere = try Self.place(&b2bua, from: F.alice, to: F.leo, phone: F.joePhone, at: 20)
        let picker = F.pickerInvite()
        let actions = b2bua.pickUp(.directed(target: F.bob), by: picker)
        #expect(actions.allSatisfy { $0.callID == newer.id })
        #expect(F.responses(Self.inner(actions), to: picker.transaction).map(\.statusCode) == [200])
        #expect(F.sent(Self.inner(actions), .cancel).map(\.branch) == [newer.invite.branch])
        #expect(b2bua.call(id: older.id)?.isRinging == true)
        #expect(b2bua.call(id: elsewhere.id)?.isRinging == true)
        #expect(b2bua.call(id: newer.id)?.isRinging == false)

        // The picker's ACK now finds the call by the picker's dialog.
        let tag = try #require(F.responses(Self.inner(actions), to: picker.transaction).first?.to?.tag)
        let ack = CallStateMachinePickupTests.pickerACK(picker, tag: tag)
        let acked = b2bua.receivedACK(ack)
        #expect(acked.allSatisfy { $0.callID == newer.id })
        #expect(F.sent(Self.inner(acked), .invite).map(\.peer) == [F.joePhone], "the re-INVITE with the caller's offer")
    }

    @Test("group pickup takes the most recently started ringing call of the picker's account and group")
    func groupPickup() throws {
        var b2bua = Self.b2bua()
        _ = try Self.place(&b2bua, to: F.bob, phone: F.bobPhone1, at: 0)
        let leoCall = try Self.place(&b2bua, to: F.leo, phone: F.bobPhone2, at: 5)
        // Later, but in another group and another account.
        let sales = try Self.place(&b2bua, to: F.sam, phone: F.joePhone, at: 20)
        let globex = try Self.place(&b2bua, from: F.zed, display: "Zed", to: F.zed, phone: F.tcpPhone, at: 30)
        // Later and in the group, but answered already.
        let answered = try Self.place(&b2bua, from: F.leo, display: "Leo", to: F.bob, phone: F.alicePhone, at: 40)
        let ok = F.response(200, to: answered.invite.request, tag: "ring-\(answered.id)", contact: "<sip:x@h>")
        _ = b2bua.receivedResponse(ok, branch: answered.invite.branch)

        let picker = F.pickerInvite()
        let actions = b2bua.pickUp(.group(accountID: "acme", group: Line.defaultGroup), by: picker)
        #expect(actions.allSatisfy { $0.callID == leoCall.id })
        #expect(F.responses(Self.inner(actions), to: picker.transaction).map(\.statusCode) == [200])
        #expect(b2bua.call(id: sales.id)?.isRinging == true)
        #expect(b2bua.call(id: globex.id)?.isRinging == true)
    }

    @Test("nothing ringing: 480, directed or group, and nothing else happens")
    func nothingRinging() throws {
        var b2bua = Self.b2bua()
        let ringing = try Self.place(&b2bua, to: F.bob)
        let picker = F.pickerInvite()
        for pickup in [
            B2BUAStateMachine.PickupRequest.directed(target: F.leo), .group(accountID: "acme", group: "SALES"),
        ] {
            let actions = b2bua.pickUp(pickup, by: picker)
            #expect(actions.count == 1)
            #expect(F.responses(Self.inner(actions), to: picker.transaction).map(\.statusCode) == [480])
        }
        #expect(b2bua.call(id: ringing.id)?.isRinging == true)
    }

    @Test("refusals of a pickup INVITE carry a To tag (RFC 3261 §8.2.6.2)")
    func refusalsTagged() throws {
        var b2bua = Self.b2bua()
        let picker = F.pickerInvite()
        let response = try #require(F.responses(Self.inner(b2bua.pickUp(.directed(target: F.bob), by: picker))).first)
        #expect(response.statusCode == 480)
        #expect(response.to?.tag?.isEmpty == false)
    }

    @Test("past maximumCalls a new INVITE gets 503 with Retry-After, and no call is kept")
    func maximumCalls() throws {
        var settings = F.settings
        settings.maximumCalls = 1
        var b2bua = B2BUAStateMachine(settings: settings, identifiers: .sequential(prefix: "m"))
        _ = try Self.place(&b2bua)
        let caller = F.callerInvite(callID: "second@phone")
        let actions = b2bua.placeCall(
            caller: caller,
            calleeLine: F.leo,
            calleeIdentity: F.identity(F.leo, "Leo"),
            destinations: [F.destination(F.joePhone)],
            now: F.now
        )
        let response = try #require(F.responses(Self.inner(actions), to: caller.transaction).first)
        #expect(actions.count == 1)
        #expect(response.statusCode == 503)
        #expect(response.headers[.retryAfter] != nil)
        #expect(response.to?.tag != nil)
        #expect(b2bua.count == 1)
    }

    @Test("a trunk (no line) cannot pick up: 403")
    func trunkCannotPickUp() throws {
        var b2bua = Self.b2bua()
        _ = try Self.place(&b2bua)
        var picker = F.pickerInvite()
        picker.party = CallStateMachine.Party(
            line: nil,
            identity: NameAddress(uri: SIPURI(user: "0800", host: "trunk"))
        )
        let actions = b2bua.pickUp(.directed(target: F.bob), by: picker)
        #expect(F.responses(Self.inner(actions)).map(\.statusCode) == [403])
    }

    // MARK: Replaces

    @Test("RFC 3891 §6.1: Replaces parsed with call-id, both tags and early-only")
    func replacesParsed() throws {
        let plain = try #require(Replaces("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff"))
        #expect(plain.callID == "98732@sip.example.com")
        #expect(plain.fromTag == "r33th4x0r")
        #expect(plain.toTag == "ff87ff")
        #expect(!plain.earlyOnly)
        #expect(Set(plain.tags) == ["r33th4x0r", "ff87ff"])

        let early = try #require(Replaces(" abc@h ; To-Tag=1 ; FROM-TAG=2 ; early-only"))
        #expect(early.callID == "abc@h")
        #expect(early.toTag == "1")
        #expect(early.fromTag == "2")
        #expect(early.earlyOnly)

        let extra = try #require(Replaces("abc@h;to-tag=1;from-tag=2;x-vendor=y"))
        #expect(!extra.earlyOnly)
    }

    @Test(
        "Replaces without both tags or a call-id is no Replaces",
        arguments: [
            "", ";to-tag=1;from-tag=2", "abc@h", "abc@h;to-tag=1", "abc@h;from-tag=2", "abc@h;to-tag;from-tag=2",
        ]
    )
    func replacesRefused(_ value: String) {
        #expect(Replaces(value) == nil)
    }

    @Test("Replaces with an empty tag value (no local-tag in a ringing NOTIFY) still names the call")
    func replacesWithEmptyTag() {
        let parsed = Replaces("abc@h;to-tag=;from-tag=2")
        #expect(parsed?.toTag == "")
        #expect(parsed?.fromTag == "2")
    }

    static func replaces(_ call: CallStateMachine, toTag: String, fromTag: String, earlyOnly: Bool = false) -> Replaces
    {
        Replaces("\(call.calleeCallID);to-tag=\(toTag);from-tag=\(fromTag)\(earlyOnly ? ";early-only" : "")")!
    }

    @Test("Replaces naming the ringing dialog picks it up, tags in either order")
    func replacesMatches() throws {
        for swapped in [false, true] {
            var b2bua = Self.b2bua()
            let placed = try Self.place(&b2bua)
            let call = try #require(b2bua.call(id: placed.id))
            let (ours, theirs) = (call.calleeFromTag, "ring-\(placed.id)")
            let replaces =
                swapped
                ? Self.replaces(call, toTag: theirs, fromTag: ours) : Self.replaces(call, toTag: ours, fromTag: theirs)
            let picker = F.pickerInvite()
            let actions = b2bua.pickUp(.replaces(replaces), by: picker)
            #expect(actions.allSatisfy { $0.callID == placed.id })
            #expect(F.responses(Self.inner(actions), to: picker.transaction).map(\.statusCode) == [200])
        }
    }

    @Test("Replaces refused: unknown call-id 481, wrong tag 481, other account or group 403; the call rings on")
    func replacesRefusals() throws {
        var b2bua = Self.b2bua()
        let placed = try Self.place(&b2bua)
        let call = try #require(b2bua.call(id: placed.id))
        let good = (call.calleeFromTag, "ring-\(placed.id)")
        let cases: [(Replaces, CallStateMachine.IncomingInvite, Int)] = [
            (Replaces("unknown@busylamp;to-tag=\(good.0);from-tag=\(good.1)")!, F.pickerInvite(), 481),
            (Self.replaces(call, toTag: good.0, fromTag: "forged"), F.pickerInvite(), 481),
            // The caller's own dialog is not the one the line's watchers see.
            (Replaces("\(placed.caller.request.callID!);to-tag=\(good.0);from-tag=\(good.1)")!, F.pickerInvite(), 481),
            (Self.replaces(call, toTag: good.0, fromTag: good.1), F.pickerInvite(line: F.zed, display: "Zed"), 403),
            (Self.replaces(call, toTag: good.0, fromTag: good.1), F.pickerInvite(line: F.sam, display: "Sam"), 403),
        ]
        for (replaces, picker, status) in cases {
            let actions = b2bua.pickUp(.replaces(replaces), by: picker)
            #expect(actions.count == 1)
            #expect(F.responses(Self.inner(actions), to: picker.transaction).map(\.statusCode) == [status])
        }
        #expect(b2bua.call(id: placed.id)?.isRinging == true)
        #expect(b2bua.call(id: placed.id)?.picker == nil)
    }

    @Test("Replaces of an answered call: 486 with early-only (RFC 3891 §3), 480 without")
    func replacesAnswered() throws {
        var b2bua = Self.b2bua()
        let placed = try Self.place(&b2bua)
        Self.answer(placed, in: &b2bua)
        let call = try #require(b2bua.call(id: placed.id))
        let tags = (call.calleeFromTag, "ring-\(placed.id)")
        let picker = F.pickerInvite()
        let early = b2bua.pickUp(
            .replaces(Self.replaces(call, toTag: tags.0, fromTag: tags.1, earlyOnly: true)),
            by: picker
        )
        #expect(F.responses(Self.inner(early)).map(\.statusCode) == [486])
        let plain = b2bua.pickUp(.replaces(Self.replaces(call, toTag: tags.0, fromTag: tags.1)), by: picker)
        #expect(F.responses(Self.inner(plain)).map(\.statusCode) == [480])
    }

    @Test("the picker's CANCEL before its pickup completes: 487 to the picker")
    func pickerCancels() throws {
        var b2bua = Self.b2bua()
        // The caller sent no offer: the picker waits for its 200 until the caller's ACK.
        let caller = F.callerInvite(body: [])
        let placedActions = b2bua.placeCall(
            caller: caller,
            calleeLine: F.bob,
            calleeIdentity: F.identity(F.bob, "Bob"),
            destinations: [F.destination(F.bobPhone1)],
            now: F.now
        )
        let id = try #require(placedActions.first?.callID)
        let picker = F.pickerInvite()
        _ = b2bua.pickUp(.directed(target: F.bob), by: picker)
        let cancelled = b2bua.receivedCancel(forInvite: picker.transaction)
        let actions = try #require(cancelled)
        #expect(F.responses(Self.inner(actions), to: picker.transaction).map(\.statusCode) == [487])
        // The caller, answered with the picker's offer, must not be left in a call with nobody.
        #expect(F.sent(Self.inner(actions), .bye).map(\.peer) == [caller.peer])
        // And a later ACK from the caller must not answer the cancelled picker 200.
        let callerTag = try #require(b2bua.call(id: id)?.caller.localTag)
        let dialog = (
            callID: caller.request.callID!, ourTag: callerTag, ourURI: "sip:202@\(F.domain)", theirTag: "ph-a",
            theirURI: "sip:201@\(F.domain)"
        )
        let ack = F.inDialog(.ack, ourSide: dialog, cseq: 2, branch: "z9hG4bK-ack", peer: caller.peer, body: F.aliceSDP)
        let afterACK = Self.inner(b2bua.receivedACK(ack))
        #expect(F.responses(afterACK, to: picker.transaction).isEmpty)
    }
}
