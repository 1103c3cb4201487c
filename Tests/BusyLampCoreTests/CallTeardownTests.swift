import Foundation
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampCore

/// What ends a call a crash interrupts (``CallTeardown``), in each phase of the call: the
/// messages must reach every phone still in it, in its dialog, and nothing else.
@Suite("Call teardown after a crash", .timeLimit(.minutes(1)))
struct CallTeardownTests {
    typealias F = CallFixture
    typealias Ringing = CallStateMachineTests

    @Test("ringing: 480 to the caller with our To tag, CANCEL with each fork's branch")
    func ringing() throws {
        let call = Ringing.ringing()
        let teardown = call.machine.teardown
        #expect(teardown.callID == "c1")
        try #require(teardown.steps.count == 3)
        #expect(
            teardown.steps[0]
                == .answer(
                    invite: call.caller.request,
                    from: F.alicePhone,
                    status: 480,
                    reason: CallTeardown.abandonedReason,
                    toTag: call.machine.caller.localTag
                )
        )
        for (index, step) in teardown.steps.dropFirst().enumerated() {
            guard case .cancel(let cancel, let invite, let branch, let peer) = step else {
                Issue.record("step \(index + 1) is \(step), not a CANCEL")
                continue
            }
            #expect(branch == call.forks[index].branch)
            #expect(peer == call.forks[index].peer)
            #expect(invite == call.forks[index].request)
            #expect(cancel.method == .cancel)
            #expect(cancel.uri == invite.uri)
            #expect(cancel.callID == invite.callID)
            #expect(cancel.headers[.from] == invite.headers[.from])
            #expect(cancel.headers[.to] == invite.headers[.to])
            #expect(cancel.cseq == CSeq(number: 1, method: .cancel))
        }
    }

    @Test("the teardown leaves the call as it was")
    func readingTheTeardownChangesNothing() {
        let call = Ringing.ringing()
        let before = call.machine
        _ = call.machine.teardown
        #expect(call.machine.isRinging == before.isRinging)
        #expect(call.machine.teardown == before.teardown)
    }

    @Test("talking: BYE to the caller and to the answering phone, each in its dialog, CSeq jumped by the margin")
    func talking() throws {
        let call = Ringing.talking()
        let steps = call.machine.teardown.steps
        try #require(steps.count == 2, "the cancelled fork (487) needs nothing: \(steps)")
        guard case .request(let toCaller, let callerPeer) = steps[0],
            case .request(let toCallee, let calleePeer) = steps[1]
        else {
            Issue.record("not two requests: \(steps)")
            return
        }
        #expect(callerPeer == F.alicePhone)
        #expect(calleePeer == F.bobPhone1)

        let caller = call.callerDialog
        #expect(toCaller.method == .bye)
        #expect(toCaller.callID == caller.callID)
        #expect(toCaller.from?.tag == caller.ourTag)
        #expect(toCaller.to?.tag == caller.theirTag)
        #expect(toCaller.uri.description == "sip:201@198.51.100.1:5060", "the caller's Contact")
        #expect(toCaller.cseq?.number ?? 0 > CallTeardown.sequenceMargin)

        let callee = call.calleeDialog(0)
        #expect(toCallee.method == .bye)
        #expect(toCallee.callID == callee.callID)
        #expect(toCallee.from?.tag == callee.ourTag)
        #expect(toCallee.to?.tag == callee.theirTag)
        #expect(toCallee.uri.description == "sip:202@198.51.100.2:5060", "the answering phone's Contact")
        // The INVITE was CSeq 1: the jump lands at 1 + margin, and the BYE takes the next.
        #expect(toCallee.cseq == CSeq(number: 2 + CallTeardown.sequenceMargin, method: .bye))
    }

    @Test("answered, the caller's ACK not yet in: the caller still gets a BYE (its 200 made the dialog)")
    func answeredBeforeTheCallersACK() throws {
        var call = Ringing.ringing()
        call.fork(0, responds: 200, body: F.bobSDP)
        let methods = call.machine.teardown.steps.compactMap { step -> SIPMethod? in
            if case .request(let request, _) = step { request.method } else { nil }
        }
        #expect(methods.first == .bye, "the caller's BYE comes first")
        #expect(methods.filter { $0 == .bye }.count == 2)
    }

    @Test("a BYE crossing the teardown: a request relayed after the last write still leaves room below the jump")
    func byeSequenceStaysAboveRelayedRequests() throws {
        var call = Ringing.talking()
        let first = try #require(Self.byes(call.machine.teardown)[F.bobPhone1])
        // A re-INVITE from Alice relayed to Bob uses the next CSeq in our dialog with Bob.
        let reInvite = F.inDialog(
            .invite,
            ourSide: call.callerDialog,
            cseq: 3,
            branch: "z9hG4bK-re",
            peer: F.alicePhone,
            body: F.aliceSDP
        )
        let key = try #require(TransactionKey(incoming: reInvite))
        _ = call.machine.receivedRequest(reInvite, transaction: key, from: .caller)
        let second = try #require(Self.byes(call.machine.teardown)[F.bobPhone1])
        #expect(second.cseq!.number > first.cseq!.number, "the teardown follows the dialog")
    }

    @Test("ended: nothing to send, and the B2BUA forgets the call")
    func ended() throws {
        var call = Ringing.talking()
        let bye = F.inDialog(.bye, ourSide: call.callerDialog, cseq: 3, branch: "z9hG4bK-bye-a", peer: F.alicePhone)
        let key = try #require(TransactionKey(incoming: bye))
        let relayed = try #require(
            F.sent(call.machine.receivedRequest(bye, transaction: key, from: .caller), .bye).first
        )
        #expect(!call.machine.teardown.steps.isEmpty, "until the callee answers the BYE, it is still owed one")
        let actions = call.machine.receivedResponse(
            F.response(200, to: relayed.request, tag: nil),
            branch: relayed.branch
        )
        #expect(actions.contains(.ended))
        #expect(call.machine.teardown.steps.isEmpty)
        #expect(B2BUAStateMachine(settings: F.settings).teardown(ofCall: "c1") == nil)
    }

    private static func byes(_ teardown: CallTeardown) -> [SIPPeer: SIPRequest] {
        var byes: [SIPPeer: SIPRequest] = [:]
        for case .request(let request, let peer) in teardown.steps where request.method == .bye { byes[peer] = request }
        return byes
    }
}
