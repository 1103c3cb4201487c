import SIPCore

/// The timers of RFC 3261 §17 and RFC 6026 §8, named as the RFCs name them.
///
/// A machine asks for a timer with `.startTimer(timer, after:)`; starting a timer that is
/// already running replaces it. The driver calls the machine's `timerFired(_:)` when it expires.
/// A machine ignores a timer that fires in a state where it no longer matters, so a driver that
/// loses a race with `.cancelTimer` does no harm.
public enum TransactionTimer: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case A, B, D, E, F, G, H, I, J, K, L, M

    public var description: String { "Timer " + rawValue }
}

/// What a transaction state machine asks its driver to do, in the order given.
public enum TransactionAction: Sendable, Hashable {
    /// Pass this message to the transport. The driver decides where: for a server transaction the
    /// response goes where `ResponseDestination` says, for a client transaction to the next hop
    /// the request was first sent to.
    case send(SIPMessage)
    /// A request or response the transaction user (the UA core) must see.
    case deliverToTransactionUser(SIPMessage)
    /// Start (or restart) `timer`, firing after `after`.
    case startTimer(TransactionTimer, after: Duration)
    case cancelTimer(TransactionTimer)
    /// Tell the transaction user that the transaction timed out (Timer B, F or H).
    case timeout
    /// Tell the transaction user that the transport failed (RFC 3261 §17.1.4, §17.2.4).
    case transportError
    /// The transaction has reached the Terminated state and must be destroyed now
    /// (RFC 3261 §17.1.1.2: "The client transaction MUST be destroyed the instant it enters the
    /// 'Terminated' state"). Its running timers may be forgotten with it.
    case terminated
}

/// Whether the transport under a transaction is reliable (TCP, TLS: RFC 3261 §17 retransmits
/// only over unreliable transports, and Timers D, I, J, K are zero on reliable ones).
public enum TransportReliability: Sendable, Hashable {
    case unreliable
    case reliable

    var isReliable: Bool { self == .reliable }
}
