import BusyLampCore
import Testing

@testable import BusyLampServer

/// The driver's timers: whole ticks rounded up, replacing on re-arm, and nothing delivered that
/// was cancelled or re-armed by the handling of a timer due in the same tick.
@Suite("Server timers", .timeLimit(.minutes(1)))
struct ServerTimersTests {
    @Test func aDeadlineRoundsUpToWholeTicks() {
        var timers = ServerTimers(tick: .milliseconds(4), slotCount: 64)
        timers.arm(.ringTimeout, forCall: "a", after: .milliseconds(9))  // 3 ticks, not 2
        timers.advance(to: 2)
        #expect(timers.nextDue() == nil)
        timers.advance(to: 3)
        #expect(timers.nextDue() == .call(callID: "a", .ringTimeout))
        #expect(timers.nextDue() == nil)
        #expect(timers.count == 0)
    }

    @Test func armingAgainReplacesTheTimer() {
        var timers = ServerTimers(tick: .milliseconds(1), slotCount: 64)
        timers.arm(.ringTimeout, forCall: "a", after: .milliseconds(5))
        timers.arm(.ringTimeout, forCall: "a", after: .milliseconds(20))
        #expect(timers.count == 1)
        timers.advance(to: 10)
        #expect(timers.nextDue() == nil)
        timers.advance(to: 20)
        #expect(timers.nextDue() == .call(callID: "a", .ringTimeout))
    }

    @Test func aTimerCancelledWhileAnotherFiresInTheSameTickIsNotDelivered() {
        var timers = ServerTimers(tick: .milliseconds(1), slotCount: 64)
        timers.arm(.ringTimeout, forCall: "a", after: .milliseconds(5))
        timers.arm(.retransmitCallerAnswer, forCall: "a", after: .milliseconds(5))
        timers.advance(to: 5)
        let first = timers.nextDue()
        // Handling the first (say the ring timeout ends the call) cancels the call's timers.
        timers.cancelAll(forCall: "a")
        #expect(first != nil)
        #expect(timers.nextDue() == nil)
    }

    @Test func aTimerArmedAgainAfterItFellDueWaitsForItsNewDeadline() {
        var timers = ServerTimers(tick: .milliseconds(1), slotCount: 64)
        timers.arm(.ringTimeout, forCall: "a", after: .milliseconds(5))
        timers.arm(.retransmitCallerAnswer, forCall: "b", after: .milliseconds(5))
        timers.advance(to: 5)
        var delivered = [timers.nextDue()]
        // Handling the first arms the other one again before it is handed out.
        timers.arm(.retransmitCallerAnswer, forCall: "b", after: .milliseconds(10))
        timers.arm(.ringTimeout, forCall: "a", after: .milliseconds(10))
        delivered.append(timers.nextDue())
        #expect(delivered.compactMap { $0 }.count == 1, "the re-armed timer is not the due one")
        timers.advance(to: 15)
        var later: [ServerTimers.Fired] = []
        while let timer = timers.nextDue() { later.append(timer) }
        #expect(later.count == 2)
        #expect(timers.count == 0)
    }

    @Test func theOwnerTablesGiveBackTheirStorageAfterABurst() {
        var timers = ServerTimers(tick: .milliseconds(1), slotCount: 64)
        for call in 0..<5_000 { timers.arm(.ringTimeout, forCall: "call-\(call)", after: .milliseconds(5)) }
        let grown = timers.ownerCapacity
        #expect(grown >= 5_000)
        for call in 10..<5_000 { timers.cancelAll(forCall: "call-\(call)") }
        timers.releaseUnusedCapacity()
        #expect(timers.ownerCapacity < grown / 4)
        timers.advance(to: 5)
        var fired = 0
        while timers.nextDue() != nil { fired += 1 }
        #expect(fired == 10)
    }
}
