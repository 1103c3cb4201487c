import SIPCore

/// The non-INVITE server transaction of RFC 3261 §17.2.2.
///
/// ```
///                       |Request received
///                       |pass to TU
///                       V
///                 +-----------+
///                 |           |
///                 | Trying    |-------------+
///                 |           |             |
///                 +-----------+             |200-699 from TU
///                       |                   |send response
///                       |1xx from TU        |
///                       |send response      |
///                       |                   |
///    Request            V      1xx from TU  |
///    send response+-----------+send response|
///        +--------|           |--------+    |
///        |        | Proceeding|        |    |
///        +------->|           |<-------+    |
/// +<--------------|           |             |
/// |Trnsprt Err    +-----------+             |
/// |Inform TU            |                   |
/// |                     |                   |
/// |                     |200-699 from TU    |
/// |                     |send response      |
/// |  Request            V                   |
/// |  send response+-----------+             |
/// |      +--------|           |             |
/// |      |        | Completed |<------------+
/// |      +------->|           |
/// +<--------------|           |
/// |Trnsprt Err    +-----------+
/// |Inform TU            |
/// |                     |Timer J fires
/// |                     |-
/// |                     V
/// |               +-----------+
/// +-------------->|           |
///                 | Terminated|
///                 |           |
///                 +-----------+
/// ```
///
/// The machine promises: the request reaches the transaction user once (`start()`), however often
/// it is retransmitted; a retransmission is answered with the last response sent, or absorbed
/// when none was; only the first final response is sent; Timer J (zero on reliable transports,
/// so the machine terminates at once) bounds how long it absorbs retransmissions.
public struct ServerNonInviteTransactionStateMachine: Sendable {
    public typealias Action = TransactionAction

    private enum State: Sendable {
        case initial
        case trying
        case proceeding(lastProvisional: SIPResponse)
        case completed(finalResponse: SIPResponse)
        case terminated
    }

    private var state: State
    /// The request that created the transaction, until `start()` hands it to the transaction
    /// user: nothing later needs it (a retransmission is answered with the response, matched by
    /// the transaction's key), and over UDP the transaction lives 32 s more (issue 10: kept
    /// requests were a fifth of the heap under a SUBSCRIBE load).
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

    /// The transaction was created for `request`.
    ///
    /// RFC 3261 §17.2.2: "The state machine is initialized in the 'Trying' state and is passed a
    /// request other than INVITE or ACK when initialized. This request is passed up to the TU."
    public mutating func start() -> [Action] {
        guard case .initial = state, let request = request.take() else { return [] }
        state = .trying
        return [.deliverToTransactionUser(.request(request))]
    }

    /// A retransmission of the request arrived.
    public mutating func receivedRequest(_ retransmission: SIPRequest) -> [Action] {
        switch state {
        case .initial, .terminated:
            return []
        case .trying:
            // > Once in the "Trying" state, any further request retransmissions are discarded.
            return []
        case .proceeding(let lastProvisional):
            // > If a retransmission of the request is received while in the "Proceeding" state,
            // > the most recently sent provisional response MUST be passed to the transport layer
            // > for retransmission.
            return [.send(.response(lastProvisional))]
        case .completed(let finalResponse):
            // > While in the "Completed" state, the server transaction MUST pass the final
            // > response to the transport layer for retransmission whenever a retransmission of
            // > the request is received.
            return [.send(.response(finalResponse))]
        }
    }

    /// The transaction user sends `response`.
    public mutating func sendResponse(_ response: SIPResponse) -> [Action] {
        switch state {
        case .initial, .terminated:
            return []
        case .trying, .proceeding:
            if response.isProvisional {
                // > While in the "Trying" state, if the TU passes a provisional response to the
                // > server transaction, the server transaction MUST enter the "Proceeding" state.
                state = .proceeding(lastProvisional: response)
                return [.send(.response(response))]
            }
            // > If the TU passes a final response (status codes 200-699) to the server while in
            // > the "Proceeding" state, the transaction MUST enter the "Completed" state, and the
            // > response MUST be passed to the transport layer for transmission.
            // > When the server transaction enters the "Completed" state, it MUST set Timer J to
            // > fire in 64*T1 seconds for unreliable transports, and zero seconds for reliable
            // > transports.
            let timerJ = timers.timerJ(reliable: reliability.isReliable)
            if timerJ == .zero {
                state = .terminated
                return [.send(.response(response)), .terminated]
            }
            // Kept 32 s to answer retransmissions: compacted (`SIPResponse.compacted()`).
            state = .completed(finalResponse: response.compacted())
            return [.send(.response(response)), .startTimer(.J, after: timerJ)]
        case .completed:
            // > Any other final responses passed by the TU to the server transaction MUST be
            // > discarded while in the "Completed" state.
            return []
        }
    }

    public mutating func timerFired(_ timer: TransactionTimer) -> [Action] {
        guard timer == .J, case .completed = state else { return [] }
        // > The server transaction remains in this state until Timer J fires, at which point it
        // > MUST transition to the "Terminated" state.
        state = .terminated
        return [.terminated]
    }

    /// The transport could not deliver a response (RFC 3261 §17.2.4).
    public mutating func transportFailed() -> [Action] {
        switch state {
        case .initial, .terminated:
            return []
        case .trying, .proceeding, .completed:
            // RFC 3261 §17.2.4: "If those should all fail [...] the server transaction SHOULD
            // inform the TU that a failure has occurred, and SHOULD transition to the terminated
            // state." The driver has already tried the §18.2.2 alternatives when it reports this.
            state = .terminated
            return [.transportError, .terminated]
        }
    }
}
