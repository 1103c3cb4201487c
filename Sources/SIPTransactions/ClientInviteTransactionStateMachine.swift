import SIPCore

/// The INVITE client transaction of RFC 3261 §17.1.1 as corrected by RFC 6026 §7.2 (the Accepted
/// state: a 2xx no longer ends the transaction, so its retransmissions still match it).
///
/// ```
///                                |INVITE from TU
///              Timer A fires     |INVITE sent      Timer B fires
///              Reset A,          V                 or Transport Err.
///              INVITE sent +-----------+           inform TU
///                +---------|           |--------------------------+
///                |         |  Calling  |                          |
///                +-------->|           |-----------+              |
///   300-699                +-----------+ 2xx       |              |
///   ACK sent                  |  |       2xx to TU |              |
///   resp. to TU               |  |1xx              |              |
///   +-------------------------+  |1xx to TU        |              |
///   |                            |                 |              |
///   |                1xx         V                 |              |
///   |                1xx to TU +-----------+       |              |
///   |                +---------|           |       |              |
///   |                |         |Proceeding |       |              |
///   |                +-------->|           |       |              |
///   |                          +-----------+ 2xx   |              |
///   |         300-699             |    |     2xx to TU            |
///   |         ACK sent,  +--------+    +---------------+          |
///   |         resp. to TU|                         |   |          |
///   |                    |                         |   |          |
///   |                    V                         V   V          |
///   |              +-----------+                 +----------+     |
///   +------------->|           |Transport Err.   |          |     |
///                  | Completed |Inform TU        | Accepted |     |
///               +--|           |-------+         |          |-+   |
///       300-699 |  +-----------+       |         +----------+ |   |
///       ACK sent|    ^  |              |             |  ^     |   |
///               |    |  |              |             |  |     |   |
///               +----+  |              |             |  +-----+   |
///                       |Timer D fires |  Timer M    |    2xx     |
///                       |-             |  fires      |    2xx to TU
///                       |              |  -          |            |
///                       V              |             |            |
///                  +------------+      |             |            |
///                  |            |      |             |            |
///                  | Terminated |<-----+-------------+------------+
///                  |            |
///                  +------------+
/// ```
///
/// The machine promises: the INVITE is retransmitted on Timer A over unreliable transports, at
/// intervals that double without a cap (RFC 3261 §17.1.1.2: T2 caps E and G, not A) until a
/// response arrives or Timer B gives up; every provisional, the first 300–699 and every 2xx
/// (forked or retransmitted, until Timer M) reach the transaction user; a 300–699 is
/// acknowledged by the transaction itself, and its retransmissions are acknowledged again and
/// absorbed until Timer D. The ACK for a 2xx is the transaction user's (RFC 3261 §13.2.2.4).
public struct ClientInviteTransactionStateMachine: Sendable {
    public typealias Action = TransactionAction

    private enum State: Sendable {
        case initial
        /// `retransmitInterval` is Timer A's current value; `nil` on reliable transports.
        case calling(retransmitInterval: Duration?)
        case proceeding
        case completed(ack: SIPRequest)
        case accepted
        case terminated
    }

    private var state: State
    /// The INVITE this transaction sends: the "original request" its ACKs are built from.
    public let request: SIPRequest
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

    /// The transaction user hands over the INVITE.
    ///
    /// > The initial state, "calling", MUST be entered when the TU initiates a new client
    /// > transaction with an INVITE request. The client transaction MUST pass the request to the
    /// > transport layer for transmission. If an unreliable transport is being used, the client
    /// > transaction MUST start timer A with a value of T1. [...] For any transport, the client
    /// > transaction MUST start timer B with a value of 64*T1 seconds.
    public mutating func start() -> [Action] {
        guard case .initial = state else { return [] }
        var actions: [Action] = [.send(.request(request))]
        if reliability.isReliable {
            state = .calling(retransmitInterval: nil)
        } else {
            state = .calling(retransmitInterval: timers.timerA)
            actions.append(.startTimer(.A, after: timers.timerA))
        }
        actions.append(.startTimer(.B, after: timers.timerB))
        return actions
    }

    public mutating func receivedResponse(_ response: SIPResponse) -> [Action] {
        switch state {
        case .initial, .terminated:
            return []
        case .calling(let interval):
            // Leaving Calling ends retransmission and the Timer B timeout (B applies only while
            // "the client transaction is still in the 'Calling' state").
            var actions: [Action] = []
            if interval != nil { actions.append(.cancelTimer(.A)) }
            actions.append(.cancelTimer(.B))
            if response.isProvisional {
                // > If the client transaction receives a provisional response while in the
                // > "Calling" state, it transitions to the "Proceeding" state. In the "Proceeding"
                // > state, the client transaction SHOULD NOT retransmit the request any longer.
                // > Furthermore, the provisional response MUST be passed to the TU.
                state = .proceeding
                actions.append(.deliverToTransactionUser(.response(response)))
                return actions
            }
            return actions + final(response)
        case .proceeding:
            if response.isProvisional { return [.deliverToTransactionUser(.response(response))] }
            return final(response)
        case .completed(let ack):
            // > Any retransmissions of the final response that are received while in the
            // > "Completed" state MUST cause the ACK to be re-passed to the transport layer for
            // > retransmission, but the newly received response MUST NOT be passed up to the TU.
            guard response.statusCode >= 300 else { return [] }
            return [.send(.request(ack))]
        case .accepted:
            // RFC 6026 §7.2: "2xx / 2xx to TU": retransmitted or forked 2xx responses are passed
            // up so that the TU acknowledges each; anything else is absorbed.
            guard response.isSuccess else { return [] }
            return [.deliverToTransactionUser(.response(response))]
        }
    }

    /// A final response in Calling or Proceeding.
    private mutating func final(_ response: SIPResponse) -> [Action] {
        if response.isSuccess {
            // RFC 6026 §7.2: "If a 2xx response is received while the client INVITE state
            // machine is in the 'Calling' or 'Proceeding' states, it MUST transition to the
            // 'Accepted' state, pass the 2xx response to the TU, and set Timer M to 64*T1."
            state = .accepted
            return [.deliverToTransactionUser(.response(response)), .startTimer(.M, after: timers.timerM)]
        }
        // > When in either the "Calling" or "Proceeding" states, reception of a response with
        // > status code from 300-699 MUST cause the client transaction to transition to
        // > "Completed". The client transaction MUST pass the received response up to the TU,
        // > and the client transaction MUST generate an ACK request, even if the transport is
        // > reliable [...] The client transaction SHOULD start timer D when it enters the
        // > "Completed" state, with a value of at least 32 seconds for unreliable transports,
        // > and a value of zero seconds for reliable transports.
        let ack = request.transactionACK(for: response)
        let actions: [Action] = [.send(.request(ack)), .deliverToTransactionUser(.response(response))]
        let timerD = timers.timerD(reliable: reliability.isReliable)
        if timerD == .zero {
            state = .terminated
            return actions + [.terminated]
        }
        state = .completed(ack: ack)
        return actions + [.startTimer(.D, after: timerD)]
    }

    public mutating func timerFired(_ timer: TransactionTimer) -> [Action] {
        switch (state, timer) {
        case (.calling(.some(let interval)), .A):
            // > When timer A fires, the client transaction MUST retransmit the request by passing
            // > it to the transport layer, and MUST reset the timer with a value of 2*T1. [...]
            // > This process MUST continue so that the request is retransmitted with intervals
            // > that double after each transmission.
            let next = interval * 2
            state = .calling(retransmitInterval: next)
            return [.send(.request(request)), .startTimer(.A, after: next)]
        case (.calling, .B):
            // > If the client transaction is still in the "Calling" state when timer B fires, the
            // > client transaction SHOULD inform the TU that a timeout has occurred. The client
            // > transaction MUST NOT generate an ACK.
            state = .terminated
            return [.timeout, .terminated]
        case (.completed, .D):
            // > If timer D fires while the client transaction is in the "Completed" state, the
            // > client transaction MUST move to the terminated state.
            state = .terminated
            return [.terminated]
        case (.accepted, .M):
            // RFC 6026 §7.2: "If Timer M fires and the state machine is in the 'Accepted'
            // state, the machine MUST transition to the 'Terminated' state."
            state = .terminated
            return [.terminated]
        default:
            return []
        }
    }

    /// The transport could not send the INVITE or an ACK (RFC 3261 §17.1.4: "the client
    /// transaction SHOULD inform the TU that a transport failure has occurred, and the client
    /// transaction SHOULD transition directly to the 'Terminated' state").
    public mutating func transportFailed() -> [Action] {
        switch state {
        case .initial, .terminated, .accepted:
            // In Accepted the transaction sends nothing: the ACK for a 2xx is the TU's.
            return []
        case .calling, .proceeding, .completed:
            state = .terminated
            return [.transportError, .terminated]
        }
    }
}
