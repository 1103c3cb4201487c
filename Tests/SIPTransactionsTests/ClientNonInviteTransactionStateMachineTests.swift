import SIPCore
import Testing

@testable import SIPTransactions

@Suite(.timeLimit(.minutes(1))) struct ClientNonInviteTransactionStateMachineTests {
    @Test func timerEDoublesUpToT2AndTimerFTimesOut() throws {
        let register = try TestMessages.register()
        let sent = SIPMessage.request(register)
        var machine = ClientNonInviteTransactionStateMachine(request: register, reliability: .unreliable)
        #expect(
            machine.start() == [
                .send(sent), .startTimer(.E, after: .milliseconds(500)), .startTimer(.F, after: .seconds(32)),
            ]
        )
        #expect(machine.timerFired(.E) == [.send(sent), .startTimer(.E, after: .seconds(1))])
        #expect(machine.timerFired(.E) == [.send(sent), .startTimer(.E, after: .seconds(2))])
        #expect(machine.timerFired(.E) == [.send(sent), .startTimer(.E, after: .seconds(4))])
        #expect(machine.timerFired(.E) == [.send(sent), .startTimer(.E, after: .seconds(4))])
        #expect(machine.timerFired(.F) == [.timeout, .terminated])
        #expect(machine.isTerminated)
        #expect(machine.timerFired(.E) == [])
    }

    @Test func provisionalMovesTimerEToT2AndFinalCompletes() throws {
        let register = try TestMessages.register()
        let sent = SIPMessage.request(register)
        var machine = ClientNonInviteTransactionStateMachine(request: register, reliability: .unreliable)
        _ = machine.start()
        #expect(machine.timerFired(.E) == [.send(sent), .startTimer(.E, after: .seconds(1))])
        let trying = TestMessages.response(100, to: register)
        #expect(machine.receivedResponse(trying) == [.deliverToTransactionUser(.response(trying))])
        #expect(machine.receivedResponse(trying) == [.deliverToTransactionUser(.response(trying))])
        // Proceeding: "Timer E MUST be reset with a value of T2 seconds".
        #expect(machine.timerFired(.E) == [.send(sent), .startTimer(.E, after: .seconds(4))])
        let ok = TestMessages.response(200, to: register, toTag: "reg")
        #expect(
            machine.receivedResponse(ok) == [
                .cancelTimer(.E), .cancelTimer(.F), .deliverToTransactionUser(.response(ok)),
                .startTimer(.K, after: .seconds(5)),
            ]
        )
        // Completed absorbs retransmitted responses, and no longer holds the request it sent
        // (nothing is retransmitted after a final response; Timer K keeps it 5 s more).
        #expect(machine.request == nil)
        #expect(machine.receivedResponse(ok) == [])
        #expect(machine.timerFired(.E) == [])
        #expect(machine.timerFired(.F) == [])
        #expect(machine.timerFired(.K) == [.terminated])
        #expect(machine.isTerminated)
    }

    @Test func timerFInProceedingTimesOut() throws {
        let register = try TestMessages.register()
        var machine = ClientNonInviteTransactionStateMachine(request: register, reliability: .unreliable)
        _ = machine.start()
        _ = machine.receivedResponse(TestMessages.response(100, to: register))
        #expect(machine.timerFired(.F) == [.timeout, .terminated])
    }

    @Test func reliableTransportDoesNotRetransmitAndZeroTimerK() throws {
        let register = try TestMessages.register()
        var machine = ClientNonInviteTransactionStateMachine(request: register, reliability: .reliable)
        #expect(machine.start() == [.send(.request(register)), .startTimer(.F, after: .seconds(32))])
        #expect(machine.timerFired(.E) == [])
        let ok = TestMessages.response(200, to: register, toTag: "reg")
        #expect(machine.receivedResponse(ok) == [.deliverToTransactionUser(.response(ok)), .terminated])
        #expect(machine.isTerminated)
    }

    @Test func transportErrorInformsTheTransactionUserAndTerminates() throws {
        let register = try TestMessages.register()
        var machine = ClientNonInviteTransactionStateMachine(request: register, reliability: .reliable)
        _ = machine.start()
        #expect(machine.transportFailed() == [.transportError, .terminated])
        #expect(machine.isTerminated)
    }
}
