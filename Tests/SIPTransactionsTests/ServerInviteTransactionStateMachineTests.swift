import SIPCore
import Testing

@testable import SIPTransactions

@Suite(.timeLimit(.minutes(1))) struct ServerInviteTransactionStateMachineTests {
    @Test func tryingIsSentAtOnceAndBuiltFromTheRequest() throws {
        let invite = try TestMessages.invite()
        var machine = ServerInviteTransactionStateMachine(request: invite, reliability: .unreliable)
        let trying = invite.transactionTryingResponse()
        #expect(machine.start() == [.send(.response(trying)), .deliverToTransactionUser(.request(invite))])
        #expect(trying.statusCode == 100)
        #expect(trying.headers.values(.via) == invite.headers.values(.via))
        #expect(trying.headers[.from] == invite.headers[.from])
        #expect(trying.headers[.to] == invite.headers[.to])
        #expect(trying.to?.tag == nil)
        #expect(trying.callID == invite.callID)
        #expect(trying.cseq == invite.cseq)
        #expect(trying.headers[SIPHeaderName("Timestamp")] == "54")
        #expect(trying.headers[.contact] == nil)
        // A retransmitted INVITE gets the 100 again.
        #expect(machine.receivedRequest(invite) == [.send(.response(trying))])
    }

    @Test func tryingLeftToTheTransactionUser() throws {
        let invite = try TestMessages.invite()
        var machine = ServerInviteTransactionStateMachine(
            request: invite,
            reliability: .unreliable,
            tryingPolicy: .transactionUserRespondsWithin200Milliseconds
        )
        #expect(machine.start() == [.deliverToTransactionUser(.request(invite))])
        #expect(machine.receivedRequest(invite) == [])
    }

    @Test func rejectionIsRetransmittedOnTimerGUntilTheACK() throws {
        let invite = try TestMessages.invite()
        var machine = ServerInviteTransactionStateMachine(request: invite, reliability: .unreliable)
        _ = machine.start()
        let ringing = TestMessages.response(180, to: invite, toTag: "bob1")
        #expect(machine.sendResponse(ringing) == [.send(.response(ringing))])
        #expect(machine.receivedRequest(invite) == [.send(.response(ringing))])
        let busy = TestMessages.response(486, to: invite, toTag: "bob1")
        #expect(
            machine.sendResponse(busy) == [
                .send(.response(busy)), .startTimer(.G, after: .milliseconds(500)),
                .startTimer(.H, after: .seconds(32)),
            ]
        )
        // Timer G doubles from T1 and is capped at T2.
        #expect(machine.timerFired(.G) == [.send(.response(busy)), .startTimer(.G, after: .seconds(1))])
        #expect(machine.timerFired(.G) == [.send(.response(busy)), .startTimer(.G, after: .seconds(2))])
        #expect(machine.timerFired(.G) == [.send(.response(busy)), .startTimer(.G, after: .seconds(4))])
        #expect(machine.timerFired(.G) == [.send(.response(busy)), .startTimer(.G, after: .seconds(4))])
        #expect(machine.receivedRequest(invite) == [.send(.response(busy))])
        // The TU cannot change its mind.
        #expect(machine.sendResponse(TestMessages.response(200, to: invite, toTag: "bob1")) == [])
        let ack = try TestMessages.ack(for: invite, toTag: "bob1")
        #expect(machine.receivedACK(ack) == [.cancelTimer(.G), .cancelTimer(.H), .startTimer(.I, after: .seconds(5))])
        // Confirmed absorbs further ACKs and INVITEs; a late Timer G does nothing.
        #expect(machine.receivedACK(ack) == [])
        #expect(machine.receivedRequest(invite) == [])
        #expect(machine.timerFired(.G) == [])
        #expect(machine.timerFired(.I) == [.terminated])
        #expect(machine.isTerminated)
    }

    @Test func timerHReportsTheMissingACK() throws {
        let invite = try TestMessages.invite()
        var machine = ServerInviteTransactionStateMachine(request: invite, reliability: .unreliable)
        _ = machine.start()
        let notFound = TestMessages.response(404, to: invite, toTag: "x")
        _ = machine.sendResponse(notFound)
        #expect(machine.timerFired(.H) == [.timeout, .terminated])
        #expect(machine.isTerminated)
    }

    @Test func reliableTransportNeitherRetransmitsNorLingers() throws {
        let invite = try TestMessages.invite(transport: "TCP")
        var machine = ServerInviteTransactionStateMachine(request: invite, reliability: .reliable)
        _ = machine.start()
        let busy = TestMessages.response(486, to: invite, toTag: "bob1")
        #expect(machine.sendResponse(busy) == [.send(.response(busy)), .startTimer(.H, after: .seconds(32))])
        #expect(machine.timerFired(.G) == [])
        #expect(machine.receivedACK(try TestMessages.ack(for: invite, toTag: "bob1")) == [.terminated])
        #expect(machine.isTerminated)
    }

    @Test func rfc6026AcceptedAbsorbsRetransmittedINVITEsAndPassesTheTUs2xx() throws {
        let invite = try TestMessages.invite()
        var machine = ServerInviteTransactionStateMachine(request: invite, reliability: .unreliable)
        _ = machine.start()
        let ok = TestMessages.response(200, to: invite, toTag: "bob1")
        #expect(machine.sendResponse(ok) == [.send(.response(ok)), .startTimer(.L, after: .seconds(32))])
        #expect(!machine.isTerminated)
        // The INVITE retransmission is absorbed: neither answered nor passed up.
        #expect(machine.receivedRequest(invite) == [])
        // The TU retransmits its 2xx (RFC 3261 §13.3.1.4) through the transaction.
        #expect(machine.sendResponse(ok) == [.send(.response(ok))])
        #expect(machine.sendResponse(TestMessages.response(500, to: invite, toTag: "bob1")) == [])
        // An ACK that matches the transaction goes to the TU.
        let ack = try TestMessages.ack(for: invite, toTag: "bob1")
        #expect(machine.receivedACK(ack) == [.deliverToTransactionUser(.request(ack))])
        #expect(machine.timerFired(.H) == [])
        #expect(machine.timerFired(.L) == [.terminated])
        #expect(machine.isTerminated)
    }

    @Test func transportErrorsFollowRFC6026() throws {
        let invite = try TestMessages.invite()
        var proceeding = ServerInviteTransactionStateMachine(request: invite, reliability: .unreliable)
        _ = proceeding.start()
        // Proceeding: inform the TU, stay (it may still answer over another flow).
        #expect(proceeding.transportFailed() == [.transportError])
        #expect(!proceeding.isTerminated)

        var accepted = proceeding
        _ = accepted.sendResponse(TestMessages.response(200, to: invite, toTag: "t"))
        #expect(accepted.transportFailed() == [.transportError])
        #expect(!accepted.isTerminated)

        var completed = proceeding
        _ = completed.sendResponse(TestMessages.response(603, to: invite, toTag: "t"))
        #expect(completed.transportFailed() == [.transportError, .terminated])
        #expect(completed.isTerminated)
    }
}
