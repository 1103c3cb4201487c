import SIPCore

/// The transaction layer of RFC 3261 §17 as a value: a table of transaction machines, keyed by
/// `TransactionKey`, and the routing of messages, timers and transport errors to them.
///
/// The layer promises: every action it returns names the transaction and the peer it concerns;
/// a new request creates a server transaction and reaches the transaction user once; a
/// retransmission reaches only its machine; an ACK that matches no INVITE server transaction
/// (the ACK for a 2xx, RFC 3261 §17.2.3: "the ACK ... is not part of the transaction") is handed
/// to the transaction user as `.deliverACK`; terminated transactions are removed at once; and it
/// never holds more than `maximumTransactionCount` transactions: beyond that a new request is
/// handed back as `.rejectWithServiceUnavailable` (the caller answers 503 statelessly) and a new
/// outgoing request as `.refused`.
///
/// Like the machines it never reads a clock: the driver runs the timers the actions ask for and
/// calls `timerFired(_:for:)`; it cancels every timer of a transaction when it sees `.terminated`.
public struct TransactionLayer: Sendable {
    /// What the driver must do, in order.
    public enum Action: Sendable, Hashable {
        /// An action of the transaction `key`. `peer` is where its request came from (server) or
        /// was sent to (client): responses go where `ResponseDestination` says for that peer.
        case transaction(TransactionKey, TransactionAction, peer: SIPPeer)
        /// An ACK that matched no INVITE server transaction: for the transaction user's dialog
        /// (RFC 3261 §13.3.1.4: the ACK for a 2xx).
        case deliverACK(SIPRequest, from: SIPPeer)
        /// A response that matched no client transaction. RFC 6026 §7.3 (amending §18.1.2): a
        /// UA's transport layer discards it; count it.
        case discardStrayResponse(SIPResponse, from: SIPPeer)
        /// A message without the top Via branch or CSeq matching needs; count and drop it.
        case discardUnmatchable(SIPMessage, from: SIPPeer)
        /// The table is full: answer this request `503 Service Unavailable` without a
        /// transaction (RFC 3261 §21.5.4), so that the peer retries later.
        case rejectWithServiceUnavailable(SIPRequest, from: SIPPeer)
        /// An outgoing request was not given a transaction; the TU treats it as it would a 503
        /// (RFC 3261 §8.1.3.1).
        case refused(SIPRequest, reason: RefusalReason)
        /// An ACK from the TU (for a 2xx) is sent without a transaction (RFC 3261 §17.1.1.3).
        case sendWithoutTransaction(SIPRequest, to: SIPPeer)
        /// The TU answered a transaction that no longer exists.
        case unknownTransaction(TransactionKey)
    }

    public enum RefusalReason: Sendable, Hashable {
        /// `maximumTransactionCount` transactions are running.
        case transactionLimitReached
        /// The request has no top Via with a branch.
        case missingBranch
        /// A client transaction with this branch and method already runs.
        case duplicateTransaction
    }

    /// The default bound on the table. A UDP server transaction lingers 32 s after its final
    /// response (Timer J), and a SUBSCRIBE with digest costs two of them plus the NOTIFY's client
    /// transaction: 262,144 entries absorb a sustained 8,000 requests per second (about 4,000
    /// authenticated subscriptions per second) and, at a few kilobytes per stored request, keep
    /// the table near 1 GB at worst under a flood. Past it, requests get 503 with Retry-After.
    public static let defaultMaximumTransactionCount = 262_144

    enum Machine: Sendable {
        case serverInvite(ServerInviteTransactionStateMachine)
        case serverNonInvite(ServerNonInviteTransactionStateMachine)
        case clientInvite(ClientInviteTransactionStateMachine)
        case clientNonInvite(ClientNonInviteTransactionStateMachine)
    }

    struct Entry: Sendable {
        var machine: Machine
        var peer: SIPPeer
    }

    private var entries: [TransactionKey: Entry] = [:]
    public let timers: SIPTimers
    public let maximumTransactionCount: Int
    public let tryingPolicy: ServerInviteTransactionStateMachine.TryingPolicy

    public init(
        timers: SIPTimers = .rfc3261,
        maximumTransactionCount: Int = TransactionLayer.defaultMaximumTransactionCount,
        tryingPolicy: ServerInviteTransactionStateMachine.TryingPolicy = .sendImmediately
    ) {
        self.timers = timers
        self.maximumTransactionCount = maximumTransactionCount
        self.tryingPolicy = tryingPolicy
    }

    /// How many transactions are running.
    public var count: Int { entries.count }

    /// Requests received (ACKs aside), and how many of them retransmitted one already received:
    /// over UDP, a sign that requests wait longer than T1 (``OverloadGuard``).
    public private(set) var requestsReceived = 0
    public private(set) var retransmissionsReceived = 0

    public func contains(_ key: TransactionKey) -> Bool { entries[key] != nil }

    /// Returns the table's storage after a burst has passed (``Dictionary/releaseUnusedCapacity(keepingAtLeast:)``).
    public mutating func releaseUnusedCapacity() {
        entries.releaseUnusedCapacity()
    }

    /// How many transactions the table has room for without growing (for tests of the above).
    public var capacity: Int { entries.capacity }

    /// The request that created the transaction `key` (a non-INVITE server transaction keeps
    /// its request only until it reached the transaction user).
    public func request(for key: TransactionKey) -> SIPRequest? {
        switch entries[key]?.machine {
        case .serverInvite(let machine): return machine.request
        case .serverNonInvite(let machine): return machine.request
        case .clientInvite(let machine): return machine.request
        case .clientNonInvite(let machine): return machine.request
        case nil: return nil
        }
    }

    /// The running INVITE server transaction a received CANCEL targets (RFC 3261 §9.2); `nil`
    /// means the TU answers the CANCEL 481.
    public func inviteTransaction(forCancel cancel: SIPRequest) -> TransactionKey? {
        guard let key = TransactionKey.matchingInvite(forCancel: cancel), entries[key] != nil else { return nil }
        return key
    }

    // MARK: Events from the transport

    /// A request arrived from `peer`. Stamp it first (`SIPRequest.stampReceived(from:)`,
    /// RFC 3261 §18.2.1) so that the responses the TU copies its Via into carry `received` and
    /// `rport`; stamping does not change the request's key.
    public mutating func receivedRequest(_ request: SIPRequest, from peer: SIPPeer) -> [Action] {
        guard let key = TransactionKey(incoming: request) else {
            return [.discardUnmatchable(.request(request), from: peer)]
        }
        if request.method == .ack {
            return receivedACK(request, key: key, from: peer)
        }
        requestsReceived &+= 1
        if var entry = entries[key] {
            retransmissionsReceived &+= 1
            let actions: [TransactionAction]
            switch entry.machine {
            case .serverInvite(var machine):
                actions = machine.receivedRequest(request)
                entry.machine = .serverInvite(machine)
            case .serverNonInvite(var machine):
                actions = machine.receivedRequest(request)
                entry.machine = .serverNonInvite(machine)
            case .clientInvite, .clientNonInvite:
                return []  // cannot happen: client keys never equal server keys
            }
            return store(entry, for: key, actions)
        }
        guard entries.count < maximumTransactionCount else {
            return [.rejectWithServiceUnavailable(request, from: peer)]
        }
        let actions: [TransactionAction]
        let machine: Machine
        if request.method == .invite {
            var invite = ServerInviteTransactionStateMachine(
                request: request,
                reliability: peer.reliability,
                timers: timers,
                tryingPolicy: tryingPolicy
            )
            actions = invite.start()
            machine = .serverInvite(invite)
        } else {
            var nonInvite = ServerNonInviteTransactionStateMachine(
                request: request,
                reliability: peer.reliability,
                timers: timers
            )
            actions = nonInvite.start()
            machine = .serverNonInvite(nonInvite)
        }
        return store(Entry(machine: machine, peer: peer), for: key, actions)
    }

    private mutating func receivedACK(_ ack: SIPRequest, key: TransactionKey, from peer: SIPPeer) -> [Action] {
        for candidate in [key, key.withoutToTag].compactMap({ $0 }) {
            guard var entry = entries[candidate], case .serverInvite(var machine) = entry.machine else { continue }
            let actions = machine.receivedACK(ack)
            entry.machine = .serverInvite(machine)
            return store(entry, for: candidate, actions)
        }
        return [.deliverACK(ack, from: peer)]
    }

    /// A response arrived from `peer`.
    public mutating func receivedResponse(_ response: SIPResponse, from peer: SIPPeer) -> [Action] {
        guard let key = TransactionKey(incoming: response) else {
            return [.discardUnmatchable(.response(response), from: peer)]
        }
        guard var entry = entries[key] else { return [.discardStrayResponse(response, from: peer)] }
        let actions: [TransactionAction]
        switch entry.machine {
        case .clientInvite(var machine):
            actions = machine.receivedResponse(response)
            entry.machine = .clientInvite(machine)
        case .clientNonInvite(var machine):
            actions = machine.receivedResponse(response)
            entry.machine = .clientNonInvite(machine)
        case .serverInvite, .serverNonInvite:
            return [.discardStrayResponse(response, from: peer)]
        }
        return store(entry, for: key, actions)
    }

    /// The timer `timer` of transaction `key` expired. A timer of a transaction that is gone is
    /// ignored.
    public mutating func timerFired(_ timer: TransactionTimer, for key: TransactionKey) -> [Action] {
        guard var entry = entries[key] else { return [] }
        let actions: [TransactionAction]
        switch entry.machine {
        case .serverInvite(var machine):
            actions = machine.timerFired(timer)
            entry.machine = .serverInvite(machine)
        case .serverNonInvite(var machine):
            actions = machine.timerFired(timer)
            entry.machine = .serverNonInvite(machine)
        case .clientInvite(var machine):
            actions = machine.timerFired(timer)
            entry.machine = .clientInvite(machine)
        case .clientNonInvite(var machine):
            actions = machine.timerFired(timer)
            entry.machine = .clientNonInvite(machine)
        }
        return store(entry, for: key, actions)
    }

    /// The transport failed to send a message of transaction `key` (RFC 3261 §17.1.4, §17.2.4).
    public mutating func transportFailed(for key: TransactionKey) -> [Action] {
        guard var entry = entries[key] else { return [] }
        let actions: [TransactionAction]
        switch entry.machine {
        case .serverInvite(var machine):
            actions = machine.transportFailed()
            entry.machine = .serverInvite(machine)
        case .serverNonInvite(var machine):
            actions = machine.transportFailed()
            entry.machine = .serverNonInvite(machine)
        case .clientInvite(var machine):
            actions = machine.transportFailed()
            entry.machine = .clientInvite(machine)
        case .clientNonInvite(var machine):
            actions = machine.transportFailed()
            entry.machine = .clientNonInvite(machine)
        }
        return store(entry, for: key, actions)
    }

    /// Forgets the server transaction `key` without answering it: the TU has chosen silence
    /// (a locked-out guesser, issue 9). A retransmission then starts a new transaction and is
    /// judged again. Client transactions are not discarded: their peer awaits nothing of ours.
    public mutating func discardServerTransaction(_ key: TransactionKey) -> [Action] {
        guard let entry = entries[key] else { return [] }
        switch entry.machine {
        case .serverInvite, .serverNonInvite:
            entries[key] = nil
            return [.transaction(key, .terminated, peer: entry.peer)]
        case .clientInvite, .clientNonInvite:
            return []
        }
    }

    // MARK: Requests from the transaction user

    /// The TU sends `request` to `peer` (the next hop it resolved). The request's top Via must
    /// carry a fresh branch (`Via.makeBranch()`). An ACK is sent without a transaction.
    public mutating func sendRequest(_ request: SIPRequest, to peer: SIPPeer) -> [Action] {
        if request.method == .ack { return [.sendWithoutTransaction(request, to: peer)] }
        guard let key = TransactionKey(outgoing: request) else { return [.refused(request, reason: .missingBranch)] }
        guard entries[key] == nil else { return [.refused(request, reason: .duplicateTransaction)] }
        guard entries.count < maximumTransactionCount else {
            return [.refused(request, reason: .transactionLimitReached)]
        }
        let actions: [TransactionAction]
        let machine: Machine
        if request.method == .invite {
            var invite = ClientInviteTransactionStateMachine(
                request: request,
                reliability: peer.reliability,
                timers: timers
            )
            actions = invite.start()
            machine = .clientInvite(invite)
        } else {
            var nonInvite = ClientNonInviteTransactionStateMachine(
                request: request,
                reliability: peer.reliability,
                timers: timers
            )
            actions = nonInvite.start()
            machine = .clientNonInvite(nonInvite)
        }
        return store(Entry(machine: machine, peer: peer), for: key, actions)
    }

    /// The TU answers the server transaction `key` with `response`.
    public mutating func sendResponse(_ response: SIPResponse, for key: TransactionKey) -> [Action] {
        guard var entry = entries[key] else { return [.unknownTransaction(key)] }
        let actions: [TransactionAction]
        switch entry.machine {
        case .serverInvite(var machine):
            actions = machine.sendResponse(response)
            entry.machine = .serverInvite(machine)
        case .serverNonInvite(var machine):
            actions = machine.sendResponse(response)
            entry.machine = .serverNonInvite(machine)
        case .clientInvite, .clientNonInvite:
            return [.unknownTransaction(key)]
        }
        return store(entry, for: key, actions)
    }

    /// Keeps `entry` unless its machine terminated, and tags its actions.
    private mutating func store(_ entry: Entry, for key: TransactionKey, _ actions: [TransactionAction]) -> [Action] {
        if actions.contains(.terminated) {
            entries[key] = nil
        } else {
            entries[key] = entry
        }
        return actions.map { .transaction(key, $0, peer: entry.peer) }
    }
}
