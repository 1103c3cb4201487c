import NIOCore

/// Everything one shard needs to run its share of a load. A value: made once on the main
/// thread, read by the shard's event loop.
struct LoadPlan: Sendable {
    enum Scenario: String, Sendable, CaseIterable {
        case register, subscribe, calls, fanout
    }

    var scenario: Scenario
    var server: SocketAddress
    var domain: String
    /// REGISTER and SUBSCRIBE phones; the watchers of a fan-out.
    var users: [SimulatedUser] = []
    /// Calling phones (or the trunk's calls: no credentials) of `calls` and `fanout`.
    var callers: [SimulatedUser] = []
    /// Phones that REGISTER first and then answer INVITEs.
    var callees: [SimulatedUser] = []
    /// Offered flows per second, this shard's share.
    var rate: Double = 1000
    /// Flows this shard begins at the most.
    var count: Int = .max
    /// Seconds during which flows are begun.
    var durationSeconds: Double = 10
    /// RFC 3261 §17.1.1.1: T1 (RTT estimate, 500 ms) and §17.1.2.2: T2 (4 s).
    var t1Millis: Int = 500
    var t2Millis: Int = 4000
    /// Timers B and F: 64·T1 unless set.
    var transactionTimeoutMillis: Int = 32_000
    var subscribeExpires: Int = 600
    var registerExpires: Int = 3600
    /// Client sockets (REGISTER, SUBSCRIBE, callers) of this shard.
    var sockets: Int = 1
    /// How often new flows are begun and timers looked at: the pacing's grain. A coarser
    /// tick batches more sends into one sendmmsg.
    var tickMillis: Int = 1
    var calleeSockets: Int = 1
    /// The callers' socket binds this port (a trunk the server trusts by source address).
    var callerPort: Int?
    var ringMillis: Int = 200
    var talkMillis: Int = 1000
    var fanoutCalls: Int = 5
    /// Fan-out: a new call begins this long after the previous one began (and not before it ended).
    var callIntervalMillis: Int = 3000
    /// After the last flow begins: how long to wait for the ones in flight.
    var drainSeconds: Double = 40
    /// Flows in flight at the most (SIPp's -l); 0 for no limit.
    var maxInFlight: Int = 0
    var shardIndex: Int = 0
    var shardCount: Int = 1
    /// Random per run: makes Call-IDs, tags and branches unique across runs against one server.
    var token: String = "x"
}
