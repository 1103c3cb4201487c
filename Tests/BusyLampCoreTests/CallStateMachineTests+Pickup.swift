import Foundation
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampCore

/// Pickup of a ringing call (RFC 3725 offer/answer joining, see `CallStateMachine+Pickup.swift`)
/// in each of its shapes: both sides offered, only the caller, only the picker, neither.
@Suite("Call state machine: pickup", .timeLimit(.minutes(1)))
struct CallStateMachinePickupTests {
    typealias F = CallFixture

    /// Alice ringing Bob's two phones: the first has sent 180, the second nothing yet.
    static func ringing(caller: CallStateMachine.IncomingInvite = F.callerInvite()) -> CallHarness {
        var call = CallHarness(caller: caller)
        _ = call.start([F.destination(F.bobPhone1), F.destination(F.bobPhone2)])
        call.fork(0, responds: 180)
        return call
    }

    /// The picker's ACK for our 200, with `body` when it carries an answer.
    static func pickerACK(_ picker: CallStateMachine.IncomingInvite, tag: String, body: [UInt8] = []) -> SIPRequest {
        F.request(
            .ack,
            uri: SIPURI(user: "busylamp", host: "192.0.2.10"),
            from: picker.request.headers[.from]!,
            to: picker.request.headers[.to]! + ";tag=\(tag)",
            callID: picker.request.callID!,
            cseq: picker.request.cseq!.number,
            branch: "z9hG4bK-ack-j",
            peer: picker.peer,
            body: body
        )
    }

    static func pickerDialog(
        _ call: CallHarness,
        _ picker: CallStateMachine.IncomingInvite
    ) -> (
        callID: String, ourTag: String, ourURI: String, theirTag: String, theirURI: String
    ) {
        (picker.request.callID!, call.machine.picker!.localTag, "sip:*89202@\(F.domain)", "ph-j", "sip:203@\(F.domain)")
    }

    // MARK: Both offered

    @Test("both offered: placeholder answer, ACK, re-INVITE with the caller's offer, the picker's answer to the caller")
    func bothOffered() throws {
        var call = Self.ringing()
        let picker = F.pickerInvite()
        let actions = call.machine.pickUp(by: picker)

        #expect(actions.first == .cancelTimer(.ringTimeout))
        // The ringing phone gets CANCEL now; the silent one once it sends a provisional.
        #expect(F.sent(actions, .cancel).map(\.branch) == [call.forks[0].branch])
        #expect(F.responses(actions, to: call.caller.transaction).isEmpty, "the caller waits for the real answer")

        let placeholders = F.responses(actions, to: picker.transaction)
        try #require(placeholders.count == 1)
        let placeholder = placeholders[0]
        #expect(placeholder.statusCode == 200)
        #expect(placeholder.to?.tag == "t6")
        #expect(placeholder.contentType == "application/sdp")
        let sdp = try #require(SessionDescription(placeholder.body))
        // RFC 3264 §6: the picker's m-lines, inactive, nothing to send to; the caller's origin
        // one version below its own.
        #expect(
            sdp.lines == [
                "v=0", "o=alice 2890844526 2890844526 IN IP4 198.51.100.1", "s=-", "c=IN IP4 0.0.0.0", "t=0 0",
                "m=audio 9 RTP/AVP 0", "a=inactive", "a=rtpmap:0 PCMU/8000",
            ]
        )
        #expect(actions.contains(.startTimer(.retransmitPickerAnswer, after: .milliseconds(500))))

        let lamps = F.lamps(actions)
        #expect(lamps["6495550202"]?.state == .terminated, "Bob's phones stop ringing")
        #expect(lamps["6495550203"]?.state == .confirmed)
        #expect(lamps["6495550203"]?.direction == .initiator)
        #expect(lamps["6495550203"]?.remote.identity == "sip:6495550201@sip.busylamp.test")
        #expect(lamps["6495550201"]?.remote.identity == "sip:6495550203@sip.busylamp.test")
        #expect(lamps["6495550201"]?.remote.displayName == "Joe")
        #expect(!call.machine.isRinging)

        // The picker's ACK lets the re-INVITE with Alice's offer go.
        let acked = call.machine.receivedACK(Self.pickerACK(picker, tag: "t6"), from: .picker)
        #expect(acked.first == .cancelTimer(.retransmitPickerAnswer))
        let reinvites = F.sent(acked, .invite)
        try #require(reinvites.count == 1)
        let reinvite = reinvites[0]
        #expect(reinvite.peer == F.joePhone)
        #expect(reinvite.request.uri.description == "sip:203@198.51.100.4:5060")
        #expect(reinvite.request.callID == "call-j@198.51.100.4")
        #expect(reinvite.request.from?.tag == "t6")
        #expect(reinvite.request.to?.tag == "ph-j")
        #expect(reinvite.request.cseq == CSeq(number: 1, method: .invite))
        #expect(reinvite.request.body == F.aliceSDP)
        #expect(reinvite.request.contentType == "application/sdp")

        // Joe answers: ACK to Joe, and Alice gets her 200 with Joe's answer.
        let ok = F.response(
            200,
            to: reinvite.request,
            tag: nil,
            contact: "<sip:203@198.51.100.4:5060>",
            body: F.joeAnswerSDP
        )
        let answered = call.machine.receivedResponse(ok, branch: reinvite.branch)
        let acks = F.sent(answered, .ack)
        try #require(acks.count == 1)
        #expect(acks[0].peer == F.joePhone)
        #expect(acks[0].request.cseq == CSeq(number: 1, method: .ack))
        #expect(acks[0].request.to?.tag == "ph-j")
        let callerAnswers = F.responses(answered, to: call.caller.transaction)
        try #require(callerAnswers.count == 1)
        #expect(callerAnswers[0].statusCode == 200)
        #expect(callerAnswers[0].to?.tag == "t1")
        #expect(callerAnswers[0].body == F.joeAnswerSDP)
        #expect(callerAnswers[0].contentType == "application/sdp")
        #expect(answered.contains(.startTimer(.retransmitCallerAnswer, after: .milliseconds(500))))
        #expect(F.lamps(answered)["6495550201"]?.state == .confirmed)
        #expect(F.lamps(answered)["6495550201"]?.remote.identity == "sip:6495550203@sip.busylamp.test")

        // Joe's 200 again: the same ACK again.
        #expect(F.sent(call.machine.receivedResponse(ok, branch: reinvite.branch)).map(\.request) == [acks[0].request])

        // Alice's ACK ends the exchange; nothing goes on to Joe.
        let callerACK = call.machine.receivedACK(call.callerACK(), from: .caller)
        #expect(callerACK == [.cancelTimer(.retransmitCallerAnswer)])
    }

    @Test("both offered, caller's version 0: the placeholder keeps 0 and the re-INVITE's copy is raised to 1")
    func versionZero() throws {
        let offer = F.sdp(user: "trunk", session: "77", version: 0, host: "203.0.113.5", port: 30000)
        var call = Self.ringing(caller: F.callerInvite(body: offer))
        let picker = F.pickerInvite()
        let actions = call.machine.pickUp(by: picker)
        let placeholder = try #require(F.responses(actions, to: picker.transaction).first)
        #expect(SessionDescription(placeholder.body)?.origin?.version == 0)
        #expect(SessionDescription(placeholder.body)?.origin?.sessionID == "77")
        let acked = call.machine.receivedACK(Self.pickerACK(picker, tag: "t6"), from: .picker)
        let reinvite = try #require(F.sent(acked, .invite).first)
        let sent = try #require(SessionDescription(reinvite.request.body))
        #expect(sent.origin?.version == 1)
        #expect(sent.origin?.username == "trunk")
        #expect(
            sent.lines.filter { !$0.hasPrefix("o=") } == SessionDescription(offer)!.lines.filter { !$0.hasPrefix("o=") }
        )
    }

    // MARK: One side offered

    @Test("picker without offer: its 200 carries the caller's offer, its ACK's answer goes to the caller")
    func pickerWithoutOffer() throws {
        var call = Self.ringing()
        let picker = F.pickerInvite(body: [])
        let actions = call.machine.pickUp(by: picker)
        let ok = try #require(F.responses(actions, to: picker.transaction).first)
        #expect(ok.statusCode == 200)
        #expect(ok.body == F.aliceSDP)
        #expect(ok.contentType == "application/sdp")
        #expect(F.responses(actions, to: call.caller.transaction).isEmpty)

        let acked = call.machine.receivedACK(Self.pickerACK(picker, tag: "t6", body: F.joeAnswerSDP), from: .picker)
        #expect(acked.first == .cancelTimer(.retransmitPickerAnswer))
        #expect(F.sent(acked).isEmpty, "no re-INVITE in this shape")
        let answers = F.responses(acked, to: call.caller.transaction)
        try #require(answers.count == 1)
        #expect(answers[0].statusCode == 200)
        #expect(answers[0].body == F.joeAnswerSDP)
        #expect(answers[0].to?.tag == "t1")
        #expect(F.lamps(acked)["6495550201"]?.state == .confirmed)
    }

    @Test("picker without offer and an ACK without answer: the pickup fails, both ends are told")
    func pickerACKWithoutAnswer() {
        var call = Self.ringing()
        let picker = F.pickerInvite(body: [])
        _ = call.machine.pickUp(by: picker)
        let actions = call.machine.receivedACK(Self.pickerACK(picker, tag: "t6"), from: .picker)
        #expect(F.sent(actions, .bye).map(\.peer) == [F.joePhone])
        #expect(F.responses(actions, to: call.caller.transaction).map(\.statusCode) == [480])
    }

    @Test("caller without offer: the caller's 200 carries the picker's offer, its ACK's answer goes to the picker")
    func callerWithoutOffer() throws {
        var call = Self.ringing(caller: F.callerInvite(body: []))
        #expect(call.forks[0].request.body.isEmpty)
        let picker = F.pickerInvite()
        let actions = call.machine.pickUp(by: picker)
        let callerOK = try #require(F.responses(actions, to: call.caller.transaction).first)
        #expect(callerOK.statusCode == 200)
        #expect(callerOK.body == F.joeSDP)
        #expect(callerOK.contentType == "application/sdp")
        #expect(F.responses(actions, to: picker.transaction).isEmpty)
        #expect(actions.contains(.startTimer(.retransmitCallerAnswer, after: .milliseconds(500))))

        let acked = call.machine.receivedACK(call.callerACK(body: F.aliceSDP), from: .caller)
        #expect(acked.first == .cancelTimer(.retransmitCallerAnswer))
        let pickerOK = try #require(F.responses(acked, to: picker.transaction).first)
        #expect(pickerOK.statusCode == 200)
        #expect(pickerOK.to?.tag == "t6")
        #expect(pickerOK.body == F.aliceSDP)
        #expect(pickerOK.contentType == "application/sdp")
        #expect(acked.contains(.startTimer(.retransmitPickerAnswer, after: .milliseconds(500))))
        #expect(F.lamps(acked)["6495550203"]?.state == .confirmed)
    }

    @Test("no offer on either side: 488 to the picker and the call rings on, untouched")
    func neitherOffered() throws {
        var call = Self.ringing(caller: F.callerInvite(body: []))
        let picker = F.pickerInvite(body: [])
        let actions = call.machine.pickUp(by: picker)
        try #require(actions.count == 1)
        #expect(F.responses(actions, to: picker.transaction).map(\.statusCode) == [488])
        #expect(call.machine.isRinging)
        #expect(call.machine.picker == nil)
        // Bob still rings and can answer.
        let answered = call.fork(0, responds: 200, body: F.bobSDP)
        #expect(F.responses(answered, to: call.caller.transaction).map(\.statusCode) == [200])
    }

    @Test("pickup of a call no longer ringing: 480")
    func notRinging() {
        var call = Self.ringing()
        call.fork(0, responds: 200, body: F.bobSDP)
        let picker = F.pickerInvite()
        let actions = call.machine.pickUp(by: picker)
        #expect(F.responses(actions, to: picker.transaction).map(\.statusCode) == [480])
        #expect(call.machine.picker == nil)
    }

    // MARK: After the pickup

    /// A completed pickup (picker without offer, the simplest shape), the caller ACKed.
    static func pickedUp() -> (CallHarness, CallStateMachine.IncomingInvite) {
        var call = ringing()
        let picker = F.pickerInvite(body: [])
        _ = call.machine.pickUp(by: picker)
        _ = call.machine.receivedACK(pickerACK(picker, tag: "t6", body: F.joeAnswerSDP), from: .picker)
        _ = call.machine.receivedACK(call.callerACK(), from: .caller)
        return (call, picker)
    }

    @Test(
        "after pickup: the ringing forks are cancelled (the silent one on its 1xx) and the call ends when they answer"
    )
    func forksEndAfterPickup() throws {
        var (call, _) = Self.pickedUp()
        #expect(call.fork(0, responds: 487) == [])
        let late = call.fork(1, responds: 180)
        #expect(F.sent(late, .cancel).map(\.branch) == [call.forks[1].branch])
        #expect(F.responses(late).isEmpty)
        #expect(call.fork(1, responds: 487) == [])
        #expect(!call.machine.isEnded, "talking")
    }

    @Test("a fork's 200 after the pickup: ACK and BYE to it")
    func forkAnswersAfterPickup() {
        var (call, _) = Self.pickedUp()
        let actions = call.fork(0, responds: 200, body: F.bobSDP)
        #expect(F.sent(actions).map(\.request.method) == [.ack, .bye])
        #expect(F.responses(actions).isEmpty)
    }

    @Test("after pickup: BYE from the picker goes to the caller; lamps out; ended")
    func pickerHangsUp() throws {
        var (call, picker) = Self.pickedUp()
        call.fork(0, responds: 487)
        call.fork(1, responds: 486)
        let bye = F.inDialog(
            .bye,
            ourSide: Self.pickerDialog(call, picker),
            cseq: 6,
            branch: "z9hG4bK-bye-j",
            peer: F.joePhone
        )
        #expect(call.machine.side(of: bye) == .picker)
        let key = try #require(TransactionKey(incoming: bye))
        let actions = call.machine.receivedRequest(bye, transaction: key, from: .picker)
        let byes = F.sent(actions, .bye)
        try #require(byes.count == 1)
        #expect(byes[0].peer == F.alicePhone)
        #expect(byes[0].request.to?.tag == "ph-a")
        #expect(byes[0].request.from?.tag == "t1")
        let lamps = F.lamps(actions)
        #expect(lamps["6495550201"]?.state == .terminated)
        #expect(lamps["6495550203"]?.state == .terminated)
        #expect(lamps["6495550202"] == nil, "Bob's lamp went out at the pickup")
        #expect(!actions.contains(.ended))
        let answered = call.machine.receivedResponse(
            F.response(200, to: byes[0].request, tag: nil),
            branch: byes[0].branch
        )
        #expect(F.responses(answered, to: key).map(\.statusCode) == [200])
        #expect(answered.last == .ended)
    }

    @Test("after pickup: BYE from the caller goes to the picker")
    func callerHangsUpAfterPickup() throws {
        var (call, _) = Self.pickedUp()
        call.fork(0, responds: 487)
        call.fork(1, responds: 486)
        let bye = F.inDialog(.bye, ourSide: call.callerDialog, cseq: 3, branch: "z9hG4bK-bye-a2", peer: F.alicePhone)
        let key = try #require(TransactionKey(incoming: bye))
        let actions = call.machine.receivedRequest(bye, transaction: key, from: .caller)
        let byes = F.sent(actions, .bye)
        try #require(byes.count == 1)
        #expect(byes[0].peer == F.joePhone)
        #expect(byes[0].request.callID == "call-j@198.51.100.4")
        #expect(byes[0].request.from?.tag == "t6")
        #expect(byes[0].request.to?.tag == "ph-j")
        let answered = call.machine.receivedResponse(
            F.response(200, to: byes[0].request, tag: nil),
            branch: byes[0].branch
        )
        #expect(F.responses(answered, to: key).map(\.statusCode) == [200])
        #expect(answered.last == .ended)
    }

    @Test("re-INVITE from the picker is relayed to the caller")
    func reinviteAfterPickup() throws {
        var (call, picker) = Self.pickedUp()
        let reinvite = F.inDialog(
            .invite,
            ourSide: Self.pickerDialog(call, picker),
            cseq: 6,
            branch: "z9hG4bK-reinvite-j",
            peer: F.joePhone,
            body: F.joeSDP,
            contact: "<sip:203@198.51.100.4:5060>"
        )
        let key = try #require(TransactionKey(incoming: reinvite))
        let sent = F.sent(call.machine.receivedRequest(reinvite, transaction: key, from: .picker))
        try #require(sent.count == 1)
        #expect(sent[0].peer == F.alicePhone)
        #expect(sent[0].request.method == .invite)
        #expect(sent[0].request.body == F.joeSDP)
        #expect(sent[0].request.from?.tag == "t1")
    }

    @Test(
        "pickup lamps: callee line terminated, picker line confirmed, caller line confirmed with the picker as remote"
    )
    func lampsAfterPickup() throws {
        var call = Self.ringing()
        let picker = F.pickerInvite()
        var all = call.machine.pickUp(by: picker)
        let acked = call.machine.receivedACK(Self.pickerACK(picker, tag: "t6"), from: .picker)
        all += acked
        let reinvite = try #require(F.sent(acked, .invite).first)
        let ok = F.response(
            200,
            to: reinvite.request,
            tag: nil,
            contact: "<sip:203@198.51.100.4:5060>",
            body: F.joeAnswerSDP
        )
        all += call.machine.receivedResponse(ok, branch: reinvite.branch)
        // The last word on each line.
        let lamps = F.lamps(all)
        let bob = try #require(lamps["6495550202"])
        #expect(bob.state == .terminated)
        let joe = try #require(lamps["6495550203"])
        #expect(joe.state == .confirmed)
        #expect(joe.direction == .initiator)
        #expect(joe.callID == "call-j@198.51.100.4")
        #expect(joe.local.identity == "sip:6495550203@sip.busylamp.test")
        let alice = try #require(lamps["6495550201"])
        #expect(alice.state == .confirmed)
        #expect(alice.remote.identity == "sip:6495550203@sip.busylamp.test")
        #expect(alice.remote.displayName == "Joe")
    }

    // MARK: Our pickup 200s over UDP

    @Test("the placeholder 200 to a UDP picker is retransmitted, doubling up to T2, until the ACK")
    func placeholderRetransmitted() throws {
        var call = Self.ringing()
        let picker = F.pickerInvite()
        let placeholder = try #require(F.responses(call.machine.pickUp(by: picker), to: picker.transaction).first)
        var intervals: [Duration] = []
        for _ in 0..<5 {
            let actions = call.machine.timerFired(.retransmitPickerAnswer)
            #expect(F.responses(actions, to: picker.transaction) == [placeholder])
            for case .startTimer(.retransmitPickerAnswer, let after) in actions { intervals.append(after) }
        }
        #expect(intervals == [.seconds(1), .seconds(2), .seconds(4), .seconds(4), .seconds(4)])
        let acked = call.machine.receivedACK(Self.pickerACK(picker, tag: "t6"), from: .picker)
        #expect(acked.first == .cancelTimer(.retransmitPickerAnswer))
        #expect(call.machine.timerFired(.retransmitPickerAnswer) == [])
    }

    @Test("the 200 to a TCP picker is not retransmitted")
    func reliablePicker() {
        var call = Self.ringing()
        let actions = call.machine.pickUp(by: F.pickerInvite(peer: F.tcpPhone))
        #expect(!actions.contains { if case .startTimer = $0 { return true } else { return false } })
    }

    @Test("picker never ACKs our 200 for 64·T1: BYE to the picker, and the unanswered caller gets a final response")
    func pickerNeverACKsOffer() {
        var call = Self.ringing()
        let picker = F.pickerInvite(body: [])
        _ = call.machine.pickUp(by: picker)
        let run = CallStateMachineTests.runRetransmissions(
            &call,
            timer: .retransmitPickerAnswer,
            firstInterval: .milliseconds(500)
        )
        #expect(run.fired.last! >= .seconds(32))
        #expect(run.fired.dropLast().allSatisfy { $0 < .seconds(32) })
        #expect(F.sent(run.last, .bye).map(\.peer).contains(F.joePhone))
        // The caller was never answered: it must get a final response, not a BYE in an early
        // dialog (RFC 3261 §15: "the callee's UA MUST NOT send a BYE on an early dialog").
        #expect(F.responses(run.last, to: call.caller.transaction).map(\.statusCode) == [480])
        #expect(!F.sent(run.last, .bye).map(\.peer).contains(F.alicePhone))
    }

    @Test("caller without offer never ACKs our 200: BYE to the caller, and the picker's INVITE is answered")
    func callerNeverACKsPickupOffer() {
        var call = Self.ringing(caller: F.callerInvite(body: []))
        let picker = F.pickerInvite()
        _ = call.machine.pickUp(by: picker)
        let run = CallStateMachineTests.runRetransmissions(
            &call,
            timer: .retransmitCallerAnswer,
            firstInterval: .milliseconds(500)
        )
        #expect(F.sent(run.last, .bye).map(\.peer) == [F.alicePhone])
        #expect(F.responses(run.last, to: picker.transaction).map(\.statusCode).first.map { $0 >= 300 } == true)
    }

    @Test("caller without offer ACKs with no answer: the picker's INVITE still gets a final response")
    func callerACKWithoutAnswer() {
        var call = Self.ringing(caller: F.callerInvite(body: []))
        let picker = F.pickerInvite()
        _ = call.machine.pickUp(by: picker)
        let actions = call.machine.receivedACK(call.callerACK(), from: .caller)
        #expect(F.sent(actions, .bye).map(\.peer) == [F.alicePhone])
        #expect(F.responses(actions, to: picker.transaction).map(\.statusCode).first.map { $0 >= 300 } == true)
    }

    @Test("the picker's re-INVITE fails: BYE to the picker, 480 to the caller")
    func reinviteRefused() throws {
        var call = Self.ringing()
        let picker = F.pickerInvite()
        _ = call.machine.pickUp(by: picker)
        let acked = call.machine.receivedACK(Self.pickerACK(picker, tag: "t6"), from: .picker)
        let reinvite = try #require(F.sent(acked, .invite).first)
        let refused = F.response(488, to: reinvite.request, tag: nil)
        let actions = call.machine.receivedResponse(refused, branch: reinvite.branch)
        #expect(F.sent(actions, .bye).map(\.peer) == [F.joePhone])
        #expect(F.responses(actions, to: call.caller.transaction).map(\.statusCode) == [480])
    }

    @Test("a fork already cancelled by the pickup is not cancelled again when the pickup ends early")
    func noSecondCancel() {
        var call = Self.ringing()
        let pickedUp = call.machine.pickUp(by: F.pickerInvite())
        #expect(F.sent(pickedUp, .cancel).map(\.branch) == [call.forks[0].branch])
        let cancelled = call.machine.callerCancelled()
        #expect(F.responses(cancelled, to: call.caller.transaction).map(\.statusCode) == [487])
        // RFC 3261 §9.1: one CANCEL per INVITE; a second client transaction with the same
        // branch would collide with the first in the transaction layer.
        #expect(F.sent(cancelled, .cancel).isEmpty)
    }

    @Test("the caller cancels during the pickup: 487 to the caller, BYE to the picker")
    func callerCancelsDuringPickup() {
        var call = Self.ringing()
        let picker = F.pickerInvite()
        _ = call.machine.pickUp(by: picker)
        let actions = call.machine.callerCancelled()
        #expect(F.responses(actions, to: call.caller.transaction).map(\.statusCode) == [487])
        #expect(F.sent(actions, .bye).map(\.peer) == [F.joePhone])
    }

    /// RFC 3261 §9.2. The request-path fuzzer found this: the CANCEL ended the call and sent the
    /// picker nothing (no dialog to BYE in, no final response), so its INVITE waited forever.
    @Test("a caller without offer cancels after its 200: nothing changes, its ACK completes the pickup")
    func callerCancelAfterItsPickupAnswer() throws {
        var call = Self.ringing(caller: F.callerInvite(body: []))
        let picker = F.pickerInvite()
        let pickedUp = call.machine.pickUp(by: picker)
        #expect(F.responses(pickedUp, to: call.caller.transaction).map(\.statusCode) == [200])
        #expect(call.machine.callerCancelled() == [])
        let acked = call.machine.receivedACK(call.callerACK(body: F.aliceSDP), from: .caller)
        let answer = try #require(F.responses(acked, to: picker.transaction).first)
        #expect(answer.statusCode == 200)
        #expect(answer.body == F.aliceSDP)
    }
}
