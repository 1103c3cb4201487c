import SIPCore

/// Sheds load instead of collapsing: past capacity, a request that would start new work (a new
/// SUBSCRIBE, REGISTER or INVITE) is refused early and cheaply with `503` and `Retry-After`
/// (RFC 3261 §21.5.4), so that the subscriptions and calls already admitted keep their service.
///
/// Why: past the knee, requests wait in the socket buffer longer than T1, phones retransmit,
/// and each retransmission is more work for a server that already cannot keep up, so the
/// completed rate falls the more is offered. A refusal costs a parse and one datagram; an
/// admitted SUBSCRIBE with digest costs two transactions, a hash, a store write and a NOTIFY.
///
/// Two signals, either of which starts shedding:
/// - the share of received requests that are retransmissions: over UDP, phones retransmit when
///   an answer takes longer than T1, so when requests wait in the socket buffer (where the event
///   loop cannot see them) the share jumps from about nothing to most requests;
/// - the event loop's lag: how late the shard's timer tick runs, which is how long the loop was
///   busy with other work.
/// Each is smoothed. Past either `…StartsAt` figure the guard refuses a share of new work that
/// grows at every tick; once both are below their `…StopsAt` figure the share shrinks again, and
/// between the two it holds (hysteresis). Refusing everything while overloaded was measured to
/// collapse the completed rate to half of capacity at 1.3x offered (issue 10: the admitted
/// load fell far below what the shard could do, then overshot again); refusing the excess keeps
/// the admitted rate near capacity. Like the other machines it reads no clock and draws no
/// random numbers: the driver reports what it measures at each tick, and the refused share is
/// spread evenly over the requests (every second one at one half).
public struct OverloadGuard: Sendable {
    public struct Settings: Sendable {
        /// Smoothed lag above which new work is refused.
        public var sheddingStartsAt: Duration = .milliseconds(120)
        /// Smoothed lag below which it is accepted again.
        public var sheddingStopsAt: Duration = .milliseconds(45)
        /// The weight of each new sample in the smoothed lag.
        public var smoothing: Double = 0.2
        /// Smoothed share of retransmitted requests above which new work is refused, and below
        /// which it is accepted again.
        public var retransmissionShareStartsAt = 0.2
        public var retransmissionShareStopsAt = 0.05
        /// Requests a sample needs before its share counts (a quiet server's few
        /// retransmissions from a lossy link are not overload).
        public var minimumRequestsPerSample = 50
        /// How much the refused share of new work grows per tick while overloaded, and shrinks
        /// per tick once the signals are below their stop figures (a tick is a few ms).
        public var shareIncreasePerTick = 0.01
        public var shareDecreasePerTick = 0.005
        /// Seconds a refused phone is asked to wait (`Retry-After`).
        public var retryAfterSeconds = 5
        public init() {}
    }

    public let settings: Settings
    /// The smoothed lag, in seconds.
    public private(set) var smoothedLag: Double = 0
    /// The share of new work refused now, from 0 to 1.
    public private(set) var shedShare: Double = 0
    /// Whether any new work is being refused.
    public var isShedding: Bool { isDraining || shedShare > 0 }
    /// Set when a graceful stop begins: from then on all new work is refused, whatever the
    /// signals say, while what has begun goes on.
    public private(set) var isDraining = false
    /// The refused share accumulated over requests: one is refused each time it reaches one.
    private var shedCredit: Double = 0

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// The smoothed share of received requests that were retransmissions.
    public private(set) var smoothedRetransmissionShare: Double = 0
    private var requestsSeen = 0
    private var retransmissionsSeen = 0

    /// The loop ran its tick `lag` later than asked.
    public mutating func observe(lag: Duration) {
        observe(lag: lag, requestsReceived: requestsSeen, retransmissionsReceived: retransmissionsSeen)
    }

    /// The loop ran its tick `lag` late, and the transaction layer's counters of received
    /// requests and retransmissions stand at these figures (running totals).
    public mutating func observe(lag: Duration, requestsReceived: Int, retransmissionsReceived: Int) {
        let sample = max(0, Self.seconds(lag))
        smoothedLag += settings.smoothing * (sample - smoothedLag)
        let requests = requestsReceived &- requestsSeen
        if requests >= settings.minimumRequestsPerSample {
            let share = Double(retransmissionsReceived &- retransmissionsSeen) / Double(requests)
            smoothedRetransmissionShare += settings.smoothing * (share - smoothedRetransmissionShare)
            requestsSeen = requestsReceived
            retransmissionsSeen = retransmissionsReceived
        } else if requests < 0 {
            requestsSeen = requestsReceived
            retransmissionsSeen = retransmissionsReceived
        }
        if smoothedLag > Self.seconds(settings.sheddingStartsAt)
            || smoothedRetransmissionShare > settings.retransmissionShareStartsAt
        {
            shedShare = min(1, shedShare + settings.shareIncreasePerTick)
        } else if smoothedLag < Self.seconds(settings.sheddingStopsAt)
            && smoothedRetransmissionShare < settings.retransmissionShareStopsAt
        {
            shedShare = max(0, shedShare - settings.shareDecreasePerTick)
            if shedShare == 0 { shedCredit = 0 }
        }
    }

    /// Whether `request` is refused now: only requests that start new work, never a refresh,
    /// a request in a dialog, an ACK, CANCEL or BYE (which end work), nor a response; of those,
    /// the share ``shedShare``.
    public mutating func sheds(_ request: SIPRequest) -> Bool {
        guard isShedding, Self.startsNewWork(request) else { return false }
        if isDraining { return true }
        shedCredit += shedShare
        guard shedCredit >= 1 else { return false }
        shedCredit -= 1
        return true
    }

    /// A graceful stop begins: every request that would start new work is refused from now on.
    public mutating func beginDraining() { isDraining = true }

    /// Whether `request` starts new work (out of any dialog, of a method that creates state or
    /// costs a store write): what a server past capacity, or stopping, refuses with `503`.
    static func startsNewWork(_ request: SIPRequest) -> Bool {
        guard request.to?.tag == nil else { return false }
        switch request.method {
        case .subscribe, .register, .invite, .publish, .options: return true
        default: return false
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
