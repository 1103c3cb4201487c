import Testing

@testable import SIPTransactions

extension TimingWheel {
    /// The payloads `advance(to:)` fires, for comparisons.
    mutating func fire(upTo tick: UInt64) -> [Payload] { advance(to: tick).map(\.payload) }
}

@Suite(.timeLimit(.minutes(1))) struct TimingWheelTests {
    @Test func aTimerFiresAtItsDeadlineAndNotBefore() {
        var wheel = TimingWheel<String>(slotCount: 16)
        _ = wheel.schedule("E", afterTicks: 5)
        #expect(wheel.fire(upTo: 4) == [])
        #expect(wheel.count == 1)
        #expect(wheel.fire(upTo: 5) == ["E"])
        #expect(wheel.count == 0)
        #expect(wheel.fire(upTo: 100) == [])
    }

    @Test func zeroTicksFireAtTheNextTickNotTheCurrentOne() {
        var wheel = TimingWheel<Int>(slotCount: 8)
        _ = wheel.fire(upTo: 3)
        _ = wheel.schedule(1, afterTicks: 0)
        #expect(wheel.fire(upTo: 3) == [])
        #expect(wheel.fire(upTo: 4) == [1])
    }

    @Test func aCancelledTimerNeverFiresAndItsStaleHandleCancelsNothing() {
        var wheel = TimingWheel<String>(slotCount: 8)
        let first = wheel.schedule("J", afterTicks: 2)
        #expect(wheel.cancel(first) == "J")
        #expect(wheel.cancel(first) == nil)
        // The node is reused for the next timer: the old handle must not reach it.
        let second = wheel.schedule("K", afterTicks: 2)
        #expect(wheel.cancel(first) == nil)
        #expect(wheel.fire(upTo: 2) == ["K"])
        #expect(wheel.cancel(second) == nil, "a fired timer cannot be cancelled")
    }

    @Test func timersBeyondOneTurnWaitForTheirTurn() {
        // 8 slots: a timer 20 ticks out shares slot 4 with one 4 ticks out.
        var wheel = TimingWheel<String>(slotCount: 8)
        _ = wheel.schedule("far", afterTicks: 20)
        _ = wheel.schedule("near", afterTicks: 4)
        #expect(wheel.fire(upTo: 4) == ["near"])
        #expect(wheel.fire(upTo: 12) == [])
        #expect(wheel.fire(upTo: 19) == [])
        #expect(wheel.fire(upTo: 20) == ["far"])
    }

    @Test func aLongJumpFiresEverythingDueOnce() {
        var wheel = TimingWheel<Int>(slotCount: 8)
        for ticks in 1...30 { _ = wheel.schedule(Int(ticks), afterTicks: UInt64(ticks)) }
        let fired = wheel.fire(upTo: 1_000)
        #expect(fired.sorted() == Array(1...30))
        #expect(wheel.count == 0)
    }

    @Test func cancellingFromTheMiddleOfASlotKeepsTheOthers() {
        var wheel = TimingWheel<String>(slotCount: 4)
        let handles = ["a", "b", "c", "d"].map { wheel.schedule($0, afterTicks: 4) }
        wheel.cancel(handles[1])
        wheel.cancel(handles[3])
        #expect(wheel.fire(upTo: 4).sorted() == ["a", "c"])
    }

    /// Many timers armed and cancelled, as under SUBSCRIBE load: the slab is reused, so the
    /// number of nodes stays at the most ever armed at once.
    @Test func armingAndCancellingAtScaleAgreesWithAPlainModel() {
        var wheel = TimingWheel<Int>(slotCount: 64)
        var armed: [Int: (handle: TimingWheel<Int>.Handle, deadline: UInt64)] = [:]
        var generator = SystemRandomNumberGenerator()
        var now: UInt64 = 0
        for id in 0..<20_000 {
            let ticks = UInt64.random(in: 1...200, using: &generator)
            armed[id] = (wheel.schedule(id, afterTicks: ticks), now + ticks)
            if id % 3 == 0, let victim = armed.keys.randomElement(using: &generator) {
                #expect(wheel.cancel(armed.removeValue(forKey: victim)!.handle) == victim)
            }
            if id % 50 == 0 {
                now += UInt64.random(in: 0...7, using: &generator)
                let fired = Set(wheel.fire(upTo: now))
                let expected = Set(armed.filter { $0.value.deadline <= now }.keys)
                #expect(fired == expected)
                for id in fired { armed[id] = nil }
            }
        }
        #expect(wheel.count == armed.count)
    }
}
