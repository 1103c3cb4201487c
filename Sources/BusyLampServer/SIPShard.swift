import BusyLampCore
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import SIPAuth
import SIPCore
import SIPTransactions
import SIPTransportNIO

/// One shard of the server: BusyLamp's SIP machines on one event loop, and their actions
/// carried out. ``SIPServer`` runs one per core, each with its own socket on the same port.
///
/// This is the only place where bytes leave, timers are scheduled and the store is written:
///
/// ```
/// transport ─bytes─► parse ─► TransactionLayer ─► handleRequest (registrar, OPTIONS, …)
///     ▲                             │                      │
///     └──────────── send ◄──────────┴── actions ◄──────────┘   store writes on `storeThread`,
///                                                             then the answer (persist, then 200)
/// ```
/// Everything mutable is touched only on `eventLoop`; store calls run on a single-threaded
/// pool so that the loop never blocks on disk and writes for one AOR never race.
final class SIPShard: @unchecked Sendable {
    // @unchecked: all mutable state is confined to `eventLoop` (asserted where it matters).

    typealias Configuration = SIPServer.Configuration

    /// This shard's place among the server's shards (``ShardRouting``).
    let index: Int
    /// Every shard of the server, this one included, by index: where messages owned elsewhere
    /// are handed, and where the line owner sends line changes.
    var shards: [SIPShard] = []
    let routing: ShardRouting
    /// Whether this shard owns every line's state: registrations and calls run here, and the
    /// other shards hold replicas (``ShardRouting/lineOwner``).
    var ownsLines: Bool { index == ShardRouting.lineOwner }
    /// Active subscriptions per shard, summed for the gauge.
    let subscriptionCensus: SubscriptionCensus
    /// This shard's active subscriptions: how evenly the kernel spreads the phones.
    let shardSubscriptions: Gauge
    /// This shard's running transactions: with the subscriptions, how loaded it is.
    let shardTransactions: Gauge

    let eventLoop: EventLoop
    let transport: SIPTransport
    let configuration: Configuration
    private let directoryStore: DirectoryStore
    let registrationStore: RegistrationStore
    let subscriptionStore: SubscriptionStore
    let storeThread: NIOThreadPool
    let logger: Logger
    private let parser: SIPParser

    var directory: Directory
    var transactions: TransactionLayer
    var authenticator: DigestAuthenticator
    /// Failed authentications per source address and user: who is locked out (issue 9).
    var failedAuthentications: FailedAuthenticationGuard
    var registrar: Registrar
    let capabilities = ServerCapabilities.blfAndCalls
    /// The flow each server transaction's request came over: its responses go back along it.
    var inboundFlows: [TransactionKey: SIPFlow] = [:]
    /// Every SIP and call timer, on one wheel that one repeating task turns (``ServerTimers``).
    var timers: ServerTimers
    /// When the wheel's tick 0 was: its clock is the time since.
    private var timersEpoch = NIODeadline.now()
    /// When the last tick ran, and the guard it feeds.
    private var lastTickAt = NIODeadline.now()
    /// Restored subscriptions' first NOTIFYs this shard may send per second: its share of the
    /// server's `restartNotifiesPerSecond`, set when it restores them.
    var restartNotifiesPerSecond = 1.0
    /// Restored subscriptions' first NOTIFYs this shard may send now.
    private var restartNotifyAllowance = 0.0
    var overload: OverloadGuard
    /// Requests per source address: a flood from one address is dropped unread (issue 9).
    var sourceRates: SourceRateLimiter<SourceIPAddress>
    /// Set by `stop`: a batched write scheduled before it must not start after the store stops.
    var isStopped = false
    /// Host names and addresses that mean "this server" in a Request-URI.
    private var localHosts: Set<String> = []
    private var sweepTasks: [RepeatedTask] = []
    let metrics = ServerMetrics()
    /// The operator's view of refused requests (``RefusalLog``), per account.
    var refusalLog = RefusalLog()
    /// Every line-state change, for the admin API's live view and anyone else who listens
    /// (published by the line owner only).
    let lineStateFeed: LineStateFeed
    /// The bound listeners (for our host names after a directory change).
    private var boundListeners: [SIPTransport.BoundListener] = []
    /// Our host and port on each of this shard's listeners (``localHostPort(for:)``).
    var listenerHostPorts: [(host: String, port: Int)] = []

    // Subscriptions (SIPShard+Subscriptions.swift)
    var notifier: NotifierStateMachine
    /// The NOTIFY client transactions in flight, and the subscription each belongs to.
    var notifyTransactions: [TransactionKey: String] = [:]
    /// Subscription writes waiting for the next batch (newest state per subscription).
    var pendingSubscriptionWrites: [String: Subscription] = [:]
    var subscriptionWriteScheduled = false
    /// Accepted subscriptions waiting for their durable write (group commit), and whether one
    /// is on disk now.
    var subscriptionsAwaitingWrite:
        [(subscription: Subscription, completion: @Sendable (Result<Void, Error>) -> Void)] = []
    var subscriptionWriteInFlight = false
    /// Each line's live bindings, by number: registered or not (PIDF open/closed), and the
    /// source addresses `same_network_only` compares with.
    var liveBindings: [String: [Binding]] = [:]

    // Calls (SIPShard+Calls.swift)
    var b2bua: B2BUAStateMachine
    /// The client transactions calls sent, and the branch each call knows them by.
    var callTransactions: [TransactionKey: String] = [:]
    /// Where every call in progress stands for a crash (SIPShard+InterruptedCalls.swift).
    let callStore: CallTeardownStore
    var callsAwaitingTeardownWrite: Set<String> = []
    var callTeardownWriteScheduled = false
    /// The forks a restart cancelled, by branch: their 487 (or 2xx) needs an ACK we build from
    /// the INVITE the last process sent.
    var interruptedForks: [String: (invite: SIPRequest, peer: SIPPeer)] = [:]

    init(
        index: Int,
        shardCount: Int,
        eventLoop: EventLoop,
        directory: Directory,
        stores: SIPServer.Stores,
        storeThread: NIOThreadPool,
        nonceSecret: [UInt8],
        lineStateFeed: LineStateFeed,
        subscriptionCensus: SubscriptionCensus,
        configuration: Configuration,
        logger: Logger
    ) {
        self.index = index
        self.routing = ShardRouting(shardCount: shardCount)
        self.lineStateFeed = lineStateFeed
        self.subscriptionCensus = subscriptionCensus
        self.shardSubscriptions = Gauge(label: "busylamp_shard_subscriptions", dimensions: [("shard", String(index))])
        self.shardTransactions = Gauge(label: "busylamp_shard_transactions", dimensions: [("shard", String(index))])
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.directory = directory
        self.directoryStore = stores.directory
        self.registrationStore = stores.registrations
        self.subscriptionStore = stores.subscriptions
        self.callStore = stores.calls
        self.logger = logger
        self.transactions = TransactionLayer(
            timers: configuration.timers,
            maximumTransactionCount: configuration.maximumTransactions
        )
        self.notifier = NotifierStateMachine(directory: directory, settings: configuration.notifier)
        var callSettings = CallStateMachine.Settings()
        callSettings.ringTimeout = configuration.ringTimeout
        callSettings.timers = configuration.timers
        self.b2bua = B2BUAStateMachine(settings: callSettings)
        self.parser = SIPParser(limits: configuration.transport.parserLimits)
        self.timers = ServerTimers(tick: configuration.timerTick)
        self.overload = OverloadGuard(settings: configuration.overload)
        self.sourceRates = SourceRateLimiter(settings: configuration.sourceRates)
        self.transport = SIPTransport(
            eventLoop: eventLoop,
            configuration: configuration.transport,
            shardIndex: index,
            logger: logger
        )
        self.storeThread = storeThread
        self.authenticator = DigestAuthenticator(
            realm: directory.platform.domain,
            secret: nonceSecret,
            policy: configuration.digestPolicy
        )
        self.failedAuthentications = FailedAuthenticationGuard(settings: configuration.failedAuthentications)
        self.registrar = Registrar(
            settings: Registrar.Settings(
                minimumExpires: directory.platform.minimumExpires,
                maximumExpires: directory.platform.maximumExpires
            )
        )
    }

    // MARK: Life cycle (driven by ``SIPServer``)

    /// Binds this shard's sockets (several shards bind the same ports: `SO_REUSEPORT`).
    func bind(_ addresses: [SIPListenAddress]) async throws -> [SIPTransport.BoundListener] {
        transport.setMessageHandler { [self] bytes, framing, flow in
            self.received(bytes: bytes, framing: framing, flow: flow)
        }
        return try await transport.bind(addresses, joiningShards: index != 0)
    }

    /// Starts the timers and sweeps, once every shard is bound.
    func begin(listeners: [SIPTransport.BoundListener]) async throws {
        let hosts = Self.localHosts(domain: directory.platform.domain, listeners: listeners)
        try await eventLoop.submit {
            self.localHosts = hosts
            self.boundListeners = listeners
            self.listenerHostPorts = Self.hostPorts(
                of: self.transport.listeners,
                domain: self.directory.platform.domain
            )
            self.timersEpoch = .now()
            self.lastTickAt = self.timersEpoch
            self.sweepTasks = [
                self.eventLoop.scheduleRepeatedTask(
                    initialDelay: TimeAmount(self.timers.tick),
                    delay: TimeAmount(self.timers.tick)
                ) { _ in self.fireDueTimers() },
                self.eventLoop.scheduleRepeatedTask(
                    initialDelay: self.configuration.subscriptionSweepInterval,
                    delay: self.configuration.subscriptionSweepInterval
                ) { _ in self.sweepEndedSubscriptions() },
            ]
            if self.ownsLines {
                self.sweepTasks.append(contentsOf: [
                    self.eventLoop.scheduleRepeatedTask(
                        initialDelay: .seconds(1),
                        delay: self.configuration.bindingSweepInterval
                    ) { _ in self.sweepExpiredBindings() },
                    // One shard is enough: the allocator's arenas are the process's.
                    self.eventLoop.scheduleRepeatedTask(
                        initialDelay: TimeAmount(HeapMemory.trimInterval),
                        delay: TimeAmount(HeapMemory.trimInterval)
                    ) { _ in HeapMemory.releaseFreePages() },
                ])
            }
        }.get()
    }

    /// Closes the sockets, stops the sweeps and waits for what is pending to be written (the
    /// store thread stops after every shard, and would cancel a write still queued).
    /// The first step of a graceful stop: from now on new requests get `503` with
    /// `Retry-After`, while transactions already begun (a REGISTER or SUBSCRIBE waiting for its
    /// store write) go on to their answers.
    func beginDraining() async {
        try? await eventLoop.submit { self.overload.beginDraining() }.get()
    }

    /// Returns once everything the loop had queued has run, the datagrams its work wrote
    /// flushed: a store write's completion queues a response, whose flush is queued in turn.
    func settle() async {
        for _ in 0..<2 { try? await eventLoop.submit {}.get() }
    }

    func stop() async {
        await transport.close()
        try? await eventLoop.flatSubmit {
            for task in self.sweepTasks { task.cancel() }
            self.isStopped = true
            return self.writePendingSubscriptions().and(self.writeCallTeardowns()).map { _ in }
        }.get()
    }

    /// The directory changed (the admin API wrote the store): rules apply to live
    /// subscriptions at once, and the watchers of a line that may no longer be watched get a
    /// final NOTIFY (`rejected`, or `noresource` for a deleted line).
    func directoryChanged(_ newDirectory: Directory) {
        eventLoop.execute { [self] in
            directory = newDirectory
            // A domain change reaches what was derived from the domain at start: the host names
            // that mean us and the digest realm (nonces issued for the old realm then fail).
            localHosts = Self.localHosts(domain: newDirectory.platform.domain, listeners: boundListeners)
            listenerHostPorts = Self.hostPorts(of: transport.listeners, domain: newDirectory.platform.domain)
            authenticator.realm = newDirectory.platform.domain
            refusalLog.retainAccounts(Set(newDirectory.accounts.map(\.id)))
            registrar = Registrar(
                settings: Registrar.Settings(
                    minimumExpires: newDirectory.platform.minimumExpires,
                    maximumExpires: newDirectory.platform.maximumExpires
                )
            )
            execute(notifier.directoryChanged(newDirectory, now: Date()))
        }
    }

    // MARK: Inbound

    /// Bytes from this shard's sockets: parsed here, then handled by the shard that owns the
    /// message (``ShardRouting``), which is this one unless it belongs to a line or a call
    /// (the line owner) or to another shard's subscription.
    private func received(bytes: [UInt8], framing: SIPFraming, flow: SIPFlow) {
        guard admitsRequests(in: bytes, from: flow) else { return }
        let message: SIPMessage
        do {
            message = try parser.parse(bytes, framing: framing)
        } catch {
            refuseUnparseable(error, flow: flow)
            return
        }
        let owner = routing.shard(for: message, arrivedOn: index)
        guard owner == index else {
            let shard = shards[owner]
            return shard.eventLoop.execute { shard.handle(message, flow: flow) }
        }
        handle(message, flow: flow)
    }

    private func handle(_ message: SIPMessage, flow: SIPFlow) {
        let peer = SIPPeer(flow)
        switch message {
        case .request(var request):
            request.stampReceived(from: peer)
            let key = TransactionKey(incoming: request)
            // Past capacity or stopping, new work is refused before it costs anything (a
            // retransmission of a request already admitted still reaches its transaction).
            if overload.isShedding, let key, !transactions.contains(key), overload.sheds(request) {
                return shed(request, flow: flow)
            }
            // The first REGISTER or SUBSCRIBE of a phone carries no credentials: its 401 needs
            // no transaction (issue 10: one of the three transactions of a subscription).
            if key != nil, challengesWithoutTransaction(request) {
                metrics.requests.increment(Self.metricMethod(request.method))
                countRefusal(request.method.rawValue, reason: "challenge")
                return send(.response(challengeResponse(to: request, outcome: .missingCredentials)), to: flow)
            }
            let actions = transactions.receivedRequest(request, from: peer)
            // Only a transaction the layer keeps gets a flow entry: its `.terminated` removes it.
            // A request it refuses (503 for a full table) has none, so a flood of new branches
            // cannot grow this map past the table's cap.
            if let key, inboundFlows[key] == nil, transactions.contains(key) {
                inboundFlows[key] = flow
            }
            execute(actions, flow: flow)
        case .response(let response):
            execute(transactions.receivedResponse(response, from: peer), flow: flow)
        }
    }

    /// Whether a message from `flow` goes on to be parsed: responses always do (they answer our
    /// own requests), requests while their source is within its rate. A refused request is
    /// dropped without an answer, as a flood's should be: an answer is more work, and more
    /// traffic towards a forged address.
    private func admitsRequests(in bytes: [UInt8], from flow: SIPFlow) -> Bool {
        guard !bytes.starts(with: Self.responsePrefix) else { return true }
        switch sourceRates.admit(flow.sourceIPAddress, now: lastTickAt.uptimeNanoseconds) {
        case .admitted:
            return true
        case .refused(let startsEpisode):
            transport.countDrop(.sourceRateLimit)
            if startsEpisode {
                logger.warning(
                    "Too many requests from one address: dropping them",
                    metadata: [
                        LogKey.peer: "\(flow.remoteHost)",
                        LogKey.limit:
                            "\(sourceRates.settings.requestsPerSecond)/s, burst \(sourceRates.settings.burst)",
                    ]
                )
            }
            return false
        }
    }

    private static let responsePrefix = Array("SIP/".utf8)

    /// RFC 4475 §3.1.2: answer 400 naming the fault when enough is readable, else drop.
    private func refuseUnparseable(_ error: SIPParseError, flow: SIPFlow) {
        metrics.parseErrors.increment(error.code.rawValue)
        logger.debug(
            "Unparseable message",
            metadata: [LogKey.peer: "\(flow)", LogKey.parseError: "\(error.reasonPhrase)"]
        )
        guard var response = error.makeResponse(toTag: Self.makeTag()) else {
            transport.countDrop(.unparseable)
            return
        }
        response.headers.add(.server, configuration.serverName)
        send(.response(response), to: flow)
    }

    // MARK: Actions

    func execute(_ actions: [TransactionLayer.Action], flow: SIPFlow?) {
        for action in actions {
            switch action {
            case .transaction(let key, let transactionAction, let peer):
                execute(transactionAction, key: key, peer: peer, flow: flow ?? inboundFlows[key])
            case .deliverACK(let ack, _):
                handleACK(ack)
            case .discardStrayResponse(let response, _):
                if interruptedForkAnswered(response) { continue }
                transport.countDrop(.noRoute)
            case .discardUnmatchable:
                transport.countDrop(.noRoute)
            case .rejectWithServiceUnavailable(let request, _):
                guard let flow else { continue }
                shed(request, flow: flow)
            case .refused(let request, let reason):
                logger.warning(
                    "Request refused by the transaction layer",
                    metadata: [LogKey.method: "\(request.method)", LogKey.reason: "\(reason)"]
                )
            case .sendWithoutTransaction(let request, let peer):
                if let flow = flow ?? self.flow(to: peer, like: nil) { send(.request(request), to: flow) }
            case .unknownTransaction(let key):
                logger.debug("Response for a finished transaction", metadata: [LogKey.transaction: "\(key)"])
            }
        }
    }

    private func execute(_ action: TransactionAction, key: TransactionKey, peer: SIPPeer, flow: SIPFlow?) {
        switch action {
        case .send(let message):
            if case .response(let response) = message, let via = response.topVia {
                let destination = ResponseDestination(topVia: via, from: peer)
                if let target = self.flow(for: destination, like: flow) { send(message, to: target) }
            } else if let target = flow ?? self.flow(to: peer, like: nil) {
                send(message, to: target) { [self] in execute(transactions.transportFailed(for: key), flow: nil) }
            } else {
                execute(transactions.transportFailed(for: key), flow: nil)
            }
        case .deliverToTransactionUser(.request(let request)):
            guard let flow else { return }
            handleRequest(request, key: key, flow: flow)
        case .deliverToTransactionUser(.response(let response)):
            if callResponseArrived(response, key: key) { return }
            if let subscriptionID = notifyTransactions[key], response.statusCode >= 200 {
                notifyTransactions[key] = nil
                if response.statusCode >= 300 { metrics.notifiesFailed.increment("rejected") }
                execute(
                    notifier.notifyAnswered(
                        subscriptionID: subscriptionID,
                        statusCode: response.statusCode,
                        now: Date()
                    )
                )
            }
        case .startTimer(let timer, let duration):
            timers.arm(timer, for: key, after: duration)
        case .cancelTimer(let timer):
            timers.cancel(timer, for: key)
        case .timeout, .transportError:
            logger.debug("Transaction failed", metadata: [LogKey.transaction: "\(key)", LogKey.event: "\(action)"])
            // RFC 3261 §8.1.3.1: a timeout counts as 408, a transport failure as 503.
            callRequestFailed(key: key, status: action == .timeout ? 408 : 503)
            if let subscriptionID = notifyTransactions.removeValue(forKey: key) {
                metrics.notifiesFailed.increment(action == .timeout ? "timeout" : "transport_error")
                execute(notifier.notifyFailed(subscriptionID: subscriptionID, now: Date()))
            }
        case .terminated:
            inboundFlows[key] = nil
            notifyTransactions[key] = nil
            callTransactions[key] = nil
            timers.cancelAll(for: key)
        }
    }

    /// `503` with `Retry-After`, without a transaction (RFC 3261 §21.5.4): the transaction table
    /// is full, or the shard is past capacity (``OverloadGuard``).
    private func shed(_ request: SIPRequest, flow: SIPFlow) {
        metrics.overloadRejections.increment()
        let retryAfter = SIPHeaders.Field(name: .retryAfter, value: String(overload.settings.retryAfterSeconds))
        send(.response(makeResponse(to: request, status: 503, headers: [retryAfter])), to: flow)
    }

    /// The wheel's tick: every timer now due goes back to the machine that armed it. How late
    /// the tick runs is how busy the loop is: the overload guard's signal.
    private func fireDueTimers() {
        let now = NIODeadline.now()
        let previousTick = lastTickAt
        overload.observe(
            lag: Duration(now - lastTickAt - TimeAmount(timers.tick)),
            requestsReceived: transactions.requestsReceived,
            retransmissionsReceived: transactions.retransmissionsReceived
        )
        lastTickAt = now
        let elapsed = now - timersEpoch
        let tick = max(1, TimeAmount(timers.tick).nanoseconds)
        timers.advance(to: UInt64(max(0, elapsed.nanoseconds / tick)))
        while let timer = timers.nextDue() {
            switch timer {
            case .transaction(let key, let kind):
                execute(transactions.timerFired(kind, for: key), flow: inboundFlows[key])
            case .call(let callID, let kind):
                execute(b2bua.timerFired(kind, callID: callID))
            }
        }
        sendOwedRestartNotifies(since: previousTick)
    }

    /// After a restart, the restored subscriptions' first NOTIFYs leave at
    /// `restartNotifiesPerSecond` (this shard's share), a tick's worth at each tick.
    private func sendOwedRestartNotifies(since previousTick: NIODeadline) {
        guard notifier.owedRestartNotifyCount > 0 else {
            restartNotifyAllowance = 0
            return
        }
        let rate = restartNotifiesPerSecond
        let elapsed = Double((NIODeadline.now() - previousTick).nanoseconds) / 1e9
        // A stalled loop does not earn a burst: at most a tenth of a second's worth at once.
        restartNotifyAllowance = min(restartNotifyAllowance + rate * elapsed, max(1, rate / 10))
        let count = Int(restartNotifyAllowance)
        guard count > 0 else { return }
        restartNotifyAllowance -= Double(count)
        execute(notifier.sendOwedRestartNotifies(atMost: count, now: Date()))
    }

    /// Starts a request of ours towards `peer` over `flow`: adds the top Via with `branch`
    /// (RFC 3261 §8.1.1.7), our Contact on a request that makes or refreshes a dialog's remote
    /// target (§12.1, `Dialog.targetRefreshMethods`), and User-Agent. Returns the transaction
    /// layer's actions for the caller to execute (`.refused` when it could not start).
    func startRequest(
        _ request: SIPRequest,
        branch: String,
        to peer: SIPPeer,
        over flow: SIPFlow
    ) -> [TransactionLayer.Action] {
        var request = request
        let (host, port) = localHostPort(for: flow)
        request.headers.prepend(.via, "SIP/2.0/\(flow.transport.viaToken) \(host):\(port);branch=\(branch);rport")
        if Dialog.targetRefreshMethods.contains(request.method) {
            request.headers.add(.contact, "<\(localURI(for: flow))>")
        }
        request.headers.add(.userAgent, configuration.serverName)
        return transactions.sendRequest(request, to: peer)
    }

    /// Sends over this shard's socket, or over the connection's shard when another shard
    /// accepted the TCP connection (a call's leg, a REGISTER handled by the line owner).
    func send(_ message: SIPMessage, to flow: SIPFlow, onFailure: (@Sendable () -> Void)? = nil) {
        var buffer = ByteBufferAllocator().buffer(capacity: 1024)
        message.serialize(into: &buffer)
        let failed: @Sendable (Error) -> Void = { [self, logger] error in
            logger.debug("Send failed", metadata: [LogKey.peer: "\(flow)", LogKey.error: "\(error)"])
            guard let onFailure else { return }
            eventLoop.execute(onFailure)
        }
        let owner = flow.connectionID.map { SIPTransport.shardIndex(of: $0) } ?? index
        guard owner != index, owner < shards.count else {
            return transport.send(buffer, to: flow).whenFailure(failed)
        }
        let shard = shards[owner]
        shard.eventLoop.execute { [buffer] in shard.transport.send(buffer, to: flow).whenFailure(failed) }
    }

    /// Where RFC 3261 §18.2.2 sends a response, as a flow of ours.
    private func flow(for destination: ResponseDestination, like inbound: SIPFlow?) -> SIPFlow? {
        switch destination {
        case .sameConnection(let connectionID, let fallback):
            guard var flow = inbound else { return self.flow(to: fallback, like: nil) }
            flow.connectionID = ConnectionID(connectionID)
            return flow
        case .address(let peer):
            return self.flow(to: peer, like: inbound)
        }
    }

    func flow(to peer: SIPPeer, like inbound: SIPFlow?) -> SIPFlow? {
        guard let address = try? SocketAddress(ipAddress: peer.host, port: peer.port) else { return nil }
        let transportKind = SIPTransportKind(rawValue: peer.transport.rawValue) ?? .udp
        // The listener the peer reached (a phone behind NAT only lets that socket's packets
        // back in); the transport's first only for a peer that never reached us (a trunk) or
        // whose listener is gone since (a restart with other `--sip` options).
        let reached = peer.listener.map(Int.init).flatMap { index in
            transport.listeners.indices.contains(index) && transport.listeners[index].transport == transportKind
                ? index : nil
        }
        let listenerIndex =
            inbound?.listenerIndex ?? reached
            ?? transport.listeners.firstIndex { $0.transport == transportKind } ?? 0
        return SIPFlow(
            transport: transportKind,
            remoteAddress: address,
            listenerIndex: listenerIndex,
            connectionID: peer.connectionID.map(ConnectionID.init)
        )
    }

    // MARK: Requests

    /// Why the checks every request passes before its method is handled (``RequestGate``)
    /// refuse `request`; `nil` when it passes them.
    private func gateRefusal(of request: SIPRequest) -> RequestGate.Refusal? {
        RequestGate(capabilities: capabilities, localHosts: localHosts).refusal(of: request)
    }

    /// Whether `request` gets its 401 without a transaction, as a stateless UAS answers (RFC 3261
    /// §8.2.7): a REGISTER or SUBSCRIBE with no credentials at all that passes the gate. A
    /// retransmission gets a new 401 with a new nonce, which a phone answers like the first;
    /// Kamailio's `www_challenge` after `sl_send_reply` does the same. Never an INVITE: its
    /// final response must be retransmitted until the ACK.
    private func challengesWithoutTransaction(_ request: SIPRequest) -> Bool {
        (request.method == .subscribe || request.method == .register)
            && request.headers[.authorization] == nil && gateRefusal(of: request) == nil
    }

    private func handleRequest(_ request: SIPRequest, key: TransactionKey, flow: SIPFlow) {
        metrics.requests.increment(Self.metricMethod(request.method))
        if let refusal = gateRefusal(of: request) {
            if let counted = refusal.countedAs { countRefusal(request.method.rawValue, reason: counted) }
            return respond(
                to: request,
                key: key,
                status: refusal.status,
                reason: refusal.reason,
                headers: refusal.headers,
                includeCapabilities: refusal.includeCapabilities
            )
        }
        switch request.method {
        case .options:
            respond(to: request, key: key, status: 200, includeCapabilities: true)
        case .register:
            handleRegister(request, key: key, flow: flow)
        case .subscribe:
            handleSubscribe(request, key: key, flow: flow)
        case .invite:
            handleInvite(request, key: key, flow: flow)
        case .cancel:
            handleCancel(request, key: key)
        case _ where request.to?.tag != nil:
            // BYE, UPDATE, INFO, PRACK, … in a call's dialog (481 when it names none).
            handleInDialogRequest(request, key: key)
        default:
            // §8.2.1: a method we know but do not serve gets 405 with Allow.
            respond(to: request, key: key, status: 405, includeCapabilities: true)
        }
    }

    func respond(
        to request: SIPRequest,
        key: TransactionKey,
        status: Int,
        reason: String? = nil,
        headers: [SIPHeaders.Field] = [],
        includeCapabilities: Bool = false
    ) {
        let response = makeResponse(
            to: request,
            status: status,
            reason: reason,
            headers: headers,
            includeCapabilities: includeCapabilities
        )
        execute(transactions.sendResponse(response, for: key), flow: inboundFlows[key])
    }

    /// Our answer to `request`: a fresh To tag, `headers`, Allow and Supported when asked, Server.
    func makeResponse(
        to request: SIPRequest,
        status: Int,
        reason: String? = nil,
        headers: [SIPHeaders.Field] = [],
        includeCapabilities: Bool = false
    ) -> SIPResponse {
        var response = SIPResponse(replyingTo: request, statusCode: status, reasonPhrase: reason, toTag: Self.makeTag())
        for field in headers { response.headers.add(field.name, field.value) }
        if includeCapabilities { capabilities.describe(into: &response.headers) }
        response.headers.add(.server, configuration.serverName)
        return response
    }

    func countRefusal(_ method: String, reason: String) {
        metrics.refusals.increment(method: Self.metricMethod(SIPMethod(method)), reason: reason)
    }

    // MARK: Helpers

    func isLocal(_ uri: SIPURI) -> Bool {
        isLocal(host: uri.hostWithoutBrackets)
    }

    /// Whether `host` (without IPv6 brackets) names this server.
    func isLocal(host: String) -> Bool {
        localHosts.contains(host.lowercased())
    }

    /// The platform domain, "localhost", and every address the listeners answer on (all of the
    /// machine's addresses for a wildcard listener: snom phones send `222@<ip>`).
    static func localHosts(domain: String, listeners: [SIPTransport.BoundListener]) -> Set<String> {
        var hosts: Set<String> = [domain.lowercased(), "localhost"]
        for listener in listeners {
            guard let ip = listener.localAddress.ipAddress else { continue }
            if ip == "0.0.0.0" || ip == "::" {
                for device in (try? System.enumerateDevices()) ?? [] {
                    if let address = device.address?.ipAddress { hosts.insert(address.lowercased()) }
                }
            } else {
                hosts.insert(ip.lowercased())
            }
        }
        return hosts
    }

    /// A random tag of 64 bits (RFC 3261 §19.3 asks for at least 32).
    static func makeTag() -> String {
        String(UInt64.random(in: .min ... .max), radix: 16)
    }

    /// Unknown methods are counted under one label, so that garbage cannot grow the metric set.
    static func metricMethod(_ method: SIPMethod) -> String {
        SIPMethod.known.contains(method) ? method.rawValue : "other"
    }
}

extension SIPPeer {
    init(_ flow: SIPFlow) {
        let transport: SIPPeer.Transport
        switch flow.transport {
        case .udp: transport = .udp
        case .tcp: transport = .tcp
        case .tls: transport = .tls
        }
        self.init(
            transport: transport,
            host: flow.remoteHost,
            port: flow.remotePort,
            connectionID: flow.connectionID?.rawValue,
            listener: UInt16(exactly: flow.listenerIndex)
        )
    }
}
