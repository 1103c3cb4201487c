import SIPCore
import Testing

@testable import SIPTransactions

@Suite(.timeLimit(.minutes(1))) struct ClientInviteTransactionStateMachineTests {
    @Test func timerADoublesWithoutCapUntilTimerB() throws {
        let invite = try TestMessages.invite()
        let sent = SIPMessage.request(invite)
        var machine = ClientInviteTransactionStateMachine(request: invite, reliability: .unreliable)
        #expect(
            machine.start() == [
                .send(sent), .startTimer(.A, after: .milliseconds(500)), .startTimer(.B, after: .seconds(32)),
            ]
        )
        // RFC 3261 §17.1.1.2: intervals "double after each transmission" (T2 caps E and G, not A):
        // 0.5, 1, 2, 4, 8, 16 s: seven transmissions before Timer B fires at 32 s.
        for seconds in [1, 2, 4, 8, 16] {
            #expect(machine.timerFired(.A) == [.send(sent), .startTimer(.A, after: .seconds(seconds))])
        }
        #expect(machine.timerFired(.B) == [.timeout, .terminated])
        #expect(machine.isTerminated)
    }

    @Test func rejectionIsAcknowledgedByTheTransaction() throws {
        let invite = try TestMessages.invite()
        var machine = ClientInviteTransactionStateMachine(request: invite, reliability: .unreliable)
        _ = machine.start()
        let ringing = TestMessages.response(180, to: invite, toTag: "bob1")
        #expect(
            machine.receivedResponse(ringing) == [
                .cancelTimer(.A), .cancelTimer(.B), .deliverToTransactionUser(.response(ringing)),
            ]
        )
        // Proceeding: no more retransmissions, no timeout.
        #expect(machine.timerFired(.A) == [])
        #expect(machine.timerFired(.B) == [])
        #expect(machine.receivedResponse(ringing) == [.deliverToTransactionUser(.response(ringing))])

        let busy = TestMessages.response(486, to: invite, toTag: "bob1")
        let ack = invite.transactionACK(for: busy)
        #expect(
            machine.receivedResponse(busy) == [
                .send(.request(ack)), .deliverToTransactionUser(.response(busy)), .startTimer(.D, after: .seconds(32)),
            ]
        )
        // A retransmitted 486 is acknowledged again and not passed up.
        #expect(machine.receivedResponse(busy) == [.send(.request(ack))])
        #expect(machine.timerFired(.D) == [.terminated])
        #expect(machine.isTerminated)
    }

    @Test func theACKFollowsSection17_1_1_3() throws {
        var invite = try TestMessages.invite()
        invite.headers.add(.via, "SIP/2.0/UDP second.example.com;branch=z9hG4bKsecond")
        let busy = TestMessages.response(486, to: invite, toTag: "bob1")
        let ack = invite.transactionACK(for: busy)
        #expect(ack.method == .ack)
        #expect(ack.uri == invite.uri)
        #expect(ack.headers.listElements(.via) == [invite.headers.listElements(.via)[0]])
        #expect(ack.headers[.from] == invite.headers[.from])
        #expect(ack.to?.tag == "bob1")
        #expect(ack.callID == invite.callID)
        #expect(ack.cseq == CSeq(number: 314159, method: .ack))
        #expect(ack.headers.values(.route) == ["<sip:proxy.example.com;lr>"])
        #expect(ack.body.isEmpty)
        // It serializes and parses back as a request.
        guard case .request(let parsed) = try SIPParser().parse(ack.serializedBytes) else {
            Issue.record("the ACK did not parse as a request")
            return
        }
        #expect(parsed.method == .ack)
        #expect(parsed.cseq == ack.cseq)
        #expect(parsed.topVia == invite.topVia)
    }

    @Test func rejectionOverReliableTransportEndsAtOnce() throws {
        let invite = try TestMessages.invite(transport: "TCP")
        var machine = ClientInviteTransactionStateMachine(request: invite, reliability: .reliable)
        #expect(machine.start() == [.send(.request(invite)), .startTimer(.B, after: .seconds(32))])
        let busy = TestMessages.response(486, to: invite, toTag: "bob1")
        let ack = invite.transactionACK(for: busy)
        // "the client transaction MUST generate an ACK request, even if the transport is reliable"
        #expect(
            machine.receivedResponse(busy) == [
                .cancelTimer(.B), .send(.request(ack)), .deliverToTransactionUser(.response(busy)), .terminated,
            ]
        )
    }

    @Test func rfc6026AcceptedPassesEvery2xxUntilTimerM() throws {
        let invite = try TestMessages.invite()
        var machine = ClientInviteTransactionStateMachine(request: invite, reliability: .unreliable)
        _ = machine.start()
        let ok = TestMessages.response(200, to: invite, toTag: "bob1")
        #expect(
            machine.receivedResponse(ok) == [
                .cancelTimer(.A), .cancelTimer(.B), .deliverToTransactionUser(.response(ok)),
                .startTimer(.M, after: .seconds(32)),
            ]
        )
        // Retransmitted and forked 2xx responses reach the TU, which ACKs each.
        #expect(machine.receivedResponse(ok) == [.deliverToTransactionUser(.response(ok))])
        let forked = TestMessages.response(200, to: invite, toTag: "bob2")
        #expect(machine.receivedResponse(forked) == [.deliverToTransactionUser(.response(forked))])
        #expect(machine.receivedResponse(TestMessages.response(180, to: invite, toTag: "bob3")) == [])
        #expect(machine.receivedResponse(TestMessages.response(486, to: invite, toTag: "bob3")) == [])
        #expect(machine.timerFired(.M) == [.terminated])
        #expect(machine.isTerminated)
    }

    @Test func transportErrorInformsTheTransactionUserAndTerminates() throws {
        let invite = try TestMessages.invite()
        var machine = ClientInviteTransactionStateMachine(request: invite, reliability: .unreliable)
        _ = machine.start()
        #expect(machine.transportFailed() == [.transportError, .terminated])
        #expect(machine.isTerminated)
        #expect(machine.timerFired(.A) == [])
    }
}
