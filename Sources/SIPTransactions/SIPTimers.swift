/// The timer values of RFC 3261 §17 (Table 4 of Appendix A) and RFC 6026 §8, as one value.
///
/// T1, T2 and T4 are the configurable base values; every lettered timer is derived from them
/// and from whether the transport is reliable. The derived values are what the state machines
/// put into `.startTimer(_:after:)` actions: the machines never read a clock.
///
/// | timer | value                              | meaning                                          |
/// |-------|------------------------------------|--------------------------------------------------|
/// | A     | initially T1 (unreliable only)     | INVITE request retransmit interval (§17.1.1.2)  |
/// | B     | 64·T1                              | INVITE transaction timeout (§17.1.1.2)          |
/// | D     | ≥ 32 s unreliable, 0 reliable      | wait for response retransmits (§17.1.1.2)       |
/// | E     | initially T1 (unreliable only)     | non-INVITE request retransmit (§17.1.2.2)       |
/// | F     | 64·T1                              | non-INVITE transaction timeout (§17.1.2.2)      |
/// | G     | initially T1 (unreliable only)     | INVITE response retransmit (§17.2.1)            |
/// | H     | 64·T1                              | wait for ACK receipt (§17.2.1)                  |
/// | I     | T4 unreliable, 0 reliable          | wait for ACK retransmits (§17.2.1)              |
/// | J     | 64·T1 unreliable, 0 reliable       | wait for non-INVITE request retransmits (§17.2.2)|
/// | K     | T4 unreliable, 0 reliable          | wait for response retransmits (§17.1.2.2)       |
/// | L     | 64·T1                              | wait for accepted INVITE retransmits (RFC 6026) |
/// | M     | 64·T1                              | wait for 2xx retransmits (RFC 6026)             |
public struct SIPTimers: Sendable, Hashable {
    /// RFC 3261 §17.1.1.1: "T1 is an estimate of the round-trip time (RTT), and it defaults to 500 ms."
    public var t1: Duration
    /// RFC 3261 §17.1.2.2: the maximum retransmit interval for non-INVITE requests and INVITE responses.
    public var t2: Duration
    /// RFC 3261 §17.1.2.2: the maximum duration a message will remain in the network.
    public var t4: Duration

    /// RFC 3261 §17.1.1.2: Timer D is "at least 32 seconds for unreliable transports".
    public static let minimumUnreliableTimerD: Duration = .seconds(32)

    /// The RFC's defaults: T1 500 ms, T2 4 s, T4 5 s.
    public static let rfc3261 = SIPTimers()

    public init(t1: Duration = .milliseconds(500), t2: Duration = .seconds(4), t4: Duration = .seconds(5)) {
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
    }

    /// The initial request (A, E) and response (G) retransmission interval.
    public var initialRetransmitInterval: Duration { t1 }

    /// Timers B, F and H, and RFC 6026's L and M: 64·T1.
    public var transactionTimeout: Duration { t1 * 64 }

    public var timerA: Duration { t1 }
    public var timerB: Duration { transactionTimeout }
    public func timerD(reliable: Bool) -> Duration {
        reliable ? .zero : max(SIPTimers.minimumUnreliableTimerD, transactionTimeout)
    }
    public var timerE: Duration { t1 }
    public var timerF: Duration { transactionTimeout }
    public var timerG: Duration { t1 }
    public var timerH: Duration { transactionTimeout }
    public func timerI(reliable: Bool) -> Duration { reliable ? .zero : t4 }
    public func timerJ(reliable: Bool) -> Duration { reliable ? .zero : transactionTimeout }
    public func timerK(reliable: Bool) -> Duration { reliable ? .zero : t4 }
    public var timerL: Duration { transactionTimeout }
    public var timerM: Duration { transactionTimeout }

    /// RFC 3261 §17.1.2.2 and §17.2.1: the next interval of a retransmission timer that doubles
    /// up to T2 (E and G).
    public func doubledUpToT2(_ interval: Duration) -> Duration { min(interval * 2, t2) }
}
