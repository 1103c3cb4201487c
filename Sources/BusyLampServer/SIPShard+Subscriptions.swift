import BusyLampCore
import Foundation
import Logging
import Metrics
import NIOCore
import SIPCore
import SIPTransactions
import SIPTransportNIO

/// SUBSCRIBE (RFC 6665 §4.2.1) and the NOTIFYs of `NotifierStateMachine`.
///
/// ```
/// SUBSCRIBE ─► digest ─► in a dialog? ─yes─► known? ─no─► 481
///                  │                            └─yes─► admitRefresh ─► persist ─► 200 ─► notifier.refresh
///                  └─no──► admit (event, Accept, target, account, group, presence, network, expiry)
///                              ├─ refused ─► 4xx with a reason phrase that says why
///                              └─ accepted ─► persist ─► 200 (Expires, Contact) ─► notifier.add ─► NOTIFY
/// ```
/// Persist, then answer: a 200 promises that the subscription survives a crash. The notifier's
/// later CSeq and version moves are written every `notifiesBetweenWrites` NOTIFYs, in batches
/// (`subscriptionWriteDelay`); a restore jumps both forward by
/// `NotifierStateMachine.Settings.restartSequenceMargin`, far more, so a crash never makes them
/// go backwards.
extension SIPShard {
    func handleSubscribe(_ request: SIPRequest, key: TransactionKey, flow: SIPFlow) {
        guard let watcher = authenticatedLine(request, key: key) else { return }
        let source = SIPPeer(flow)
        let admission = SubscriptionAdmission(directory: directory)
        let jitter = expiryJitter
        let now = Date()

        if let localTag = request.to?.tag, let callID = request.callID {
            // RFC 6665 §4.2.1.2: a refresh names its subscription by the dialog.
            let id = Subscription.id(callID: callID, localTag: localTag)
            guard var subscription = notifier.subscription(id: id) else {
                countRefusal("SUBSCRIBE", reason: "unknown_subscription")
                recordRefusal(
                    request,
                    from: source,
                    line: watcher,
                    status: 481,
                    reason: "Subscription Does Not Exist",
                    code: "unknown_subscription"
                )
                return respond(to: request, key: key, status: 481, reason: "Subscription Does Not Exist")
            }
            guard subscription.watcherNumber == watcher.number else {
                countRefusal("SUBSCRIBE", reason: "foreign_subscription")
                return respond(to: request, key: key, status: 403, reason: "Not Your Subscription")
            }
            let decision = admission.admitRefresh(
                request,
                subscription: subscription,
                watcher: watcher,
                source: source,
                registeredSourceHosts: { [self] in registeredSourceHosts(number: $0) },
                jitter: jitter
            )
            switch decision {
            case .failure(let refusal):
                refuse(request, key: key, refusal, watcher: watcher, source: source)
            case .success(let accepted):
                subscription.expiresAt = now.addingTimeInterval(TimeInterval(accepted.grantedExpires))
                let response = acceptance(of: request, expires: accepted.grantedExpires, flow: flow)
                if accepted.grantedExpires == 0 {
                    // RFC 6665 §4.2.1.4: unsubscribing is a refresh to zero; the final NOTIFY follows.
                    execute(transactions.sendResponse(response, for: key), flow: flow)
                    execute(notifier.unsubscribe(id: id, now: now))
                    return
                }
                let expiresAt = subscription.expiresAt
                persistThenAnswer(subscription, with: response, to: request, key: key, flow: flow) { [self] in
                    execute(notifier.refresh(id: id, expiresAt: expiresAt, now: Date()) ?? [])
                }
            }
            return
        }

        let decision = admission.admit(
            request,
            watcher: watcher,
            source: source,
            isLocalHost: { [self] in isLocal(host: $0) },
            registeredSourceHosts: { [self] in registeredSourceHosts(number: $0) },
            jitter: jitter
        )
        let accepted: SubscriptionAdmission.Accepted
        switch decision {
        case .failure(let refusal):
            return refuse(request, key: key, refusal, watcher: watcher, source: source)
        case .success(let value):
            accepted = value
        }
        if accepted.grantedExpires > 0,
            let refusal = SubscriptionAdmission.capacityRefusal(
                watchersOfTarget: notifier.watcherCount(ofLine: accepted.target.number),
                fromSource: notifier.subscriptionCount(fromHost: source.host),
                limits: configuration.subscriptionLimits
            )
        {
            return refuse(request, key: key, refusal, watcher: watcher, source: source)
        }
        let response = acceptance(of: request, expires: accepted.grantedExpires, flow: flow)
        guard let dialog = Dialog(uasRequest: request, response: response, receivedOverTLS: flow.transport == .tls)
        else {
            countRefusal("SUBSCRIBE", reason: "no_contact")
            return respond(to: request, key: key, status: 400, reason: "Missing Or Invalid Contact")
        }
        let subscription = Subscription(
            event: accepted.event,
            accountID: watcher.accountID,
            watcherNumber: watcher.number,
            targetNumber: accepted.target.number,
            entity: accepted.entity,
            dialog: dialog,
            source: source,
            expiresAt: now.addingTimeInterval(TimeInterval(accepted.grantedExpires)),
            userAgent: request.headers[.userAgent],
            createdAt: now
        )
        metrics.subscriptionsAccepted.increment(accepted.event.rawValue)
        guard accepted.grantedExpires > 0 else {
            // RFC 6665 §4.4.3: `Expires: 0` on a new subscription fetches the state once; there
            // is nothing to keep.
            execute(transactions.sendResponse(response, for: key), flow: flow)
            execute(notifier.add(subscription, now: now))
            return
        }
        persistThenAnswer(subscription, with: response, to: request, key: key, flow: flow) { [self] in
            logger.debug(
                "Subscribed",
                metadata: [
                    LogKey.subscriptionID: "\(subscription.id)", LogKey.line: "\(subscription.targetNumber)",
                    LogKey.subscriptionWatcher: "\(watcher.number)",
                    LogKey.subscriptionEvent: "\(accepted.event.rawValue)",
                ]
            )
            execute(notifier.add(subscription, now: Date()))
        }
    }

    /// Persist, then answer `response`, then `then`; a failed write is answered 500 instead.
    private func persistThenAnswer(
        _ subscription: Subscription,
        with response: SIPResponse,
        to request: SIPRequest,
        key: TransactionKey,
        flow: SIPFlow,
        then: @escaping @Sendable () -> Void
    ) {
        // This write carries the newest CSeq and version too: a batched one would only repeat it.
        pendingSubscriptionWrites[subscription.id] = nil
        persist(subscription) { [self] result in
            switch result {
            case .success:
                execute(transactions.sendResponse(response, for: key), flow: flow)
                then()
            case .failure(let error):
                logger.error(
                    "Subscription store failed",
                    metadata: [LogKey.subscriptionID: "\(subscription.id)", LogKey.error: "\(error)"]
                )
                respond(to: request, key: key, status: 500, reason: "Subscription Not Stored")
            }
        }
    }

    /// Writes `subscription` durably, then calls `completion` on the event loop.
    ///
    /// Group commit: the subscriptions accepted while a write is on disk go together in the
    /// next transaction, so a burst of SUBSCRIBEs costs one fsync per batch, not one each, and
    /// every 200 still follows its own subscription's durable write.
    func persist(_ subscription: Subscription, completion: @escaping @Sendable (Result<Void, Error>) -> Void) {
        subscriptionsAwaitingWrite.append((subscription, completion))
        writeAwaitingSubscriptionsIfIdle()
    }

    private func writeAwaitingSubscriptionsIfIdle() {
        guard !subscriptionWriteInFlight, !subscriptionsAwaitingWrite.isEmpty else { return }
        let batch = subscriptionsAwaitingWrite
        subscriptionsAwaitingWrite.removeAll(keepingCapacity: true)
        subscriptionWriteInFlight = true
        let subscriptions = batch.map(\.subscription)
        let store = subscriptionStore
        storeThread.runIfActive(eventLoop: eventLoop) { try store.upsert(subscriptions) }
            .whenComplete { [self] result in
                subscriptionWriteInFlight = false
                for item in batch { item.completion(result) }
                writeAwaitingSubscriptionsIfIdle()
            }
    }

    /// The refusal as a response; the reason is counted for the operator's "why is my lamp
    /// orange" view.
    private func refuse(
        _ request: SIPRequest,
        key: TransactionKey,
        _ refusal: SubscriptionAdmission.Refusal,
        watcher: Line,
        source: SIPPeer
    ) {
        countRefusal("SUBSCRIBE", reason: refusal.code.snakeCase)
        recordRefusal(
            request,
            from: source,
            line: watcher,
            status: refusal.statusCode,
            reason: refusal.reasonPhrase,
            code: refusal.code.snakeCase
        )
        logger.debug(
            "Subscription refused",
            metadata: [
                LogKey.callID: "\(request.callID ?? "-")", LogKey.subscriptionReason: "\(refusal.reasonPhrase)",
                LogKey.target: "\(request.uri)",
            ]
        )
        respond(
            to: request,
            key: key,
            status: refusal.statusCode,
            reason: refusal.reasonPhrase,
            headers: refusal.headers,
            includeCapabilities: refusal.statusCode == 489
        )
    }

    /// The 200 of an accepted SUBSCRIBE: the granted Expires and our Contact, the target of the
    /// phone's refreshes (RFC 6665 §4.2.1.1). A refresh keeps its dialog's To tag.
    private func acceptance(of request: SIPRequest, expires: Int, flow: SIPFlow) -> SIPResponse {
        // The dialog's tag names this shard: refreshes come back here (``ShardRouting``).
        var response = SIPResponse(
            replyingTo: request,
            statusCode: 200,
            toTag: ShardRouting.mark(Self.makeTag(), shard: index)
        )
        response.headers.add(.expires, String(expires))
        response.headers.add(.contact, "<\(localURI(for: flow))>")
        response.headers.add(.server, configuration.serverName)
        return response
    }

    /// Takes a few seconds off a granted expiry at random (at most `expiryJitterFraction`).
    private var expiryJitter: @Sendable (Int) -> Int {
        let fraction = configuration.expiryJitterFraction
        return { granted in
            let most = Int(Double(granted) * fraction)
            return most > 0 ? Int.random(in: 0...most) : 0
        }
    }

    // MARK: Notifier actions

    /// NOTIFYs started per turn of the event loop. A change on a line watched by thousands
    /// is sent in chunks, with the loop free between them to read the watchers' 200s: sent in
    /// one go, 10,000 NOTIFYs kept the loop from reading long enough for the kernel to drop a
    /// third of the answers at the UDP socket, each then costing a retransmission
    /// (BENCHMARKS.md, "Calls").
    static let notifiesPerLoopTurn = 256
    static let pauseBetweenNotifyChunks: TimeAmount = .milliseconds(1)

    /// `lineChangedAt`: when the line change these actions report happened, for the
    /// change-to-NOTIFY histogram.
    func execute(_ actions: [NotifierStateMachine.Action], lineChangedAt: NIODeadline? = nil) {
        execute(actions[...], lineChangedAt: lineChangedAt)
    }

    private func execute(_ actions: ArraySlice<NotifierStateMachine.Action>, lineChangedAt: NIODeadline?) {
        var notifiesStarted = 0
        for (index, action) in zip(actions.indices, actions) {
            if case .sendNotify = action {
                guard notifiesStarted < Self.notifiesPerLoopTurn else {
                    let rest = actions[index...]
                    // Not `execute`: NIO runs tasks queued by tasks in the same turn, before any
                    // read. A deadline in the future lets the loop poll its sockets first.
                    eventLoop.scheduleTask(in: Self.pauseBetweenNotifyChunks) {
                        self.execute(rest, lineChangedAt: lineChangedAt)
                    }
                    return
                }
                notifiesStarted += 1
            }
            switch action {
            case .sendNotify(let notify, let subscriptionID, let destination):
                if sendNotify(notify, subscriptionID: subscriptionID, to: destination), let lineChangedAt {
                    metrics.lineChangeToNotify.recordNanoseconds((NIODeadline.now() - lineChangedAt).nanoseconds)
                }
            case .persist(let subscription):
                pendingSubscriptionWrites[subscription.id] = subscription
                scheduleSubscriptionWrite()
            case .remove(let subscription, let reason):
                pendingSubscriptionWrites[subscription.id] = nil
                metrics.subscriptionsEnded.increment(reason.rawValue)
                logger.debug(
                    "Subscription ended",
                    metadata: [
                        LogKey.subscriptionID: "\(subscription.id)", LogKey.subscriptionReason: "\(reason.rawValue)",
                    ]
                )
                let store = subscriptionStore
                storeThread.runIfActive(eventLoop: eventLoop) { try store.removeSubscription(id: subscription.id) }
                    .whenFailure { [logger] error in
                        logger.error(
                            "Subscription removal failed",
                            metadata: [LogKey.subscriptionID: "\(subscription.id)", LogKey.error: "\(error)"]
                        )
                    }
            case .oversizeNotify(let subscriptionID, let bytes):
                // RFC 3261 §18.1.1: a UDP request this large may be fragmented and lost.
                metrics.notifiesOversizeUDP.increment()
                logger.warning(
                    "NOTIFY larger than is safe over UDP",
                    metadata: [LogKey.subscriptionID: "\(subscriptionID)", LogKey.bytes: "\(bytes)"]
                )
            }
        }
    }

    /// Adds what only the driver knows (Via with a fresh branch, our Contact, User-Agent) and
    /// starts the NOTIFY's client transaction.
    /// Returns whether the NOTIFY left.
    @discardableResult
    private func sendNotify(_ notify: SIPRequest, subscriptionID: String, to destination: SIPPeer) -> Bool {
        guard let flow = flow(to: destination, like: nil) else {
            logger.warning(
                "NOTIFY not sent: no route to the watcher",
                metadata: [LogKey.subscriptionID: "\(subscriptionID)"]
            )
            metrics.notifiesFailed.increment("no_route")
            execute(notifier.notifyFailed(subscriptionID: subscriptionID, now: Date()))
            return false
        }
        let branch = ShardRouting.mark(Via.makeBranch(), shard: index)
        let actions = startRequest(notify, branch: branch, to: destination, over: flow)
        for case .transaction(let key, _, _) in actions { notifyTransactions[key] = subscriptionID }
        for case .refused(_, let reason) in actions {
            // The transaction table is full (or the branch collides): the NOTIFY is not sent.
            metrics.notifiesRefused.increment("\(reason)")
            logger.warning(
                "NOTIFY not sent",
                metadata: [LogKey.subscriptionID: "\(subscriptionID)", LogKey.reason: "\(reason)"]
            )
            execute(notifier.notifyFailed(subscriptionID: subscriptionID, now: Date()))
            return false
        }
        metrics.notifiesSent.increment()
        execute(actions, flow: nil)
        return true
    }

    // MARK: Persistence and housekeeping

    private func scheduleSubscriptionWrite() {
        guard !subscriptionWriteScheduled else { return }
        subscriptionWriteScheduled = true
        eventLoop.scheduleTask(in: configuration.subscriptionWriteDelay) { [self] in
            subscriptionWriteScheduled = false
            if !isStopped { writePendingSubscriptions() }
        }
    }

    /// Writes the batched subscription changes in one transaction.
    /// Returns when the write is done (or failed, which is logged).
    @discardableResult
    func writePendingSubscriptions() -> EventLoopFuture<Void> {
        guard !pendingSubscriptionWrites.isEmpty else { return eventLoop.makeSucceededVoidFuture() }
        let batch = Array(pendingSubscriptionWrites.values)
        pendingSubscriptionWrites.removeAll(keepingCapacity: true)
        let store = subscriptionStore
        return storeThread.runIfActive(eventLoop: eventLoop) { try store.upsert(batch) }
            .flatMapErrorWithEventLoop { [logger] error, eventLoop in
                logger.error(
                    "Subscription batch write failed",
                    metadata: [LogKey.subscriptionCount: "\(batch.count)", LogKey.error: "\(error)"]
                )
                return eventLoop.makeSucceededVoidFuture()
            }
    }

    /// Ends expired subscriptions, and marks lines whose last binding just expired as unregistered.
    func sweepEndedSubscriptions() {
        let now = Date()
        expireLiveBindings(now: now)
        execute(notifier.expire(now: now))
        reportGauges()
        releaseUnusedCapacity()
    }

    /// A burst (a SUBSCRIBE storm, a restart's re-NOTIFYs) grows the per-transaction tables;
    /// once it has passed, their empty buckets go back to the allocator instead of staying
    /// resident for the life of the process.
    private func releaseUnusedCapacity() {
        transactions.releaseUnusedCapacity()
        timers.releaseUnusedCapacity()
        inboundFlows.releaseUnusedCapacity()
        notifyTransactions.releaseUnusedCapacity()
        callTransactions.releaseUnusedCapacity()
        pendingSubscriptionWrites.releaseUnusedCapacity()
        notifier.releaseUnusedCapacity()
    }

    /// The gauges, once a second with the sweep (handles made once, in ``ServerMetrics``).
    private func reportGauges() {
        let active = notifier.liveCounts
        let total = subscriptionCensus.report(active, shard: index)
        shardSubscriptions.record(active.values.reduce(0, +))
        shardTransactions.record(transactions.count)
        for (event, gauge) in metrics.activeSubscriptions { gauge.record(total[event] ?? 0) }
        if ownsLines {
            metrics.registeredLines.record(liveBindings.count)
            metrics.registeredBindings.record(liveBindings.values.reduce(0) { $0 + $1.count })
            metrics.activeCalls.record(b2bua.count)
        }
        let coalesced = notifier.coalescedNotifyCount
        if coalesced > metrics.reportedCoalesced {
            metrics.notifiesCoalesced.increment(by: coalesced - metrics.reportedCoalesced)
            metrics.reportedCoalesced = coalesced
        }
    }

    // MARK: After a restart: registered lines first (so the first NOTIFYs say open or closed
    // right), then every stored subscription gets a NOTIFY with the current state.

    /// The stored subscriptions of this shard (where their refreshes will be routed), after
    /// the line owner restored the bindings: every watcher gets a NOTIFY with the current state,
    /// `notifiesPerSecond` of them at most (this shard's share of `restartNotifiesPerSecond`).
    func restore(subscriptions: [Subscription], notifiesPerSecond: Double) async {
        try? await eventLoop.submit { [self] in
            restartNotifiesPerSecond = notifiesPerSecond
            execute(notifier.restore(subscriptions, now: Date()))
        }.get()
    }

    /// The line owner restores every stored binding (each line change reaches the others).
    func restore(bindings: [Binding]) async {
        try? await eventLoop.submit { [self] in
            let now = Date()
            for (aor, lineBindings) in Dictionary(grouping: bindings, by: \.aor) {
                bindingsChanged(aor: aor, to: lineBindings, now: now)
            }
        }.get()
    }

    // MARK: Our addresses

    /// The address the flow's listener answers on; the platform domain for a wildcard listener.
    func localHostPort(for flow: SIPFlow) -> (host: String, port: Int) {
        guard listenerHostPorts.indices.contains(flow.listenerIndex) else { return (directory.platform.domain, 5060) }
        return listenerHostPorts[flow.listenerIndex]
    }

    /// Every listener's host and port as our Via and Contact write them, worked out once (at
    /// start and when the domain changes) rather than per message: a socket address's text and
    /// the IPv6 test cost a few percent of a SUBSCRIBE (issue 10's profile).
    static func hostPorts(of listeners: [SIPTransport.BoundListener], domain: String) -> [(host: String, port: Int)] {
        listeners.map { listener in
            let port = listener.localAddress.port ?? 5060
            guard let ip = listener.localAddress.ipAddress, ip != "0.0.0.0", ip != "::" else { return (domain, port) }
            return (ip.contains(":") ? "[\(ip)]" : ip, port)
        }
    }

    /// Our Contact URI for requests and responses on `flow`.
    func localURI(for flow: SIPFlow) -> String {
        let (host, port) = localHostPort(for: flow)
        let transportParameter = flow.transport == .udp ? "" : ";transport=\(flow.transport.rawValue)"
        return "sip:busylamp@\(host):\(port)\(transportParameter)"
    }
}
