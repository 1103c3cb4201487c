/// Caps the requests one source address may send (issue 9: floods).
///
/// A token bucket per source: each request takes a token, tokens come back at
/// ``Settings/requestsPerSecond`` up to ``Settings/burst``. The burst is deliberately large: an
/// office's phones share one public address and all boot together after a power cut, each
/// registering and subscribing to dozens of lines (500 phones with 40 lamps each send about
/// 40,000 requests in their first minute, challenges included). Kamailio's stock pike setting,
/// 16 requests in 2 s, bans such an office at boot; this limit is meant for floods, a single
/// source sending thousands of requests a second for minutes, which no office does.
///
/// A plain value like the other guards: the shard gives it the time (a monotonic count of
/// nanoseconds) with each request. Memory is bounded by ``Settings/maximumTrackedSources``; when
/// the table is full, sources whose buckets have refilled are forgotten (at most once a second,
/// since it costs a pass over the table), and a new source is let through untracked while the
/// table is still full (the limiter fails open rather than grow or refuse a stranger).
public struct SourceRateLimiter<Source: Hashable & Sendable>: Sendable {
    public struct Settings: Sendable, Hashable {
        /// Sustained requests per second from one source.
        public var requestsPerSecond = 2_000
        /// Requests one source may send at once after a quiet spell.
        public var burst = 20_000
        /// Sources tracked at once.
        public var maximumTrackedSources = 65_536

        public init() {}
    }

    public enum Verdict: Sendable, Hashable {
        case admitted
        /// Refused; `startsEpisode` for the first refusal after the source was last admitted,
        /// so that a flood is logged once, not once per request.
        case refused(startsEpisode: Bool)
    }

    private struct Bucket {
        var tokens: Double
        var updatedAt: UInt64
        var refusing = false
    }

    public let settings: Settings
    private var buckets: [Source: Bucket] = [:]
    private var lastSweep: UInt64?

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// Sources tracked now.
    public var trackedSourceCount: Int { buckets.count }

    /// Whether a request from `source` at `now` (nanoseconds on a monotonic clock) is served.
    public mutating func admit(_ source: Source, now: UInt64) -> Verdict {
        guard var bucket = buckets[source] else {
            guard makeRoom(now: now) else { return .admitted }
            buckets[source] = Bucket(tokens: Double(settings.burst) - 1, updatedAt: now)
            return .admitted
        }
        bucket.tokens = refilled(bucket, at: now)
        bucket.updatedAt = max(bucket.updatedAt, now)
        let verdict: Verdict
        if bucket.tokens >= 1 {
            bucket.tokens -= 1
            bucket.refusing = false
            verdict = .admitted
        } else {
            verdict = .refused(startsEpisode: !bucket.refusing)
            bucket.refusing = true
        }
        buckets[source] = bucket
        return verdict
    }

    private func refilled(_ bucket: Bucket, at now: UInt64) -> Double {
        let elapsed = Double(now &- min(now, bucket.updatedAt)) / 1e9
        return min(Double(settings.burst), bucket.tokens + elapsed * Double(settings.requestsPerSecond))
    }

    /// Whether a new source can be tracked, forgetting refilled buckets when the table is full.
    private mutating func makeRoom(now: UInt64) -> Bool {
        guard buckets.count >= settings.maximumTrackedSources else { return true }
        if let lastSweep, now &- lastSweep < 1_000_000_000 { return false }
        lastSweep = now
        let full = Double(settings.burst)
        buckets = buckets.filter { refilled($0.value, at: now) < full }
        return buckets.count < settings.maximumTrackedSources
    }
}
