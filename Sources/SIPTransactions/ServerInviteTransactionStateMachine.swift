import SIPCore

/// The INVITE server transaction of RFC 3261 §17.2.1 as corrected by RFC 6026 §7.1 (the
/// Accepted state: a 2xx no longer ends the transaction).
///
/// ```
///                               |INVITE
///                               |pass INV to TU
///            INVITE             V send 100 if TU won't in 200 ms
///            send response+------------+
///                +--------|            |--------+ 101-199 from TU
///                |        |            |        | send response
///                +------->|            |<-------+
///                         | Proceeding |
///                         |            |--------+ Transport Err.
///                         |            |        | Inform TU
///                         |            |<-------+
///                         +------------+
///            300-699 from TU |    |2xx from TU
///            send response   |    |send response
///             +--------------+    +------------+
///             |                                |
/// INVITE      V          Timer G fires         |
/// send response+-----------+ send response     |
///     +--------|           |--------+          |
///     |        |           |        |          |
///     +------->| Completed |<-------+  INVITE  |  Transport Err.
///              |           |           -       |  Inform TU
///     +--------|           |----+    +-----+   |  +---+
///     |        +-----------+    |ACK |     v   v  |   v
///     |          ^   |          | -  |  +------------+
///     |          |   |          |    |  |            |---+ ACK
///     +----------+   |          |    +->|  Accepted  |   | to TU
///     Transport Err. |          |       |            |<--+
///     Inform TU      |          V       +------------+
///                    |      +-----------+   |  ^     |
///                    |      |           |   |  |     |
///                    |      | Confirmed |   |  +-----+
///                    |      |           |   |  2xx from TU
///      Timer H fires |      +-----------+   |  send response
///      -             |          |           |
///                    |          | Timer I   | Timer L fires
///                    |          | fires -   | -
///                    |          V           |
///                    |        +------------+|
///                    |        |            |<+
///                    +------->| Terminated |
///                             |            |
///                             +------------+
/// ```
///
/// The machine promises: the INVITE reaches the transaction user once; a retransmitted INVITE is
/// answered with the last provisional (Proceeding) or the final response (Completed) and is
/// absorbed once a 2xx was sent (Accepted); a 300–699 is retransmitted on Timer G (unreliable
/// transports only) until its ACK arrives or Timer H gives up; the 2xx itself is retransmitted
/// by the transaction user (RFC 3261 §13.3.1.4), through `sendResponse(_:)`, which passes it on
/// while Accepted; an ACK arriving in Accepted is passed to the transaction user.
public struct ServerInviteTransactionStateMachine: Sendable {
    public typealias Action = TransactionAction

    /// Whether the transaction answers `100 Trying` on its own.
    public enum TryingPolicy: Sendable, Hashable {
        /// RFC 3261 §17.2.1: "the server transaction MUST generate a 100 (Trying) response unless
        /// it knows that the TU will generate a provisional or final response within 200 ms".
        /// Sent at once, before the INVITE is passed up.
        case sendImmediately
        /// The transaction user promises a response within 200 ms.
        case transactionUserRespondsWithin200Milliseconds
    }

    private enum State: Sendable {
        case initial
        case proceeding(lastProvisional: SIPResponse?)
        /// `retransmitInterval` is Timer G's current value; `nil` on reliable transports.
        case completed(finalResponse: SIPResponse, retransmitInterval: Duration?)
        case confirmed
        case accepted
        case terminated
    }

    private var state: State
    /// The INVITE that created the transaction.
    public let request: SIPRequest
    public let reliability: TransportReliability
    public let timers: SIPTimers
    public let tryingPolicy: TryingPolicy

    public init(
        request: SIPRequest,
        reliability: TransportReliability,
        timers: SIPTimers = .rfc3261,
        tryingPolicy: TryingPolicy = .sendImmediately
    ) {
        self.request = request
        self.reliability = reliability
        self.timers = timers
        self.tryingPolicy = tryingPolicy
        self.state = .initial
    }

    public var isTerminated: Bool {
        if case .terminated = state { return true }
        return false
    }

    /// The transaction was created for the INVITE.
    ///
    /// RFC 3261 §17.2.1: "When a server transaction is constructed for a request, it enters the
    /// 'Proceeding' state. [...] The request MUST be passed to the TU."
    public mutating func start() -> [Action] {
        guard case .initial = state else { return [] }
        switch tryingPolicy {
        case .sendImmediately:
            let trying = request.transactionTryingResponse()
            state = .proceeding(lastProvisional: trying)
            return [.send(.response(trying)), .deliverToTransactionUser(.request(request))]
        case .transactionUserRespondsWithin200Milliseconds:
            state = .proceeding(lastProvisional: nil)
            return [.deliverToTransactionUser(.request(request))]
        }
    }

    /// A retransmission of the INVITE arrived.
    public mutating func receivedRequest(_ retransmission: SIPRequest) -> [Action] {
        switch state {
        case .initial, .terminated, .confirmed:
            return []
        case .proceeding(let lastProvisional):
            // > If a request retransmission is received while in the "Proceeding" state, the most
            // > recent provisional response that was received from the TU MUST be passed to the
            // > transport layer for retransmission.
            guard let lastProvisional else { return [] }
            return [.send(.response(lastProvisional))]
        case .completed(let finalResponse, _):
            // > Furthermore, while in the "Completed" state, if a request retransmission is
            // > received, the server SHOULD pass the response to the transport for retransmission.
            return [.send(.response(finalResponse))]
        case .accepted:
            // RFC 6026 §7.1, figure 5: in Accepted, "INVITE / -": retransmissions are absorbed,
            // neither answered (the TU retransmits its 2xx on its own schedule) nor passed up.
            return []
        }
    }

    /// An ACK matching this transaction arrived (for a 300–699, its branch is the INVITE's).
    public mutating func receivedACK(_ ack: SIPRequest) -> [Action] {
        switch state {
        case .initial, .terminated, .proceeding, .confirmed:
            // In Confirmed: "absorb any additional ACK messages that arrive".
            return []
        case .completed(_, let retransmitInterval):
            // > If an ACK is received while the server transaction is in the "Completed" state,
            // > the server transaction MUST transition to the "Confirmed" state. As Timer G is
            // > ignored in this state, any retransmissions of the response will cease.
            // > [...] the server transaction MUST set Timer I to fire in T4 seconds for
            // > unreliable transports, and zero seconds for reliable transports.
            var actions: [Action] = []
            if retransmitInterval != nil { actions.append(.cancelTimer(.G)) }
            actions.append(.cancelTimer(.H))
            let timerI = timers.timerI(reliable: reliability.isReliable)
            if timerI == .zero {
                state = .terminated
                return [.terminated]
            }
            state = .confirmed
            actions.append(.startTimer(.I, after: timerI))
            return actions
        case .accepted:
            // RFC 6026 §7.1, figure 5: in Accepted, "ACK / to TU".
            return [.deliverToTransactionUser(.request(ack))]
        }
    }

    /// The transaction user sends `response`.
    public mutating func sendResponse(_ response: SIPResponse) -> [Action] {
        switch state {
        case .initial, .terminated, .completed, .confirmed:
            return []
        case .proceeding:
            if response.isProvisional {
                // > The TU passes any number of provisional responses to the server transaction.
                // > So long as the server transaction is in the "Proceeding" state, each of these
                // > MUST be passed to the transport layer for transmission.
                state = .proceeding(lastProvisional: response)
                return [.send(.response(response))]
            }
            if response.isSuccess {
                // RFC 6026 §7.1: "If, while in the 'Proceeding' state, the TU passes a 2xx
                // response to the server transaction, the server transaction MUST pass this
                // response to the transport layer for transmission. [...] The server transaction
                // MUST then transition to the 'Accepted' state" and start Timer L (64*T1).
                state = .accepted
                return [.send(.response(response)), .startTimer(.L, after: timers.timerL)]
            }
            // > While in the "Proceeding" state, if the TU passes a response with status code
            // > from 300 to 699 to the server transaction, the response MUST be passed to the
            // > transport layer for transmission, and the state machine MUST enter the
            // > "Completed" state. For unreliable transports, timer G is set to fire in T1
            // > seconds, and is not set to fire for reliable transports. [...] timer H MUST be set
            // > to fire in 64*T1 seconds for all transports.
            var actions: [Action] = [.send(.response(response))]
            if reliability.isReliable {
                state = .completed(finalResponse: response, retransmitInterval: nil)
            } else {
                state = .completed(finalResponse: response, retransmitInterval: timers.timerG)
                actions.append(.startTimer(.G, after: timers.timerG))
            }
            actions.append(.startTimer(.H, after: timers.timerH))
            return actions
        case .accepted:
            // RFC 6026 §7.1, figure 5: "2xx from TU / send response": the TU's retransmissions of its 2xx
            // (RFC 3261 §13.3.1.4) go out through the transaction. Anything else is discarded.
            guard response.isSuccess else { return [] }
            return [.send(.response(response))]
        }
    }

    public mutating func timerFired(_ timer: TransactionTimer) -> [Action] {
        switch (state, timer) {
        case (.completed(let finalResponse, .some(let interval)), .G):
            // > If timer G fires, the response is passed to the transport layer once more for
            // > retransmission, and timer G is set to fire in MIN(2*T1, T2) seconds. From then
            // > on, when timer G fires, the response is passed to the transport again for
            // > transmission, and timer G is reset with a value that doubles, unless that value
            // > exceeds T2, in which case it is reset with the value of T2.
            let next = timers.doubledUpToT2(interval)
            state = .completed(finalResponse: finalResponse, retransmitInterval: next)
            return [.send(.response(finalResponse)), .startTimer(.G, after: next)]
        case (.completed, .H):
            // > If timer H fires while in the "Completed" state, it implies that the ACK was never
            // > received. In this case, the server transaction MUST transition to the
            // > "Terminated" state, and MUST indicate to the TU that a transaction failure has
            // > occurred.
            state = .terminated
            return [.timeout, .terminated]
        case (.confirmed, .I):
            // > Once timer I fires, the server MUST transition to the "Terminated" state.
            state = .terminated
            return [.terminated]
        case (.accepted, .L):
            // RFC 6026 §8.7: "When Timer L fires and the state machine is in the 'Accepted'
            // state, the machine MUST transition to the 'Terminated' state."
            state = .terminated
            return [.terminated]
        default:
            return []
        }
    }

    /// The transport could not deliver a response.
    ///
    /// RFC 6026's figure keeps the transaction in Proceeding and Accepted on a transport error
    /// (the TU may still answer, or retransmit its 2xx, over another flow); in Completed the
    /// failure ends it, as in RFC 3261 §17.2.4.
    public mutating func transportFailed() -> [Action] {
        switch state {
        case .initial, .terminated, .confirmed:
            return []
        case .proceeding, .accepted:
            return [.transportError]
        case .completed:
            state = .terminated
            return [.transportError, .terminated]
        }
    }
}
