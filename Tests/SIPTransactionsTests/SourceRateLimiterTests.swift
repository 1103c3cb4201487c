import Testing

@testable import SIPTransactions

@Suite(.timeLimit(.minutes(1))) struct SourceRateLimiterTests {
    static let second: UInt64 = 1_000_000_000

    func limiter(rate: Int, burst: Int, sources: Int = 65_536) -> SourceRateLimiter<String> {
        var settings = SourceRateLimiter<String>.Settings()
        settings.requestsPerSecond = rate
        settings.burst = burst
        settings.maximumTrackedSources = sources
        return SourceRateLimiter(settings: settings)
    }

    /// The burst passes at once, the next request is refused, and the refusal that starts an
    /// episode is told apart from the rest (one log line per flood).
    @Test func aBurstPassesThenTheSourceIsHeldToItsRate() {
        // Eight a second: every step below is an exact binary fraction of a token.
        var limiter = limiter(rate: 8, burst: 100)
        let start = 5 * Self.second
        for _ in 0..<100 { #expect(limiter.admit("flood", now: start) == .admitted) }
        #expect(limiter.admit("flood", now: start) == .refused(startsEpisode: true))
        #expect(limiter.admit("flood", now: start) == .refused(startsEpisode: false))
        // An eighth of a second later one token has come back, and only one.
        let later = start + Self.second / 8
        #expect(limiter.admit("flood", now: later) == .admitted)
        #expect(limiter.admit("flood", now: later) == .refused(startsEpisode: true))
        // Over ten seconds, offered 64 a second: 80 more requests pass, at the rate.
        var admitted = 0
        for step in 1...640 {
            if limiter.admit("flood", now: later + UInt64(step) * Self.second / 64) == .admitted { admitted += 1 }
        }
        #expect(admitted == 80)
    }

    /// A flood from one address costs another address nothing.
    @Test func anotherSourceIsServedDuringAFlood() {
        var limiter = limiter(rate: 10, burst: 20)
        for _ in 0..<1_000 { _ = limiter.admit("flood", now: Self.second) }
        #expect(limiter.admit("flood", now: Self.second) != .admitted)
        for _ in 0..<20 { #expect(limiter.admit("office", now: Self.second) == .admitted) }
    }

    /// The default admits an office of 500 phones with 40 lamps each booting together from one
    /// address: a REGISTER and a SUBSCRIBE per lamp, each challenged once (41,000 requests),
    /// spread over their first 30 seconds.
    @Test func theDefaultAdmitsAnOfficeBootingBehindOneAddress() {
        var limiter = SourceRateLimiter<String>()
        let requests = 500 * 41 * 2
        var refused = 0
        for index in 0..<requests {
            let now = UInt64(index) * 30 * Self.second / UInt64(requests)
            if limiter.admit("office", now: now) != .admitted { refused += 1 }
        }
        #expect(refused == 0)
    }

    /// Memory is bounded: past the cap, refilled sources are forgotten to make room, and while
    /// every tracked source is still live a new one passes untracked (fail open).
    @Test func theTableIsBoundedAndFailsOpen() {
        var limiter = limiter(rate: 1, burst: 2, sources: 100)
        for index in 0..<100 { _ = limiter.admit("s\(index)", now: Self.second) }
        #expect(limiter.trackedSourceCount == 100)
        // Full of live buckets: strangers pass, and are not tracked.
        for index in 100..<1_000 { #expect(limiter.admit("s\(index)", now: Self.second) == .admitted) }
        #expect(limiter.trackedSourceCount == 100)
        // Ten seconds on, every bucket has refilled: the sweep frees the table.
        #expect(limiter.admit("late", now: 11 * Self.second) == .admitted)
        #expect(limiter.trackedSourceCount == 1)
    }
}
