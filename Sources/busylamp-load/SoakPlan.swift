import NIOCore

/// What a soak runs: the phones, their registrations and subscriptions, the calls between them
/// and the bounds. A value: made once on the main thread, read by the soak's event loop.
struct SoakPlan: Sendable {
    /// One simulated phone: a line of the soaked account.
    struct Phone: Sendable {
        /// The SIP user name (the line's number), also the digest user name.
        var number: String
        /// The extension: what is dialled, watched and picked up, and what the API names.
        var ext: String
        var password: String
    }

    var server: SocketAddress
    var domain: String
    var phones: [Phone]
    var sockets = 4
    var registerExpires = 60
    var subscribeExpires = 120
    /// Watchers: phones from `callPool` on; each watches `targetsPerWatcher` phones of the pool.
    var watchers = 100
    var targetsPerWatcher = 3
    /// The first `callPool` phones place, take and pick up the calls, and are watched.
    var callPool = 200
    var callsPerSecond = 2.0
    var registerRate = 200.0
    var subscribeRate = 100.0
    /// Seconds of calls before the warm-up is over (the server has seen every kind of traffic).
    var warmupCallSeconds = 10.0
    var durationSeconds = 600.0
    /// After the last call ended: seconds of only refreshes before the report.
    var settleSeconds = 10.0
    /// Bound for the calls in flight to end after the load stopped.
    var endSeconds = 40.0
    /// Directed pickup code (the account's `pickup.directed`) before the ringing extension.
    var pickupCode = "*89"
    /// Shares of the calls: picked up by a third phone, and cancelled by the caller while
    /// ringing; the rest are answered.
    var pickupShare = 0.2
    var cancelShare = 0.2
    var ringMillis = 500...2500
    var talkMillis = 2000...6000
    /// RFC 3261 §17.1.1.1: T1 and §17.1.2.2: T2; Timers B/F at 64·T1.
    var t1Millis = 500
    var t2Millis = 4000
    var timeoutMillis = 32_000
    var seed: UInt64 = 1
    /// Random per run: makes Call-IDs and tags unique across runs against one server.
    var token = "x"
}
