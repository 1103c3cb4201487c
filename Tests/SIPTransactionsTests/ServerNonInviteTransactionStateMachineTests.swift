import SIPCore
import Testing

@testable import SIPTransactions

@Suite(.timeLimit(.minutes(1))) struct ServerNonInviteTransactionStateMachineTests {
    @Test func unreliableExchangeAbsorbsRetransmissionsUntilTimerJ() throws {
        let register = try TestMessages.register()
        var machine = ServerNonInviteTransactionStateMachine(request: register, reliability: .unreliable)
        #expect(machine.start() == [.deliverToTransactionUser(.request(register))])
        #expect(machine.start() == [])
        // Trying: retransmissions are discarded.
        #expect(machine.receivedRequest(register) == [])
        let trying = TestMessages.response(100, to: register)
        #expect(machine.sendResponse(trying) == [.send(.response(trying))])
        // Proceeding: a retransmission gets the last provisional again.
        #expect(machine.receivedRequest(register) == [.send(.response(trying))])
        let ok = TestMessages.response(200, to: register, toTag: "srv")
        #expect(machine.sendResponse(ok) == [.send(.response(ok)), .startTimer(.J, after: .seconds(32))])
        // Completed: retransmissions get the final response; further responses are discarded.
        #expect(machine.receivedRequest(register) == [.send(.response(ok))])
        #expect(machine.sendResponse(TestMessages.response(500, to: register, toTag: "srv")) == [])
        #expect(machine.sendResponse(trying) == [])
        #expect(machine.timerFired(.K) == [])
        #expect(!machine.isTerminated)
        #expect(machine.timerFired(.J) == [.terminated])
        #expect(machine.isTerminated)
        #expect(machine.receivedRequest(register) == [])
    }

    @Test func finalResponseFromTryingGoesStraightToCompleted() throws {
        let register = try TestMessages.register()
        var machine = ServerNonInviteTransactionStateMachine(request: register, reliability: .unreliable)
        _ = machine.start()
        let unauthorized = TestMessages.response(401, to: register, toTag: "srv")
        #expect(
            machine.sendResponse(unauthorized) == [
                .send(.response(unauthorized)), .startTimer(.J, after: .seconds(32)),
            ]
        )
        #expect(machine.receivedRequest(register) == [.send(.response(unauthorized))])
    }

    @Test func reliableTransportUsesZeroTimerJ() throws {
        let register = try TestMessages.register()
        var machine = ServerNonInviteTransactionStateMachine(request: register, reliability: .reliable)
        #expect(machine.start() == [.deliverToTransactionUser(.request(register))])
        let ok = TestMessages.response(200, to: register, toTag: "srv")
        #expect(machine.sendResponse(ok) == [.send(.response(ok)), .terminated])
        #expect(machine.isTerminated)
    }

    @Test func configuredT1ScalesTimerJ() throws {
        let register = try TestMessages.register()
        var machine = ServerNonInviteTransactionStateMachine(
            request: register,
            reliability: .unreliable,
            timers: SIPTimers(t1: .milliseconds(100))
        )
        _ = machine.start()
        let ok = TestMessages.response(200, to: register, toTag: "srv")
        #expect(machine.sendResponse(ok) == [.send(.response(ok)), .startTimer(.J, after: .milliseconds(6400))])
    }

    @Test func transportErrorInformsTheTransactionUserAndTerminates() throws {
        let register = try TestMessages.register()
        var machine = ServerNonInviteTransactionStateMachine(request: register, reliability: .unreliable)
        _ = machine.start()
        _ = machine.sendResponse(TestMessages.response(100, to: register))
        #expect(machine.transportFailed() == [.transportError, .terminated])
        #expect(machine.isTerminated)
        #expect(machine.transportFailed() == [])
    }
}
