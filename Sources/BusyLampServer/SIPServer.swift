import BusyLampCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import SIPAuth
import SIPTransactions
import SIPTransportNIO
import Synchronization

/// BusyLamp's SIP server: N shards (``SIPShard``), one per event loop, behind one interface.
///
/// ```
///            kernel (SO_REUSEPORT: by the sender's address)
///          ┌──────────────┼──────────────┐
///       shard 0        shard 1   …    shard N-1     each: socket, parser, transactions,
///    (line owner)         │              │           subscriptions, timers, NOTIFYs
///  registrations, calls   │              │
///       └── line changes (state and bindings) ──► every other shard's watchers
/// ```
/// Each shard owns what arrives on its socket; what must be seen whole (a line's
/// registrations and calls) is handed to the line owner (``ShardRouting``), which sends every
/// line change to the others. Outside the server, this is one thing: one query seam
/// (``liveState(accountID:)``), one stream of line changes (``lineStateFeed``), one directory.
/// A cluster node (several processes on one database) is the same design one level up.
public final class SIPServer: Sendable {
    public struct Stores: Sendable {
        public var directory: DirectoryStore
        public var registrations: RegistrationStore
        public var subscriptions: SubscriptionStore
        /// What ends each call in progress after a crash (``CallTeardown``).
        public var calls: CallTeardownStore

        public init(
            directory: DirectoryStore,
            registrations: RegistrationStore,
            subscriptions: SubscriptionStore,
            calls: CallTeardownStore
        ) {
            self.directory = directory
            self.registrations = registrations
            self.subscriptions = subscriptions
            self.calls = calls
        }
    }

    public struct Configuration: Sendable {
        public var listenAddresses: [SIPListenAddress] = SIPListenAddress.defaults
        public var transport = SIPTransport.Configuration()
        public var digestPolicy: DigestPolicy = .default
        /// How often expired bindings are removed from the store.
        public var bindingSweepInterval: TimeAmount = .seconds(30)
        /// The `Server` header of our responses (and `User-Agent` of our requests).
        public var serverName = "BusyLamp"
        /// RFC 3261 T1, T2, T4: every transaction timer derives from them.
        public var timers: SIPTimers = .rfc3261
        /// Transactions kept at most, shared out among the shards (past it, new requests get 503
        /// with Retry-After).
        public var maximumTransactions = TransactionLayer.defaultMaximumTransactionCount
        /// How the notifier treats failing watchers and restarts.
        public var notifier = NotifierStateMachine.Settings()
        /// How often ended subscriptions are looked for: the granularity of expiry.
        public var subscriptionSweepInterval: TimeAmount = .seconds(1)
        /// The longest a subscription's CSeq and version changes wait before they are written
        /// together (the NOTIFY is never held back by the store).
        public var subscriptionWriteDelay: TimeAmount = .milliseconds(200)
        /// The longest a call's changed teardown (``CallTeardown``) waits before it is written
        /// with the others changed meanwhile.
        public var callWriteDelay: TimeAmount = .milliseconds(50)
        /// At most this fraction of a granted subscription expiry is taken off at random, so
        /// that phones subscribed together do not all refresh together (PHONES.md).
        public var expiryJitterFraction: Double = 0.05
        /// No answer in this time: the callee's phones get CANCEL and the caller 480.
        public var ringTimeout: Duration = .seconds(60)
        /// The resolution of every SIP and call timer (one tick of the timing wheel).
        public var timerTick: Duration = .milliseconds(4)
        /// When a shard refuses new work because it is past capacity.
        public var overload = OverloadGuard.Settings()
        /// When a source's failed authentications lock it out (each shard counts its own).
        public var failedAuthentications = FailedAuthenticationGuard.Settings()
        /// Live subscriptions per watched line and per source address, for the server (each
        /// shard keeps its share: the kernel spreads a source's ports over the shards).
        public var subscriptionLimits = SubscriptionAdmission.Limits()
        /// NOTIFYs per second after a restart, for the server: the restored subscriptions' first
        /// NOTIFYs go out at this pace, not in one burst. Each shard's share is in proportion to
        /// the subscriptions it restores, so a shard holding most of them is not held to 1/N.
        public var restartNotifiesPerSecond = 25_000
        /// Requests per source address, for the server (each shard keeps its share).
        public var sourceRates = SourceRateLimiter<SourceIPAddress>.Settings()
        public init() {}
    }

    let shards: [SIPShard]
    private let stores: Stores
    private let configuration: Configuration
    private let logger: Logger
    /// One thread for every store call of every shard: writes for one AOR never race.
    private let storeThread: NIOThreadPool
    /// Every line-state change, for the admin API's live view and anyone else who listens.
    public let lineStateFeed: LineStateFeed

    /// `eventLoops`: one per shard (`sip_threads` of them; one per core by default).
    public init(
        eventLoops: [EventLoop],
        directory: Directory,
        stores: Stores,
        configuration: Configuration,
        logger: Logger
    ) {
        precondition(!eventLoops.isEmpty, "a server needs at least one event loop")
        self.stores = stores
        self.configuration = configuration
        self.logger = logger
        let storeThread = NIOThreadPool(numberOfThreads: 1)
        let lineStateFeed = LineStateFeed()
        self.storeThread = storeThread
        self.lineStateFeed = lineStateFeed
        var shardConfiguration = configuration
        shardConfiguration.maximumTransactions = max(1, configuration.maximumTransactions / eventLoops.count)
        func share(_ limit: Int) -> Int { (limit + eventLoops.count - 1) / eventLoops.count }
        shardConfiguration.subscriptionLimits.watchersPerLine = share(configuration.subscriptionLimits.watchersPerLine)
        shardConfiguration.subscriptionLimits.subscriptionsPerSource = share(
            configuration.subscriptionLimits.subscriptionsPerSource
        )
        shardConfiguration.sourceRates.requestsPerSecond = share(configuration.sourceRates.requestsPerSecond)
        shardConfiguration.sourceRates.burst = share(configuration.sourceRates.burst)
        shardConfiguration.transport.sharesPorts = eventLoops.count > 1
        // One secret: a nonce one shard issued is good on another.
        let nonceSecret = NonceManager.makeSecret()
        let census = SubscriptionCensus(shardCount: eventLoops.count)
        let shards = eventLoops.enumerated().map { index, eventLoop in
            SIPShard(
                index: index,
                shardCount: eventLoops.count,
                eventLoop: eventLoop,
                directory: directory,
                stores: stores,
                storeThread: storeThread,
                nonceSecret: nonceSecret,
                lineStateFeed: lineStateFeed,
                subscriptionCensus: census,
                configuration: shardConfiguration,
                logger: logger
            )
        }
        self.shards = shards
        for shard in shards { shard.shards = shards }
    }

    /// The shard that owns every line's state (registrations, calls).
    var lineOwner: SIPShard { shards[ShardRouting.lineOwner] }

    /// Binds every shard's listeners (the first shard picks the ports when they are 0; the
    /// others bind the same), restores the stored bindings and subscriptions (each watcher gets
    /// a NOTIFY with the current state), ends the calls the last process left in progress
    /// (``CallTeardown``) and starts serving. Returns the bound listeners.
    public func start() async throws -> [SIPTransport.BoundListener] {
        storeThread.start()
        let stores = self.stores
        let (bindings, subscriptions, interruptedCalls) = try await storeThread.runIfActive(
            eventLoop: lineOwner.eventLoop
        ) {
            (
                try stores.registrations.allBindings(), try stores.subscriptions.allSubscriptions(),
                try stores.calls.allCallTeardowns()
            )
        }.get()
        let listeners = try await lineOwner.bind(configuration.listenAddresses)
        let sameAddresses = zip(configuration.listenAddresses, listeners).map { requested, bound in
            SIPListenAddress(transport: requested.transport, host: requested.host, port: bound.localAddress.port ?? 0)
        }
        for shard in shards.dropFirst() { _ = try await shard.bind(sameAddresses) }
        for shard in shards { try await shard.begin(listeners: listeners) }
        await lineOwner.restore(bindings: bindings)
        await lineOwner.endInterruptedCalls(interruptedCalls)
        let routing = ShardRouting(shardCount: shards.count)
        let byShard = Dictionary(grouping: subscriptions) { routing.shard(ofDialogTag: $0.dialog.localTag) }
        for shard in shards {
            let restored = byShard[shard.index] ?? []
            let rateShare = Double(configuration.restartNotifiesPerSecond) * Double(restored.count)
            await shard.restore(
                subscriptions: restored,
                notifiesPerSecond: max(1, rateShare / Double(max(1, subscriptions.count)))
            )
        }
        logger.info(
            "SIP listeners bound",
            metadata: [
                LogKey.listeners: "\(listeners.map(\.localAddress))",
                LogKey.subscriptionsRestored: "\(subscriptions.count)",
                LogKey.shards: "\(shards.count)",
            ]
        )
        return listeners
    }

    /// Stops listening, writes what is pending and waits for the store thread to finish.
    /// Stops gracefully (issue 9): new requests are refused with `503`, the transactions
    /// already begun get their answers once their store writes are done, pending subscription
    /// writes are flushed, then the sockets close. What is in the store is what the next start
    /// restores.
    public func stop() async {
        for shard in shards { await shard.beginDraining() }
        // The store thread runs its tasks in order: once an empty one has run, every write
        // queued before it has, and its completion waits on its shard's loop. A completion may
        // queue one more write (a new subscription's first NOTIFY waits for its record): a few
        // rounds, bounded, cover that.
        for _ in 0..<Self.drainRounds {
            _ = try? await storeThread.runIfActive(eventLoop: lineOwner.eventLoop) {}.get()
            for shard in shards { await shard.settle() }
        }
        for shard in shards { await shard.stop() }
        try? await storeThread.shutdownGracefully()
    }

    private static let drainRounds = 3

    /// The directory changed (the admin API wrote the store): every shard judges by it.
    public func directoryChanged(_ newDirectory: Directory) {
        for shard in shards { shard.directoryChanged(newDirectory) }
    }

    /// Applies a changed directory and returns once every shard judges live traffic by it.
    public func applyDirectory(_ newDirectory: Directory) async {
        for shard in shards { await shard.applyDirectory(newDirectory) }
    }

    // MARK: The query seam

    /// The live state of one account: lines, states and registrations from the line owner;
    /// subscriptions and refusals from every shard. `nil` when there is no such account.
    public func liveState(accountID: String) async -> AccountLiveState? {
        guard var state = await lineOwner.liveState(accountID: accountID) else { return nil }
        for shard in shards.dropFirst() {
            guard let part = await shard.liveState(accountID: accountID) else { continue }
            state.subscriptions += part.subscriptions
            state.refusals += part.refusals
        }
        if shards.count > 1 { state.refusals.sort { $0.time > $1.time } }
        return state
    }

    /// How many SIP listeners are bound and serving (`/healthz`).
    public func boundListenerCount() async -> Int {
        await lineOwner.boundListenerCount()
    }

    /// The demo's simulated calls (``SIPShard/simulate(_:onLine:simulatedUserAgent:)``).
    public func simulate(_ dialog: LineDialog, onLine number: String, simulatedUserAgent: String? = nil) async -> Bool {
        await lineOwner.simulate(dialog, onLine: number, simulatedUserAgent: simulatedUserAgent)
    }
}

/// Active subscriptions per shard, so that the gauge reports the server's total.
final class SubscriptionCensus: Sendable {
    private let counts: Mutex<[[EventPackage: Int]]>

    init(shardCount: Int) {
        counts = Mutex(Array(repeating: [:], count: shardCount))
    }

    /// Records shard `shard`'s counts; returns the total over every shard.
    func report(_ active: [EventPackage: Int], shard: Int) -> [EventPackage: Int] {
        counts.withLock { counts in
            counts[shard] = active
            return counts.reduce(into: [:]) { total, part in total.merge(part, uniquingKeysWith: +) }
        }
    }
}
