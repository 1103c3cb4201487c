import Foundation
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampCore

/// One call through the B2BUA as values: the caller's INVITE, the forks' responses, ACKs, BYEs
/// and re-INVITEs in; what goes on the wire, timers and lamps out. No sockets, no clock;
/// identifiers are counted (`t1` is our tag for the caller, `t2@busylamp` the forks' Call-ID,
/// `t3` our From tag on the forks, then branches).
@Suite("Call state machine", .timeLimit(.minutes(1)))
struct CallStateMachineTests {
    typealias F = CallFixture

    static let twoPhones = [F.destination(F.bobPhone1), F.destination(F.bobPhone2)]

    /// Alice's call ringing at both of Bob's phones, both having sent 180.
    static func ringing() -> CallHarness {
        var call = CallHarness()
        _ = call.start(twoPhones)
        call.fork(0, responds: 180)
        call.fork(1, responds: 180)
        return call
    }

    /// Bob's first phone answered, the other was cancelled (487), Alice has ACKed.
    static func talking() -> CallHarness {
        var call = ringing()
        call.fork(0, responds: 200, body: F.bobSDP)
        call.fork(1, responds: 487)
        _ = call.machine.receivedACK(call.callerACK(), from: .caller)
        return call
    }

    // MARK: Starting

    @Test("no destination: 480 to the caller at once, and the call is over")
    func noDestination() {
        var call = CallHarness()
        let actions = call.start([])
        let expected = SIPResponse(
            replyingTo: call.caller.request,
            statusCode: 480,
            reasonPhrase: "Temporarily Unavailable: No Registered Contact",
            toTag: "t1"
        )
        #expect(actions == [.cancelTimer(.ringTimeout), .respond(expected, to: call.caller.transaction), .ended])
        #expect(call.machine.isEnded)
    }

    @Test("two contacts: two INVITEs with one Call-ID, distinct branches, the caller's identity and body")
    func forksToEveryContact() throws {
        let caller = F.callerInvite(extra: [
            (.supported, "100rel, replaces, timer"),
            (.allow, "INVITE, ACK, BYE, CANCEL, UPDATE"),
            (SIPHeaderName("Alert-Info"), "<http://127.0.0.1/ring.wav>"),
            (SIPHeaderName("X-Private"), "not for the callee"),
        ])
        var call = CallHarness(caller: caller)
        let actions = call.start(Self.twoPhones)
        let invites = F.sent(actions, .invite)
        try #require(invites.count == 2)
        #expect(invites.map(\.peer) == [F.bobPhone1, F.bobPhone2])
        #expect(invites.map(\.request.uri.description) == ["sip:202@198.51.100.2:5060", "sip:202@198.51.100.3:5062"])
        #expect(invites.map(\.branch) == ["z9hG4bKt4", "z9hG4bKt5"])
        for invite in invites.map(\.request) {
            #expect(invite.callID == "t2@busylamp")
            #expect(invite.callID == call.machine.calleeCallID)
            #expect(invite.from?.displayName == "Alice")
            #expect(invite.from?.uri.description == "sip:6495550201@sip.busylamp.test")
            #expect(invite.from?.tag == "t3")
            #expect(invite.to?.uri.description == "sip:6495550202@sip.busylamp.test")
            #expect(invite.to?.tag == nil)
            #expect(invite.cseq == CSeq(number: 1, method: .invite))
            #expect(invite.body == F.aliceSDP)
            #expect(invite.contentType == "application/sdp")
            // RFC 3262: 100rel names this leg's CSeq in RAck; it does not cross the B2BUA.
            #expect(invite.headers.listElements(.supported) == ["replaces", "timer"])
            #expect(invite.headers[.allow] == "INVITE, ACK, BYE, CANCEL, UPDATE")
            #expect(invite.headers[SIPHeaderName("Alert-Info")] == "<http://127.0.0.1/ring.wav>")
            #expect(invite.headers[SIPHeaderName("X-Private")] == nil)
            // The driver writes Via (with the branch) and Contact.
            #expect(!invite.headers.contains(.via))
            #expect(!invite.headers.contains(.contact))
        }
        #expect(actions.last == .startTimer(.ringTimeout, after: .seconds(60)))

        let lamps = F.lamps(actions)
        let bob = try #require(lamps["6495550202"])
        #expect(bob.state == .early)
        #expect(bob.direction == .recipient)
        #expect(bob.callID == "t2@busylamp")
        #expect(bob.remoteTag == "t3")
        #expect(
            bob.localTag == "rt3",
            "a ringing line shows a local-tag of ours, so that Replaces gets a non-empty to-tag"
        )
        #expect(bob.remote.identity == "sip:6495550201@sip.busylamp.test")
        #expect(bob.remote.displayName == "Alice")
        let alice = try #require(lamps["6495550201"])
        #expect(alice.state == .trying)
        #expect(alice.direction == .initiator)
        #expect(alice.callID == "call-a@198.51.100.1")
        #expect(alice.localTag == "ph-a")
        #expect(alice.remoteTag == "t1")
        #expect(call.machine.isRinging)
    }

    // MARK: Ringing

    @Test("180 from a fork: 180 to the caller in our dialog, and the caller's lamp goes early")
    func ringingReachesTheCaller() throws {
        var call = CallHarness()
        _ = call.start(Self.twoPhones)
        let actions = call.fork(0, responds: 180)
        let ringing = SIPResponse(
            replyingTo: call.caller.request,
            statusCode: 180,
            reasonPhrase: "Ringing",
            toTag: "t1"
        )
        #expect(F.responses(actions) == [ringing])
        #expect(actions.first == .respond(ringing, to: call.caller.transaction))
        let lamps = F.lamps(actions)
        #expect(lamps.keys.sorted() == ["6495550201"], "Bob's lamp was already early")
        #expect(lamps["6495550201"]?.state == .early)
        #expect(lamps["6495550201"]?.direction == .initiator)

        // The other phone's 180: the caller hears it again in the same dialog; lamps unchanged.
        let second = call.fork(1, responds: 180)
        #expect(second == [.respond(ringing, to: call.caller.transaction)])
        // A 100 is hop-by-hop: nothing to tell.
        #expect(call.machine.receivedResponse(call.response(100, fork: 0), branch: call.forks[0].branch) == [])
    }

    @Test("183 with early media passes its body to the caller")
    func earlyMediaBody() throws {
        var call = CallHarness()
        _ = call.start([F.destination(F.bobPhone1)])
        let actions = call.fork(0, responds: 183, body: F.bobSDP)
        let response = try #require(F.responses(actions).first)
        #expect(response.statusCode == 183)
        #expect(response.to?.tag == "t1")
        #expect(response.body == F.bobSDP)
        #expect(response.contentType == "application/sdp")
    }

    // MARK: Answer

    @Test("first 200 wins: CANCEL to the other fork, 200 with the body to the caller, lamps confirmed")
    func firstAnswerWins() throws {
        var call = Self.ringing()
        let actions = call.fork(0, responds: 200, body: F.bobSDP)

        #expect(actions.first == .cancelTimer(.ringTimeout))
        let cancels = F.sent(actions, .cancel)
        try #require(cancels.count == 1)
        let cancel = cancels[0]
        let loser = call.forks[1]
        // RFC 3261 §9.1: same Request-URI, Call-ID, From, To, CSeq number and branch.
        #expect(cancel.branch == loser.branch)
        #expect(cancel.peer == F.bobPhone2)
        #expect(cancel.request.uri == loser.request.uri)
        #expect(cancel.request.callID == loser.request.callID)
        #expect(cancel.request.headers[.from] == loser.request.headers[.from])
        #expect(cancel.request.headers[.to] == loser.request.headers[.to])
        #expect(cancel.request.cseq == CSeq(number: 1, method: .cancel))

        let answers = F.responses(actions, to: call.caller.transaction)
        try #require(answers.count == 1)
        #expect(answers[0].statusCode == 200)
        #expect(answers[0].to?.tag == "t1")
        #expect(answers[0].cseq == CSeq(number: 2, method: .invite))
        #expect(answers[0].body == F.bobSDP)
        #expect(answers[0].contentType == "application/sdp")
        // Alice is on UDP: our 2xx is ours to retransmit (RFC 3261 §13.3.1.4).
        #expect(actions.contains(.startTimer(.retransmitCallerAnswer, after: .milliseconds(500))))

        let lamps = F.lamps(actions)
        #expect(lamps["6495550201"]?.state == .confirmed)
        #expect(lamps["6495550202"]?.state == .confirmed)
        #expect(lamps["6495550202"]?.localTag == "callee-0")
        #expect(!actions.contains(.ended))

        // The loser's 487 ends its fork and nothing else.
        #expect(call.fork(1, responds: 487) == [])
        #expect(!call.machine.isEnded)
    }

    @Test("a fork with no provisional yet is cancelled only when its 1xx arrives (RFC 3261 §9.1)")
    func cancelWaitsForProvisional() throws {
        var call = CallHarness()
        _ = call.start(Self.twoPhones)
        call.fork(0, responds: 180)
        let answered = call.fork(0, responds: 200, body: F.bobSDP)
        #expect(F.sent(answered, .cancel).isEmpty)

        let ringing = call.fork(1, responds: 180)
        let cancels = F.sent(ringing, .cancel)
        #expect(cancels.map(\.branch) == [call.forks[1].branch])
        #expect(F.responses(ringing).isEmpty, "the caller is answered already")
        #expect(ringing.count == 1)
        // Once sent, not again.
        #expect(call.fork(1, responds: 183) == [])
        #expect(call.fork(1, responds: 487) == [])
    }

    @Test("RFC 3261 §9.1: a 100 Trying is a provisional too; a cancelled fork that sent only 100 gets CANCEL")
    func cancelAfterTrying() {
        var call = CallHarness()
        _ = call.start(Self.twoPhones)
        call.fork(0, responds: 100)
        call.fork(1, responds: 100)
        let actions = call.machine.timerFired(.ringTimeout)
        #expect(F.responses(actions).map(\.statusCode) == [480])
        #expect(F.sent(actions, .cancel).map(\.branch) == call.forks.map(\.branch))
    }

    @Test("late 200 from a loser: ACK and BYE to it (RFC 3261 §13.2.2.4, §15)")
    func lateAnswerIsHungUp() throws {
        var call = Self.ringing()
        call.fork(0, responds: 200, body: F.bobSDP)
        let actions = call.fork(1, responds: 200, body: F.bobSDP)
        let sent = F.sent(actions)
        try #require(sent.count == 2)
        let (ack, bye) = (sent[0], sent[1])
        #expect(ack.request.method == .ack)
        #expect(ack.request.cseq == CSeq(number: 1, method: .ack))
        #expect(ack.request.to?.tag == "callee-1")
        #expect(ack.request.from?.tag == "t3")
        #expect(ack.request.uri.description == "sip:202@198.51.100.3:5062")
        #expect(ack.peer == F.bobPhone2)
        #expect(bye.request.method == .bye)
        #expect(bye.request.cseq == CSeq(number: 2, method: .bye))
        #expect(bye.request.callID == "t2@busylamp")
        #expect(bye.request.to?.tag == "callee-1")
        #expect(bye.peer == F.bobPhone2)
        #expect(ack.branch != bye.branch)
        #expect(F.responses(actions).isEmpty)

        // Its 2xx again: our ACK was lost, so the same ACK goes again.
        let again = call.fork(1, responds: 200, body: F.bobSDP)
        #expect(F.sent(again).map(\.request) == [ack.request])
    }

    @Test("caller's ACK goes on to the winner with CSeq 1 and the ACK's body")
    func callerACKRelayed() throws {
        var call = Self.ringing()
        call.fork(0, responds: 200)  // an offer-less 200: the caller's ACK carries the answer
        let actions = call.machine.receivedACK(call.callerACK(body: F.aliceSDP), from: .caller)
        #expect(actions.first == .cancelTimer(.retransmitCallerAnswer))
        let sent = F.sent(actions)
        try #require(sent.count == 1)
        let ack = sent[0]
        #expect(ack.request.method == .ack)
        #expect(ack.request.cseq == CSeq(number: 1, method: .ack))
        #expect(ack.request.uri.description == "sip:202@198.51.100.2:5060")
        #expect(ack.request.to?.tag == "callee-0")
        #expect(ack.request.from?.tag == "t3")
        #expect(ack.request.body == F.aliceSDP)
        #expect(ack.request.contentType == "application/sdp")
        #expect(ack.peer == F.bobPhone1)

        // The winner's 2xx again: our ACK is repeated.
        let again = call.fork(0, responds: 200)
        #expect(F.sent(again).map(\.request) == [ack.request])
    }

    // MARK: Failures

    @Test("every fork busy: 486 to the caller, lamps out, call ended")
    func allBusy() throws {
        var call = Self.ringing()
        #expect(call.fork(0, responds: 486) == [])
        let actions = call.fork(1, responds: 486)
        let expected = SIPResponse(replyingTo: call.caller.request, statusCode: 486, toTag: "t1")
        #expect(F.responses(actions) == [expected])
        #expect(actions.first == .cancelTimer(.ringTimeout))
        let lamps = F.lamps(actions)
        #expect(lamps["6495550201"]?.state == .terminated)
        #expect(lamps["6495550202"]?.state == .terminated)
        #expect(actions.last == .ended)
        #expect(call.machine.isEnded)
        #expect(actions.filter { $0 == .ended }.count == 1)
    }

    @Test("mixed failures: 480 to the caller")
    func mixedFailures() {
        var call = Self.ringing()
        call.fork(0, responds: 486)
        let actions = call.fork(1, responds: 408)
        #expect(F.responses(actions).map(\.statusCode) == [480])
        #expect(actions.last == .ended)
    }

    @Test("a request that could not be sent counts as its failure (503)")
    func sendFailure() {
        var call = CallHarness()
        _ = call.start([F.destination(F.bobPhone1)])
        let actions = call.machine.requestFailed(branch: call.forks[0].branch, status: 503)
        #expect(F.responses(actions).map(\.statusCode) == [480])
        #expect(actions.last == .ended)
    }

    struct FailureCase: Sendable, CustomTestStringConvertible {
        var statuses: [Int]
        var expected: Int
        var testDescription: String { "\(statuses) -> \(expected)" }
    }

    @Test(
        "the caller's final status from the forks' failures",
        arguments: [
            FailureCase(statuses: [486], expected: 486),
            FailureCase(statuses: [486, 486], expected: 486),
            FailureCase(statuses: [486, 404], expected: 480),
            FailureCase(statuses: [404], expected: 404),
            FailureCase(statuses: [488], expected: 488),
            FailureCase(statuses: [486, 603], expected: 603),
            FailureCase(statuses: [408, 503], expected: 480),
            FailureCase(statuses: [487, 487], expected: 480),
        ]
    )
    func bestFailure(_ row: FailureCase) {
        #expect(CallStateMachine.bestFailure(row.statuses).0 == row.expected)
    }

    @Test("ring timeout: CANCEL to every fork and 480 to the caller; ended once the forks answer 487")
    func ringTimeout() throws {
        var call = Self.ringing()
        let actions = call.machine.timerFired(.ringTimeout)
        let expected = SIPResponse(
            replyingTo: call.caller.request,
            statusCode: 480,
            reasonPhrase: "No Answer",
            toTag: "t1"
        )
        #expect(F.responses(actions) == [expected])
        #expect(F.sent(actions, .cancel).map(\.branch) == call.forks.map(\.branch))
        #expect(F.sent(actions, .cancel).map(\.peer) == [F.bobPhone1, F.bobPhone2])
        #expect(F.lamps(actions).values.allSatisfy { $0.state == .terminated })
        #expect(F.lampCount(actions) == 2)
        #expect(!actions.contains(.ended), "the forks have not answered their CANCELs yet")
        #expect(!call.machine.isRinging)

        #expect(call.fork(0, responds: 487) == [])
        #expect(call.fork(1, responds: 487) == [.ended])
        // A late timer changes nothing.
        #expect(call.machine.timerFired(.ringTimeout) == [])
    }

    @Test("ring timeout after the answer changes nothing")
    func ringTimeoutAfterAnswer() {
        var call = Self.ringing()
        call.fork(0, responds: 200, body: F.bobSDP)
        #expect(call.machine.timerFired(.ringTimeout) == [])
    }

    @Test("caller's CANCEL: 487 to its INVITE and CANCEL to the forks")
    func callerCancels() {
        var call = Self.ringing()
        let actions = call.machine.callerCancelled()
        let expected = SIPResponse(replyingTo: call.caller.request, statusCode: 487, toTag: "t1")
        #expect(F.responses(actions) == [expected])
        #expect(F.sent(actions, .cancel).map(\.branch) == call.forks.map(\.branch))
        #expect(F.lamps(actions).values.allSatisfy { $0.state == .terminated })
        #expect(call.fork(0, responds: 487) == [])
        #expect(call.fork(1, responds: 487) == [.ended])
    }

    @Test("a 200 crossing the caller's CANCEL: ACK and BYE to that fork, then the call ends")
    func answerCrossesCancel() throws {
        var call = CallHarness()
        _ = call.start([F.destination(F.bobPhone1)])
        call.fork(0, responds: 180)
        let cancelled = call.machine.callerCancelled()
        #expect(F.responses(cancelled).map(\.statusCode) == [487])
        #expect(!cancelled.contains(.ended))
        let crossed = call.fork(0, responds: 200, body: F.bobSDP)
        #expect(F.sent(crossed).map(\.request.method) == [.ack, .bye])
        #expect(F.responses(crossed).isEmpty, "the caller has its 487")
        #expect(crossed.last == .ended)
    }

    @Test("early dialog: an UPDATE from the caller goes to the one fork that has spoken; with two, 481")
    func earlyUpdate() throws {
        var call = CallHarness()
        _ = call.start(Self.twoPhones)
        call.fork(0, responds: 180)
        let update = F.inDialog(
            .update,
            ourSide: call.callerDialog,
            cseq: 3,
            branch: "z9hG4bK-upd",
            peer: F.alicePhone,
            body: F.aliceSDP,
            contact: "<sip:201@198.51.100.1:5060>"
        )
        let key = try #require(TransactionKey(incoming: update))
        let relayed = call.machine.receivedRequest(update, transaction: key, from: .caller)
        #expect(F.sent(relayed, .update).map(\.peer) == [F.bobPhone1])

        call.fork(1, responds: 180)
        let second = F.inDialog(
            .update,
            ourSide: call.callerDialog,
            cseq: 4,
            branch: "z9hG4bK-upd2",
            peer: F.alicePhone
        )
        let secondKey = try #require(TransactionKey(incoming: second))
        let refused = call.machine.receivedRequest(second, transaction: secondKey, from: .caller)
        #expect(F.responses(refused, to: secondKey).map(\.statusCode) == [481])
        #expect(F.sent(refused).isEmpty)
    }

    @Test("caller's CANCEL after the answer changes nothing")
    func cancelAfterAnswer() {
        var call = Self.ringing()
        call.fork(0, responds: 200, body: F.bobSDP)
        #expect(call.machine.callerCancelled() == [])
    }

    // MARK: Talking

    @Test("BYE from the caller: relayed to the callee, lamps out at once; the callee's 200 goes back and ends the call")
    func callerHangsUp() throws {
        var call = Self.talking()
        let bye = F.inDialog(.bye, ourSide: call.callerDialog, cseq: 3, branch: "z9hG4bK-bye-a", peer: F.alicePhone)
        let key = try #require(TransactionKey(incoming: bye))
        let actions = call.machine.receivedRequest(bye, transaction: key, from: .caller)
        let byes = F.sent(actions, .bye)
        try #require(byes.count == 1)
        #expect(byes[0].peer == F.bobPhone1)
        #expect(byes[0].request.uri.description == "sip:202@198.51.100.2:5060")
        #expect(byes[0].request.callID == "t2@busylamp")
        #expect(byes[0].request.to?.tag == "callee-0")
        #expect(byes[0].request.from?.tag == "t3")
        #expect(byes[0].request.cseq == CSeq(number: 2, method: .bye))
        let lamps = F.lamps(actions)
        #expect(lamps["6495550201"]?.state == .terminated)
        #expect(lamps["6495550202"]?.state == .terminated)
        #expect(F.lampCount(actions) == 2)
        #expect(F.responses(actions).isEmpty, "the BYE is answered with the callee's answer")
        #expect(!actions.contains(.ended))
        #expect(!call.machine.isEnded)

        let ok = F.response(200, to: byes[0].request, tag: nil)
        let answered = call.machine.receivedResponse(ok, branch: byes[0].branch)
        let expected = SIPResponse(replyingTo: bye, statusCode: 200, toTag: nil)
        #expect(answered == [.respond(expected, to: key), .ended])
        #expect(call.machine.isEnded)
    }

    @Test("BYE from the callee: relayed to the caller in our dialog with it, its answer back, ended")
    func calleeHangsUp() throws {
        var call = Self.talking()
        let bye = F.inDialog(.bye, ourSide: call.calleeDialog(0), cseq: 7, branch: "z9hG4bK-bye-b", peer: F.bobPhone1)
        #expect(call.machine.side(of: bye) == .callee(0))
        let key = try #require(TransactionKey(incoming: bye))
        let actions = call.machine.receivedRequest(bye, transaction: key, from: .callee(0))
        let byes = F.sent(actions, .bye)
        try #require(byes.count == 1)
        #expect(byes[0].peer == F.alicePhone)
        #expect(byes[0].request.uri.description == "sip:201@198.51.100.1:5060")
        #expect(byes[0].request.callID == "call-a@198.51.100.1")
        #expect(byes[0].request.from?.tag == "t1")
        #expect(byes[0].request.to?.tag == "ph-a")
        #expect(byes[0].request.cseq == CSeq(number: 1, method: .bye))
        #expect(F.lamps(actions).values.map(\.state) == [.terminated, .terminated])
        #expect(!actions.contains(.ended))

        let ok = F.response(200, to: byes[0].request, tag: nil)
        let answered = call.machine.receivedResponse(ok, branch: byes[0].branch)
        #expect(F.responses(answered, to: key).map(\.statusCode) == [200])
        #expect(answered.last == .ended)
    }

    @Test("the relayed BYE times out: the hanger-up gets 408 and the call still ends")
    func relayedByeTimesOut() throws {
        var call = Self.talking()
        let bye = F.inDialog(.bye, ourSide: call.callerDialog, cseq: 3, branch: "z9hG4bK-bye-t", peer: F.alicePhone)
        let key = try #require(TransactionKey(incoming: bye))
        let ourBye = try #require(
            F.sent(call.machine.receivedRequest(bye, transaction: key, from: .caller), .bye).first
        )
        let failed = call.machine.requestFailed(branch: ourBye.branch, status: 408)
        #expect(F.responses(failed, to: key).map(\.statusCode) == [408])
        #expect(failed.last == .ended)
    }

    @Test("BYE from the caller in its early dialog: 200, 487 to its INVITE, CANCEL to the ringing forks")
    func byeWhileRinging() throws {
        var call = Self.ringing()
        let bye = F.inDialog(.bye, ourSide: call.callerDialog, cseq: 3, branch: "z9hG4bK-bye-e", peer: F.alicePhone)
        let key = try #require(TransactionKey(incoming: bye))
        let actions = call.machine.receivedRequest(bye, transaction: key, from: .caller)
        #expect(F.responses(actions, to: key).map(\.statusCode) == [200])
        #expect(F.responses(actions).map(\.statusCode).sorted() == [200, 487])
        #expect(F.sent(actions, .cancel).map(\.branch) == call.forks.map(\.branch))
        #expect(F.sent(actions, .bye).isEmpty, "nothing is connected: no BYE goes anywhere")
    }

    @Test("BYEs crossing: the second one is answered 200 at once")
    func byesCross() throws {
        var call = Self.talking()
        let fromCaller = F.inDialog(
            .bye,
            ourSide: call.callerDialog,
            cseq: 3,
            branch: "z9hG4bK-bye-x",
            peer: F.alicePhone
        )
        let ourBye = try #require(
            F.sent(
                call.machine.receivedRequest(
                    fromCaller,
                    transaction: TransactionKey(incoming: fromCaller)!,
                    from: .caller
                ),
                .bye
            )
            .first
        )
        let fromCallee = F.inDialog(
            .bye,
            ourSide: call.calleeDialog(0),
            cseq: 7,
            branch: "z9hG4bK-bye-y",
            peer: F.bobPhone1
        )
        let calleeKey = try #require(TransactionKey(incoming: fromCallee))
        let crossing = call.machine.receivedRequest(fromCallee, transaction: calleeKey, from: .callee(0))
        #expect(F.responses(crossing, to: calleeKey).map(\.statusCode) == [200])
        #expect(F.sent(crossing).isEmpty)
        let answered = call.machine.receivedResponse(
            F.response(481, to: ourBye.request, tag: nil),
            branch: ourBye.branch
        )
        #expect(answered.last == .ended)
    }

    @Test("in-dialog requests name their side by Call-ID and tags")
    func sides() {
        let call = Self.talking()
        let fromCaller = F.inDialog(.info, ourSide: call.callerDialog, cseq: 3, branch: "z9hG4bK-x", peer: F.alicePhone)
        let fromCallee = F.inDialog(
            .info,
            ourSide: call.calleeDialog(0),
            cseq: 3,
            branch: "z9hG4bK-y",
            peer: F.bobPhone1
        )
        let fromLoser = F.inDialog(
            .info,
            ourSide: call.calleeDialog(1),
            cseq: 3,
            branch: "z9hG4bK-z",
            peer: F.bobPhone2
        )
        var stranger = call.callerDialog
        stranger.ourTag = "not-ours"
        let unknown = F.inDialog(.info, ourSide: stranger, cseq: 3, branch: "z9hG4bK-w", peer: F.alicePhone)
        #expect(call.machine.side(of: fromCaller) == .caller)
        #expect(call.machine.side(of: fromCallee) == .callee(0))
        #expect(call.machine.side(of: fromLoser) == .callee(1), "its early dialog (from its 180) is still told apart")
        #expect(call.machine.side(of: unknown) == nil)
    }

    @Test(
        "re-INVITE from the caller: relayed with its body, the answer relayed back, the ACK with the re-INVITE's CSeq"
    )
    func reinviteFromCaller() throws {
        var call = Self.talking()
        let newOffer = F.sdp(
            user: "alice",
            session: "2890844526",
            version: 2_890_844_528,
            host: "198.51.100.1",
            port: 49172
        )
        let reinvite = F.inDialog(
            .invite,
            ourSide: call.callerDialog,
            cseq: 3,
            branch: "z9hG4bK-reinvite-a",
            peer: F.alicePhone,
            body: newOffer,
            contact: "<sip:201@198.51.100.1:5060>"
        )
        let key = try #require(TransactionKey(incoming: reinvite))
        let actions = call.machine.receivedRequest(reinvite, transaction: key, from: .caller)
        let sent = F.sent(actions)
        try #require(sent.count == 1)
        let forward = sent[0]
        #expect(forward.request.method == .invite)
        #expect(forward.peer == F.bobPhone1)
        #expect(forward.request.uri.description == "sip:202@198.51.100.2:5060")
        #expect(forward.request.callID == "t2@busylamp")
        #expect(forward.request.to?.tag == "callee-0")
        #expect(forward.request.from?.tag == "t3")
        #expect(forward.request.cseq == CSeq(number: 2, method: .invite))
        #expect(forward.request.body == newOffer)
        #expect(forward.request.contentType == "application/sdp")
        #expect(call.machine.branches.contains(forward.branch))

        // Bob's 200 with his answer goes back to Alice's re-INVITE.
        let newAnswer = F.sdp(user: "bob", session: "1001", version: 1002, host: "198.51.100.2", port: 51374)
        var ok = F.response(200, to: forward.request, tag: nil, contact: call.contact(0), body: newAnswer)
        ok.headers.add(SIPHeaderName("Session-Expires"), "1800;refresher=uac")
        #expect(
            call.machine.receivedResponse(F.response(100, to: forward.request, tag: nil), branch: forward.branch) == []
        )
        let relayed = call.machine.receivedResponse(ok, branch: forward.branch)
        let answers = F.responses(relayed, to: key)
        try #require(answers.count == 1)
        #expect(relayed.count == 1)
        #expect(answers[0].statusCode == 200)
        #expect(answers[0].cseq == CSeq(number: 3, method: .invite))
        #expect(answers[0].callID == "call-a@198.51.100.1")
        #expect(answers[0].to?.tag == "t1")
        #expect(answers[0].body == newAnswer)
        #expect(answers[0].contentType == "application/sdp")
        #expect(answers[0].headers[SIPHeaderName("Session-Expires")] == "1800;refresher=uac")
        #expect(!answers[0].headers.contains(.contact), "the driver adds ours")
        #expect(call.machine.branches.contains(forward.branch), "the 2xx may come again until the ACK passes")

        // Alice's ACK for it goes to Bob with the CSeq of the re-INVITE we sent him.
        let ack = F.inDialog(.ack, ourSide: call.callerDialog, cseq: 3, branch: "z9hG4bK-ack2", peer: F.alicePhone)
        let acks = F.sent(call.machine.receivedACK(ack, from: .caller))
        try #require(acks.count == 1)
        #expect(acks[0].request.method == .ack)
        #expect(acks[0].request.cseq == CSeq(number: 2, method: .ack))
        #expect(acks[0].request.to?.tag == "callee-0")
        #expect(acks[0].peer == F.bobPhone1)
        #expect(!call.machine.branches.contains(forward.branch), "the relay is done once its ACK passed")
    }

    @Test("re-INVITE from the callee: relayed to the caller in our dialog with it, and back")
    func reinviteFromCallee() throws {
        var call = Self.talking()
        let hold = F.sdp(user: "bob", session: "1001", version: 1002, host: "0.0.0.0", port: 51372)
        let reinvite = F.inDialog(
            .invite,
            ourSide: call.calleeDialog(0),
            cseq: 20,
            branch: "z9hG4bK-reinvite-b",
            peer: F.bobPhone1,
            body: hold,
            contact: call.contact(0)
        )
        let key = try #require(TransactionKey(incoming: reinvite))
        let actions = call.machine.receivedRequest(reinvite, transaction: key, from: .callee(0))
        let sent = F.sent(actions)
        try #require(sent.count == 1)
        let forward = sent[0]
        #expect(forward.peer == F.alicePhone)
        #expect(forward.request.method == .invite)
        #expect(forward.request.uri.description == "sip:201@198.51.100.1:5060")
        #expect(forward.request.callID == "call-a@198.51.100.1")
        #expect(forward.request.from?.tag == "t1")
        #expect(forward.request.to?.tag == "ph-a")
        #expect(forward.request.cseq == CSeq(number: 1, method: .invite))
        #expect(forward.request.body == hold)

        let ok = F.response(
            200,
            to: forward.request,
            tag: nil,
            contact: "<sip:201@198.51.100.1:5060>",
            body: F.aliceSDP
        )
        let relayed = call.machine.receivedResponse(ok, branch: forward.branch)
        let answers = F.responses(relayed, to: key)
        try #require(answers.count == 1)
        #expect(answers[0].statusCode == 200)
        #expect(answers[0].cseq == CSeq(number: 20, method: .invite))
        #expect(answers[0].body == F.aliceSDP)

        let ack = F.inDialog(.ack, ourSide: call.calleeDialog(0), cseq: 20, branch: "z9hG4bK-ack3", peer: F.bobPhone1)
        let acks = F.sent(call.machine.receivedACK(ack, from: .callee(0)))
        try #require(acks.count == 1)
        #expect(acks[0].request.cseq == CSeq(number: 1, method: .ack))
        #expect(acks[0].peer == F.alicePhone)
    }

    @Test("INFO relayed with its body and type; an out-of-order CSeq is refused 500")
    func infoRelayed() throws {
        var call = Self.talking()
        let dtmf = Array("Signal=5\r\nDuration=160\r\n".utf8)
        var info = F.inDialog(.info, ourSide: call.callerDialog, cseq: 3, branch: "z9hG4bK-info", peer: F.alicePhone)
        info.headers.add(.contentType, "application/dtmf-relay")
        info.body = dtmf
        let key = try #require(TransactionKey(incoming: info))
        let sent = F.sent(call.machine.receivedRequest(info, transaction: key, from: .caller))
        try #require(sent.count == 1)
        #expect(sent[0].request.method == .info)
        #expect(sent[0].request.body == dtmf)
        #expect(sent[0].request.contentType == "application/dtmf-relay")
        #expect(sent[0].peer == F.bobPhone1)

        let stale = F.inDialog(.info, ourSide: call.callerDialog, cseq: 2, branch: "z9hG4bK-old", peer: F.alicePhone)
        let staleKey = try #require(TransactionKey(incoming: stale))
        let refused = call.machine.receivedRequest(stale, transaction: staleKey, from: .caller)
        #expect(F.responses(refused, to: staleKey).map(\.statusCode) == [500])
        #expect(F.sent(refused).isEmpty)
    }

    // MARK: 2xx retransmission

    /// Fires the retransmission timer as the driver would (each after the interval last asked
    /// for) until it stops asking; returns the virtual times of each firing and the last actions.
    static func runRetransmissions(
        _ call: inout CallHarness,
        timer: CallTimer,
        firstInterval: Duration
    ) -> (fired: [Duration], intervals: [Duration], last: [CallAction]) {
        var clock = Duration.zero
        var interval = firstInterval
        var fired: [Duration] = []
        var intervals: [Duration] = [firstInterval]
        for _ in 0..<40 {
            clock += interval
            fired.append(clock)
            let actions = call.machine.timerFired(timer)
            let next = actions.compactMap { action -> Duration? in
                guard case .startTimer(let kind, let after) = action, kind == timer else { return nil }
                return after
            }
            guard let after = next.first else { return (fired, intervals, actions) }
            interval = after
            intervals.append(after)
        }
        return (fired, intervals, [])
    }

    @Test("our 200 to a UDP caller is retransmitted at T1, 2·T1, … up to T2 and stops on the ACK")
    func callerAnswerRetransmitted() throws {
        var call = Self.ringing()
        let answered = call.fork(0, responds: 200, body: F.bobSDP)
        let ok = try #require(F.responses(answered).first)
        #expect(answered.contains(.startTimer(.retransmitCallerAnswer, after: .milliseconds(500))))
        var intervals: [Duration] = []
        for _ in 0..<5 {
            let actions = call.machine.timerFired(.retransmitCallerAnswer)
            #expect(F.responses(actions, to: call.caller.transaction) == [ok])
            for case .startTimer(.retransmitCallerAnswer, let after) in actions { intervals.append(after) }
        }
        #expect(intervals == [.seconds(1), .seconds(2), .seconds(4), .seconds(4), .seconds(4)])
        let acked = call.machine.receivedACK(call.callerACK(), from: .caller)
        #expect(acked.first == .cancelTimer(.retransmitCallerAnswer))
        #expect(call.machine.timerFired(.retransmitCallerAnswer) == [])
    }

    @Test("no ACK for 64·T1: BYE to both sides, lamps out (RFC 3261 §13.3.1.4)")
    func callerAnswerNeverAcknowledged() throws {
        var call = Self.ringing()
        call.fork(0, responds: 200, body: F.bobSDP)
        call.fork(1, responds: 487)
        let run = Self.runRetransmissions(&call, timer: .retransmitCallerAnswer, firstInterval: .milliseconds(500))
        let t1x64 = CallStateMachine.Settings().timers.t1 * 64
        try #require(run.fired.count >= 2)
        #expect(run.fired.last! >= t1x64)
        #expect(run.fired.dropLast().allSatisfy { $0 < t1x64 }, "retransmitted all along before 64·T1")
        let byes = F.sent(run.last, .bye)
        #expect(Set(byes.map(\.peer)) == [F.alicePhone, F.bobPhone1])
        #expect(F.lamps(run.last).values.allSatisfy { $0.state == .terminated })
        #expect(run.last.last == .ended)
    }

    @Test("a caller on TCP gets no 2xx retransmissions")
    func reliableCallerNoRetransmission() {
        var call = CallHarness(caller: F.callerInvite(peer: F.tcpPhone))
        _ = call.start([F.destination(F.bobPhone1)])
        call.fork(0, responds: 180)
        let actions = call.fork(0, responds: 200, body: F.bobSDP)
        #expect(F.responses(actions).map(\.statusCode) == [200])
        #expect(!actions.contains { if case .startTimer = $0 { return true } else { return false } })
    }
}
