import SIPCore

/// The non-INVITE client transaction of RFC 3261 §17.1.2.
///
/// ```
///                                |Request from TU
///                                |send request
///            Timer E             V
///            send request  +-----------+
///                +---------|           |-------------------+
///                |         |  Trying   |  Timer F          |
///                +-------->|           |  or Transport Err.|
///                          +-----------+  inform TU        |
///             200-699         |  |                         |
///             resp. to TU     |  |1xx                      |
///             +---------------+  |resp. to TU              |
///             |                  |                         |
///             |   Timer E        V       Timer F           |
///             |   send req +-----------+ or Transport Err. |
///             |  +---------|           | inform TU         |
///             |  |         |Proceeding |------------------>|
///             |  +-------->|           |-----+             |
///             |            +-----------+     |1xx          |
///             |              |      ^        |resp to TU   |
///             | 200-699      |      +--------+             |
///             | resp. to TU  |                             |
///             |              |                             |
///             |              V                             |
///             |            +-----------+                   |
///             |            |           |                   |
///             |            | Completed |                   |
///             |            |           |                   |
///             |            +-----------+                   |
///             |              ^   |                         |
///             |              |   | Timer K                 |
///             +--------------+   | -                       |
///                                |                         |
///                                V                         |
///          NOTE:           +-----------+                   |
///                          |           |                   |
///      transitions         | Terminated|<------------------+
///      labeled with        |           |
///      the event           +-----------+
///      over the action
///      to take
/// ```
///
/// The machine promises: the request is retransmitted on Timer E over unreliable transports, at
/// intervals doubling from T1 up to T2 (T2 once a provisional arrived); Timer F ends an unanswered
/// transaction with `.timeout`; every provisional and the first final response reach the
/// transaction user, and later retransmitted responses are absorbed until Timer K.
public struct ClientNonInviteTransactionStateMachine: Sendable {
    public typealias Action = TransactionAction

    private enum State: Sendable {
        case initial
        /// `retransmitInterval` is Timer E's current value; `nil` on reliable transports.
        case trying(retransmitInterval: Duration?)
        case proceeding(retransmitting: Bool)
        case completed
        case terminated
    }

    private var state: State
    /// The request this transaction sends, until a final response completes it: nothing is
    /// retransmitted after that, and over UDP the transaction absorbs responses for T4 more
    /// (issue 10: every NOTIFY, body included, was kept 5 s after its 200).
    public private(set) var request: SIPRequest?
    public let reliability: TransportReliability
    public let timers: SIPTimers

    public init(request: SIPRequest, reliability: TransportReliability, timers: SIPTimers = .rfc3261) {
        self.request = request
        self.reliability = reliability
        self.timers = timers
        self.state = .initial
    }

    public var isTerminated: Bool {
        if case .terminated = state { return true }
        return false
    }

    /// The transaction user hands over the request.
    ///
    /// > The "Trying" state is entered when the TU initiates a new client transaction with a
    /// > request. When entering this state, the client transaction SHOULD set timer F to fire in
    /// > 64*T1 seconds. The request MUST be passed to the transport layer for transmission. If
    /// > an unreliable transport is in use, the client transaction MUST set timer E to fire in
    /// > T1 seconds.
    public mutating func start() -> [Action] {
        guard case .initial = state else { return [] }
        guard let request else { return [] }
        var actions: [Action] = [.send(.request(request))]
        if reliability.isReliable {
            state = .trying(retransmitInterval: nil)
        } else {
            state = .trying(retransmitInterval: timers.timerE)
            actions.append(.startTimer(.E, after: timers.timerE))
        }
        actions.append(.startTimer(.F, after: timers.timerF))
        return actions
    }

    public mutating func receivedResponse(_ response: SIPResponse) -> [Action] {
        switch state {
        case .initial, .terminated, .completed:
            // Completed: "buffer any additional response retransmissions that may be received".
            return []
        case .trying(let interval):
            if response.isProvisional {
                // > If a provisional response is received while in the "Trying" state, the
                // > response MUST be passed to the TU, and then the client transaction SHOULD
                // > move to the "Proceeding" state.
                state = .proceeding(retransmitting: interval != nil)
                return [.deliverToTransactionUser(.response(response))]
            }
            return complete(with: response, retransmitting: interval != nil)
        case .proceeding(let retransmitting):
            if response.isProvisional { return [.deliverToTransactionUser(.response(response))] }
            return complete(with: response, retransmitting: retransmitting)
        }
    }

    /// > If a final response (status codes 200-699) is received while in the "Trying" state [or
    /// > the "Proceeding" state], the response MUST be passed to the TU, and the client
    /// > transaction MUST transition to the "Completed" state. [...] Once the client transaction
    /// > enters the "Completed" state, it MUST set Timer K to fire in T4 seconds for unreliable
    /// > transports, and zero seconds for reliable transports.
    private mutating func complete(with response: SIPResponse, retransmitting: Bool) -> [Action] {
        let timerK = timers.timerK(reliable: reliability.isReliable)
        if timerK == .zero {
            state = .terminated
            return [.deliverToTransactionUser(.response(response)), .terminated]
        }
        state = .completed
        request = nil
        var actions: [Action] = []
        if retransmitting { actions.append(.cancelTimer(.E)) }
        actions.append(.cancelTimer(.F))
        actions.append(.deliverToTransactionUser(.response(response)))
        actions.append(.startTimer(.K, after: timerK))
        return actions
    }

    public mutating func timerFired(_ timer: TransactionTimer) -> [Action] {
        switch (state, timer) {
        case (.trying(.some(let interval)), .E):
            guard let request else { return [] }
            // > If timer E fires while still in this state, the timer is reset, but this time with
            // > a value of MIN(2*T1, T2). When the timer fires again, it is reset to a
            // > MIN(4*T1, T2). This process continues so that retransmissions occur with an
            // > exponentially increasing interval that caps at T2.
            let next = timers.doubledUpToT2(interval)
            state = .trying(retransmitInterval: next)
            return [.send(.request(request)), .startTimer(.E, after: next)]
        case (.proceeding(true), .E):
            // > If Timer E fires while in the "Proceeding" state, the request MUST be passed to
            // > the transport layer for retransmission, and Timer E MUST be reset with a value
            // > of T2 seconds.
            guard let request else { return [] }
            return [.send(.request(request)), .startTimer(.E, after: timers.t2)]
        case (.trying, .F), (.proceeding, .F):
            // > If Timer F fires while the client transaction is still in the "Trying" state [or
            // > "Proceeding"], the client transaction SHOULD inform the TU about the timeout, and
            // > then it SHOULD enter the "Terminated" state.
            state = .terminated
            return [.timeout, .terminated]
        case (.completed, .K):
            // > If Timer K fires while in this state, the client transaction MUST transition to
            // > the "Terminated" state.
            state = .terminated
            return [.terminated]
        default:
            return []
        }
    }

    /// The transport could not send the request (RFC 3261 §17.1.4: "the client transaction SHOULD
    /// inform the TU that a transport failure has occurred, and the client transaction SHOULD
    /// transition directly to the 'Terminated' state").
    public mutating func transportFailed() -> [Action] {
        switch state {
        case .initial, .terminated, .completed:
            return []
        case .trying, .proceeding:
            state = .terminated
            return [.transportError, .terminated]
        }
    }
}
