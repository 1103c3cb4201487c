import Testing

@testable import SIPTransactions

@Suite(.timeLimit(.minutes(1))) struct SIPTimersTests {
    @Test func defaultsAreTheRFCsValues() {
        let timers = SIPTimers.rfc3261
        #expect(timers.t1 == .milliseconds(500))
        #expect(timers.t2 == .seconds(4))
        #expect(timers.t4 == .seconds(5))
        #expect(timers.timerA == .milliseconds(500))
        #expect(timers.timerB == .seconds(32))
        #expect(timers.timerD(reliable: false) == .seconds(32))
        #expect(timers.timerD(reliable: true) == .zero)
        #expect(timers.timerE == .milliseconds(500))
        #expect(timers.timerF == .seconds(32))
        #expect(timers.timerG == .milliseconds(500))
        #expect(timers.timerH == .seconds(32))
        #expect(timers.timerI(reliable: false) == .seconds(5))
        #expect(timers.timerI(reliable: true) == .zero)
        #expect(timers.timerJ(reliable: false) == .seconds(32))
        #expect(timers.timerJ(reliable: true) == .zero)
        #expect(timers.timerK(reliable: false) == .seconds(5))
        #expect(timers.timerK(reliable: true) == .zero)
        #expect(timers.timerL == .seconds(32))
        #expect(timers.timerM == .seconds(32))
    }

    @Test func derivedTimersFollowAConfiguredT1() {
        let timers = SIPTimers(t1: .seconds(1), t2: .seconds(8), t4: .seconds(10))
        #expect(timers.timerB == .seconds(64))
        #expect(timers.timerF == .seconds(64))
        // Timer D is at least 32 s whatever T1 is, and follows 64·T1 above that.
        #expect(timers.timerD(reliable: false) == .seconds(64))
        #expect(SIPTimers(t1: .milliseconds(100)).timerD(reliable: false) == .seconds(32))
        #expect(timers.timerK(reliable: false) == .seconds(10))
    }

    @Test(arguments: [
        (Duration.milliseconds(500), Duration.seconds(1)),
        (.seconds(1), .seconds(2)),
        (.seconds(2), .seconds(4)),
        (.seconds(4), .seconds(4)),
        (.seconds(3), .seconds(4)),
    ])
    func retransmitIntervalDoublesUpToT2(interval: Duration, next: Duration) {
        #expect(SIPTimers.rfc3261.doubledUpToT2(interval) == next)
    }
}
