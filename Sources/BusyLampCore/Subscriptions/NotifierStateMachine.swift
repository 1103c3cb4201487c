import Foundation
import SIPCore
import SIPTransactions

/// RFC 6665 §4.2.2 termination reasons of `Subscription-State: terminated;reason=...`.
public enum TerminationReason: String, Sendable, Hashable {
    case deactivated, probation, rejected, timeout, giveup, noresource, invariant
}

/// The notifier (RFC 6665 §4.2.2): every live subscription, the state of every watched line,
/// and which NOTIFY goes where next.
///
/// It reads no clock and touches no socket: the server tells it what happened (`add`,
/// `lineChanged`, `notifyAnswered`, `expire(now:)`, …) and executes the ``Action``s it answers,
/// in order. It promises:
/// - every NOTIFY carries the whole current state (`state="full"`), a body `version` one above
///   the previous NOTIFY's and a CSeq one above; both are persisted (`.persist`, before the
///   `.sendNotify`) at least every `notifiesBetweenWrites` NOTIFYs, and a `restore` jumps them
///   `restartSequenceMargin` (more than that) above the stored ones, so they never go back;
/// - at most one NOTIFY per subscription is in flight; changes meanwhile are coalesced into one
///   NOTIFY built from the newest state when the in-flight one is answered, so nothing stale is
///   ever sent after something newer;
/// - a subscription that ends is `.remove`d at the moment it ends (so a crash cannot bring it
///   back), and its final NOTIFY, if it gets one, still waits for the NOTIFY in flight.
///
/// Each subscription moves through these states:
/// ```
///          add / restore                      change, refresh (pending = true)
///   ──────────────────────► notifying ◄───────────────────────────────────┐
///                            │      ▲  ▲                                  │
///   2xx or timeout < N,      │      │  └── 2xx or timeout < N, pending ───┘
///   nothing pending          ▼      │
///                           quiet ──┘ change, refresh (NOTIFY now)
///
///   quiet ─── expire, Expires: 0, rules changed ──► ending (final NOTIFY in flight) ──► gone
///   notifying ─── same ──► ending (final waits) ─── in-flight 2xx ──► ending (final in flight)
///                                 └─── in-flight error or timeout ──► gone (no final NOTIFY)
///   notifying ─── 481, error response, N-th timeout in a row ──► gone (no NOTIFY)
/// ```
/// (N = `maximumConsecutiveFailures`.) `.remove` is emitted on the arrow that leaves
/// `quiet`/`notifying`, with the final NOTIFY if it can go at once; `ending` only keeps one
/// NOTIFY in flight and swallows the outcome.
///
/// How each end is reported (`.remove(_, reason:)`; `Subscription-State` of the final NOTIFY):
/// | event | final NOTIFY | reason |
/// |---|---|---|
/// | expiry, `Expires: 0`, a fetch (`add` already expired) | `terminated;reason=timeout`, current state | timeout |
/// | presence off, other group, other account | `terminated;reason=rejected`, no body (the watcher may no longer see it) | rejected |
/// | watcher or target line deleted | `terminated;reason=noresource`, no body | noresource |
/// | NOTIFY answered 481 | none | deactivated (the phone dropped it; it may subscribe afresh) |
/// | NOTIFY answered with another error (≥ 300, not 408) | none | rejected (the phone refused our NOTIFY) |
/// | `maximumConsecutiveFailures` timeouts or transport errors (or 408) in a row | none | timeout |
/// | restored after its expiry | none (the phone's own timer has run out too) | timeout |
public struct NotifierStateMachine: Sendable {
    public struct Settings: Sendable, Hashable {
        /// NOTIFY timeouts (or transport errors) in a row that end a subscription: some Cisco
        /// SPAs drop NOTIFY responses now and then (opensips#380).
        public var maximumConsecutiveFailures: Int = 3
        /// How far NOTIFY CSeq numbers and body versions jump on a restore, above the last
        /// persisted values, so that they never go backwards even if the last few NOTIFYs before
        /// a crash were not yet written.
        public var restartSequenceMargin: UInt32 = 10_000
        /// NOTIFYs a subscription sends between two writes of its CSeq and version. The store
        /// is then at most this many behind what was sent, and a restore jumps
        /// `restartSequenceMargin` (far more) above what was stored, so the numbers still
        /// never go backwards; writing every NOTIFY's numbers doubled the store writes of a
        /// new subscription (issue 10). Must be below `restartSequenceMargin`; 1 writes each.
        public var notifiesBetweenWrites: UInt32 = 1_000
        /// RFC 3261 §18.1.1: a UDP request larger than this is counted and logged.
        public var maximumUDPMessageSize: Int = 1300
        public init() {}
    }

    public enum Action: Sendable, Hashable {
        /// Send `notify` in a new client transaction to `destination`; report its outcome with
        /// `notifyAnswered` or `notifyFailed`. The request has no Via and no Contact: the
        /// driver adds both (and its Server header).
        case sendNotify(SIPRequest, subscriptionID: String, to: SIPPeer)
        /// Write the subscription (its CSeq, version or expiry moved). May be batched.
        case persist(Subscription)
        /// The subscription is over: remove it from the store.
        case remove(Subscription, reason: TerminationReason)
        /// A NOTIFY to a UDP destination larger than `maximumUDPMessageSize` (PHONES.md,
        /// freeswitch#1720): count and log it; it is sent anyway.
        case oversizeNotify(subscriptionID: String, bytes: Int)
    }

    /// What the driver adds to each NOTIFY (Via with its branch, Contact, Server), counted in
    /// the size checked against `maximumUDPMessageSize`. RFC 3261 §18.1.1 itself keeps a
    /// 200-byte margin below the path MTU for the same reason.
    public static let driverHeaderAllowance = 200

    public let settings: Settings
    /// The directory the rules and bodies are read from (the idle dialog id is the target's
    /// extension); replaced by `directoryChanged`.
    public private(set) var directory: Directory

    /// The live subscriptions.
    private var watches = SlotTable<String, Watch>()
    /// Subscriptions that have ended (and been `.remove`d) whose final NOTIFY is owed or in
    /// flight, or that wait for the outcome of a NOTIFY in flight.
    private var endings: [String: Ending] = [:]
    /// Live subscription ids per watched line number, in the order they were added.
    private var watchIDsByTarget: [String: [String]] = [:]
    /// Only lines whose state differs from idle and unregistered are kept.
    private var lineStates: [String: LineState] = [:]
    /// State changes folded into a NOTIFY already owed instead of a NOTIFY of their own, since
    /// the start (the driver turns it into a metric).
    public private(set) var coalescedNotifyCount = 0
    /// Restored subscriptions in the order they wait for their first NOTIFY after a restart
    /// (from `restartQueueHead` on); an entry notified meanwhile is passed over.
    private var restartQueue: [String] = []
    private var restartQueueHead = 0

    /// One subscription and what its notifications need.
    private struct Watch: Sendable {
        var subscription: Subscription
        var phase: Phase = .quiet
        var consecutiveFailures = 0
        /// The live dialogs the last NOTIFY listed: those gone since are listed once as
        /// `terminated` (RFC 4235 §3.7.1), so that a phone that tracks dialogs by id clears them.
        var shownDialogs: [LineDialog] = []
        /// The local CSeq number the store has (as of the last `.persist`, or what `add` and
        /// `restore` were given).
        var storedSequenceNumber: UInt32
        /// Restored after a restart and not notified since: its turn in the paced queue
        /// (``NotifierStateMachine/sendOwedRestartNotifies(atMost:now:)``) is still to come.
        var owesRestartNotify = false

        init(subscription: Subscription) {
            self.subscription = subscription
            self.storedSequenceNumber = subscription.dialog.localSequenceNumber ?? 0
        }
    }

    private enum Phase: Sendable, Hashable {
        /// No NOTIFY in flight.
        case quiet
        /// One NOTIFY in flight; `pending`: the state (or expiry) changed since it was built.
        case notifying(pending: Bool)
    }

    /// An ended subscription: its final NOTIFY is in flight (`finalSent`), or waits for the
    /// outcome of the NOTIFY in flight when it ended.
    private struct Ending: Sendable {
        var watch: Watch
        var reason: TerminationReason
        var finalSent: Bool
    }

    public init(directory: Directory, settings: Settings = Settings()) {
        self.directory = directory
        self.settings = settings
    }

    // MARK: Queries

    /// A live subscription (not one that has ended and only waits for its final NOTIFY).
    public func subscription(id: String) -> Subscription? {
        watches[id]?.subscription
    }

    /// Every live subscription, in no particular order.
    public var subscriptions: [Subscription] {
        watches.values.map(\.subscription)
    }

    /// How many subscriptions are live (without building them, for a gauge).
    public var count: Int { watches.count }

    /// How many subscriptions of each package are live, kept as they come and go: the gauges
    /// read it every second, and building every subscription for that cost a few percent of a
    /// shard's time (issue 10's profile).
    public private(set) var liveCounts: [EventPackage: Int] = [:]

    /// Live subscriptions per source IP address (the host of `Subscription.source`), for the
    /// per-source limit (issue 9).
    private var countsBySourceHost: [String: Int] = [:]

    /// How many live subscriptions watch the line with this number.
    public func watcherCount(ofLine number: String) -> Int { watchIDsByTarget[number]?.count ?? 0 }

    /// How many live subscriptions came from this IP address.
    public func subscriptionCount(fromHost host: String) -> Int { countsBySourceHost[host] ?? 0 }

    /// The live subscriptions that watch the line with this number, in the order they came.
    public func subscriptions(targetNumber: String) -> [Subscription] {
        (watchIDsByTarget[targetNumber] ?? []).compactMap { watches[$0]?.subscription }
    }

    /// Whether a NOTIFY of this subscription (or, once it ended, its final one or the one
    /// before) waits for its outcome.
    public func isNotifyInFlight(subscriptionID id: String) -> Bool {
        if endings[id] != nil { return true }
        if case .notifying = watches[id]?.phase { return true }
        return false
    }

    /// Gives back the tables' storage after many subscriptions ended at once (a Swift
    /// dictionary never shrinks by itself).
    public mutating func releaseUnusedCapacity() {
        watches.releaseUnusedCapacity()
        endings.releaseUnusedCapacity()
        watchIDsByTarget.releaseUnusedCapacity()
        countsBySourceHost.releaseUnusedCapacity()
    }

    /// The earliest expiry of a live subscription: when `expire(now:)` next has work.
    public var nextExpiry: Date? {
        watches.values.lazy.map(\.subscription.expiresAt).min()
    }

    /// The last reported state of a line; a line never reported is idle and unregistered.
    public func lineState(number: String) -> LineState {
        lineStates[number] ?? LineState(number: number)
    }

    // MARK: Events

    /// A new subscription, already persisted and answered 200: its first NOTIFY with the full state.
    ///
    /// One whose `expiresAt` has passed is a fetch (RFC 6665 §4.4.3, `Expires: 0` on an initial
    /// SUBSCRIBE): it gets the current state in a final NOTIFY `terminated;reason=timeout` and
    /// is removed. Adding an id that is already live replaces that subscription.
    public mutating func add(_ subscription: Subscription, now: Date) -> [Action] {
        let id = subscription.id
        if let existing = watches[id] {
            unindex(existing.subscription)
            watches[id]?.subscription = subscription
            watches[id]?.storedSequenceNumber = subscription.dialog.localSequenceNumber ?? 0
            index(subscription, id: id)
            if subscription.expiresAt <= now { return end(id, reason: .timeout, now: now) }
            return notifyWhenPossible(id, now: now)
        }
        watches[id] = Watch(subscription: subscription)
        index(subscription, id: id)
        if subscription.expiresAt <= now {
            // RFC 6665 §4.4.3: a fetch is a subscription that expires at once; RFC 6665 §4.1.2.3:
            // > a successful unsubscription will also trigger a final NOTIFY request.
            return end(id, reason: .timeout, now: now)
        }
        // RFC 6665 §4.2.1.2:
        // > Upon successfully accepting or refreshing a subscription, notifiers MUST send a
        // > NOTIFY request immediately to communicate the current resource state to the
        // > subscriber.
        return notifyNow(id, now: now)
    }

    /// An accepted refresh: the new expiry, and a NOTIFY with the full state. `nil` when the
    /// subscription is unknown (the driver answers 481).
    ///
    /// The new expiry is persisted at once; the NOTIFY (RFC 6665 §4.2.1.2, quoted in `add`)
    /// goes now, or after the one in flight. An expiry that has already passed is an
    /// unsubscription.
    public mutating func refresh(id: String, expiresAt: Date, now: Date) -> [Action]? {
        guard var watch = watches[id] else { return nil }
        watch.subscription.expiresAt = expiresAt
        watches[id] = watch
        if expiresAt <= now { return end(id, reason: .timeout, now: now) }
        if case .notifying = watch.phase {
            watches[id]?.phase = .notifying(pending: true)
            return [.persist(watch.subscription)]
        }
        return notifyNow(id, now: now, persisting: true)
    }

    /// `Expires: 0`: a final NOTIFY `terminated;reason=timeout` with the current state, then removal.
    ///
    /// RFC 6665 §4.1.2.3: "a successful unsubscription will also trigger a final NOTIFY
    /// request"; §4.2.1.4 gives it `reason=timeout`. The `.remove` comes with the NOTIFY.
    public mutating func unsubscribe(id: String, now: Date) -> [Action] {
        end(id, reason: .timeout, now: now)
    }

    /// The watched line changed (calls, registration).
    ///
    /// Only the watchers whose body changes are notified: dialog watchers when the dialogs
    /// change, presence watchers when registration or the lamp changes.
    public mutating func lineChanged(_ state: LineState, now: Date) -> [Action] {
        let previous = lineState(number: state.number)
        guard previous != state else { return [] }
        if state == LineState(number: state.number) {
            lineStates[state.number] = nil
        } else {
            lineStates[state.number] = state
        }
        let dialogsChanged = previous.dialogs != state.dialogs
        let presenceChanged = previous.isRegistered != state.isRegistered || previous.lamp != state.lamp
        var actions: [Action] = []
        for id in watchIDsByTarget[state.number] ?? [] {
            guard let event = watches[id]?.subscription.event else { continue }
            switch event {
            case .dialog where dialogsChanged, .presence where presenceChanged:
                actions += notifyWhenPossible(id, now: now)
            case .dialog, .presence:
                continue
            }
        }
        return actions
    }

    /// Applies `change` to the line's last reported state, then as `lineChanged(_:now:)`: the
    /// one way calls and registrations tell the notifier about a line.
    public mutating func updateLine(_ number: String, now: Date, _ change: (inout LineState) -> Void) -> [Action] {
        var state = lineState(number: number)
        change(&state)
        return lineChanged(state, now: now)
    }

    /// The final response to a NOTIFY of this subscription (provisional ones change nothing).
    public mutating func notifyAnswered(subscriptionID id: String, statusCode: Int, now: Date) -> [Action] {
        guard statusCode >= 200 else { return [] }
        if var ending = endings[id] {
            // The NOTIFY the final one waited for is answered: the final one goes now, unless
            // the phone has just refused it. Once the final one is answered, it is over.
            guard !ending.finalSent, (200..<300).contains(statusCode) else {
                endings[id] = nil
                return []
            }
            let actions = sendFinal(&ending, id: id, now: now)
            endings[id] = ending
            return actions
        }
        // An answer nobody waits for (to a retransmission, or after a restart) changes nothing.
        guard let watch = watches[id], case .notifying(let pending) = watch.phase else { return [] }
        switch statusCode {
        case 200..<300:
            watches[id]?.consecutiveFailures = 0
            if pending { return notifyNow(id, now: now) }
            watches[id]?.phase = .quiet
            return []
        case 481:
            // RFC 6665 §4.2.2:
            // > If a NOTIFY request receives a 481 response, the notifier MUST remove the
            // > corresponding subscription even if such subscription was installed by
            // > non-SUBSCRIBE means (such as an administrative interface).
            return drop(id, reason: .deactivated)
        case 408:
            // A 408 is a timeout a hop reported for the phone: the same grace as our own.
            return notifyFailed(subscriptionID: id, now: now)
        default:
            // RFC 6665 §4.2.2:
            // > If the NOTIFY request fails due to an error response, and the subscription
            // > was installed using a soft-state mechanism, the notifier MUST remove the
            // > corresponding subscription.
            return drop(id, reason: .rejected)
        }
    }

    /// Timeout or transport error of the NOTIFY's transaction.
    ///
    /// RFC 6665 §4.2.2: "If the NOTIFY request fails due to a timeout condition, and the
    /// subscription was installed using a soft-state mechanism (such as SUBSCRIBE), the notifier
    /// SHOULD remove the subscription." SHOULD, not MUST: some Cisco SPAs drop NOTIFY responses
    /// now and then (opensips#380), so only `maximumConsecutiveFailures` in a row end it, with
    /// no final NOTIFY (the phone is not answering). Below that the subscription stays: a
    /// change that came meanwhile is sent now, later ones as usual. The failed state is not
    /// sent again by itself (most often the phone got it and only our answer was lost; and a
    /// driver that fails at once, with no flow to the phone, must not loop).
    public mutating func notifyFailed(subscriptionID id: String, now: Date) -> [Action] {
        if endings.removeValue(forKey: id) != nil {
            // The phone did not answer the final NOTIFY, or the one it waited for: it is over.
            return []
        }
        guard let watch = watches[id], case .notifying(let pending) = watch.phase else { return [] }
        let failures = watch.consecutiveFailures + 1
        guard failures < settings.maximumConsecutiveFailures else {
            return drop(id, reason: .timeout)
        }
        watches[id]?.consecutiveFailures = failures
        if pending { return notifyNow(id, now: now) }
        watches[id]?.phase = .quiet
        return []
    }

    /// Ends the subscriptions whose expiry has passed (`terminated;reason=timeout`).
    ///
    /// RFC 6665 §4.2.1.4: a subscription that is not refreshed ends with a final NOTIFY whose
    /// reason is `timeout`, which tells the phone it may subscribe again at once.
    public mutating func expire(now: Date) -> [Action] {
        let expired = watches.values.filter { $0.subscription.expiresAt <= now }.map(\.subscription.id)
        var actions: [Action] = []
        for id in expired.sorted() {
            actions += end(id, reason: .timeout, now: now)
        }
        return actions
    }

    /// Rules changed: subscriptions the new directory no longer allows end (`rejected`; the
    /// watched or watching line deleted: `noresource`).
    ///
    /// PRODUCT.md rule 2: turning presence off "ends existing subscriptions at once (NOTIFY
    /// with `Subscription-State: terminated;reason=rejected`)". RFC 6665 §4.2.2: `rejected` is
    /// "due to change in authorization policy", `noresource` "because the resource state which
    /// was being monitored no longer exists". Neither final NOTIFY carries the line's state.
    /// `same_network_only` is not re-checked here (it needs the registrations): it is checked
    /// again on every refresh.
    public mutating func directoryChanged(_ directory: Directory, now: Date) -> [Action] {
        let previous = self.directory
        self.directory = directory
        var actions: [Action] = []
        for id in watches.keys.sorted() {
            guard let watch = watches[id],
                let reason = violation(of: watch.subscription)
                    ?? credentialsChanged(of: watch.subscription, since: previous)
            else { continue }
            actions += end(id, reason: reason, now: now)
        }
        return actions
    }

    /// After a restart: the stored subscriptions, each to be NOTIFYed with the current state.
    ///
    /// The NOTIFYs are not sent here but queued, and the driver lets them out at a steady rate
    /// with `sendOwedRestartNotifies(atMost:now:)` (issue 9: a restart with 100,000
    /// subscriptions must not burst them all in one tick, which would overflow socket buffers
    /// and the phones' NAT bindings alike). A subscription whose line changes before its turn
    /// is notified at once, as usual, and its turn is passed over.
    ///
    /// Each dialog's CSeq and body version jump by `restartSequenceMargin` above what was stored
    /// (Polycom rejects a NOTIFY CSeq that goes backwards, freeswitch PR#3056), and the new
    /// values are persisted before the NOTIFY that uses them. A subscription that expired
    /// while we were down is removed without a NOTIFY (the phone's own timer has run out as
    /// well; it subscribes afresh); one the directory no longer allows ends as in
    /// `directoryChanged`. Ids already known are left alone.
    public mutating func restore(_ subscriptions: [Subscription], now: Date) -> [Action] {
        var actions: [Action] = []
        for stored in subscriptions where watches[stored.id] == nil && endings[stored.id] == nil {
            guard stored.expiresAt > now else {
                actions.append(.remove(stored, reason: .timeout))
                continue
            }
            var subscription = stored
            subscription.dialog = restarted(stored.dialog)
            subscription.nextVersion = Self.adding(settings.restartSequenceMargin, to: stored.nextVersion)
            let id = subscription.id
            var watch = Watch(subscription: subscription)
            // The store has the number from before the jump: the first NOTIFY writes the new one.
            watch.storedSequenceNumber = stored.dialog.localSequenceNumber ?? 0
            watches[id] = watch
            index(subscription, id: id)
            if let reason = violation(of: subscription) {
                actions += end(id, reason: reason, now: now)
            } else {
                watches[id]?.owesRestartNotify = true
                restartQueue.append(id)
            }
        }
        return actions
    }

    /// Restored subscriptions still waiting for their first NOTIFY (at most: some in the queue
    /// may have been notified or ended since).
    public var owedRestartNotifyCount: Int { restartQueue.count - restartQueueHead }

    /// The next `limit` restored subscriptions' first NOTIFYs, in the order they were restored
    /// (each persisted first: its CSeq and version jumped).
    public mutating func sendOwedRestartNotifies(atMost limit: Int, now: Date) -> [Action] {
        var actions: [Action] = []
        var sent = 0
        while sent < limit, restartQueueHead < restartQueue.count {
            let id = restartQueue[restartQueueHead]
            restartQueueHead += 1
            guard let watch = watches[id], watch.owesRestartNotify, case .quiet = watch.phase else { continue }
            actions += notifyNow(id, now: now)
            sent += 1
        }
        if restartQueueHead == restartQueue.count {
            restartQueue = []
            restartQueueHead = 0
        }
        return actions
    }

    // MARK: Sending

    /// NOTIFY now if nothing is in flight; else remember that the newest state is owed.
    private mutating func notifyWhenPossible(_ id: String, now: Date) -> [Action] {
        switch watches[id]?.phase {
        case .quiet:
            return notifyNow(id, now: now)
        case .notifying(let pending):
            if !pending { coalescedNotifyCount += 1 }
            watches[id]?.phase = .notifying(pending: true)
            return []
        case nil:
            return []
        }
    }

    /// An active NOTIFY with the full current state. The subscription is persisted first when
    /// `persisting` (its expiry moved) or when its CSeq is `notifiesBetweenWrites` ahead of
    /// the stored one.
    private mutating func notifyNow(_ id: String, now: Date, persisting: Bool = false) -> [Action] {
        // Taken out of the table while it changes, so that it is the only reference to its dialog.
        guard var watch = watches.removeValue(forKey: id) else { return [] }
        let notify = makeNotify(&watch, terminated: nil, now: now)
        watch.phase = .notifying(pending: false)
        watch.owesRestartNotify = false
        let sequence = watch.subscription.dialog.localSequenceNumber ?? 0
        let unstored = sequence - min(sequence, watch.storedSequenceNumber)
        let persists = persisting || unstored >= settings.notifiesBetweenWrites
        if persists { watch.storedSequenceNumber = sequence }
        watches[id] = watch
        var actions: [Action] = persists ? [.persist(watch.subscription)] : []
        actions.append(.sendNotify(notify, subscriptionID: id, to: watch.subscription.source))
        if let oversize = oversize(notify, id: id, to: watch.subscription.source) { actions.append(oversize) }
        return actions
    }

    /// Ends a live subscription: `.remove` now, and its final NOTIFY now or after the one in flight.
    private mutating func end(_ id: String, reason: TerminationReason, now: Date) -> [Action] {
        guard let watch = watches.removeValue(forKey: id) else { return [] }
        unindex(watch.subscription)
        var ending = Ending(watch: watch, reason: reason, finalSent: false)
        switch watch.phase {
        case .notifying:
            endings[id] = ending
            return [.remove(watch.subscription, reason: reason)]
        case .quiet:
            var actions = sendFinal(&ending, id: id, now: now)
            endings[id] = ending
            actions.append(.remove(ending.watch.subscription, reason: reason))
            return actions
        }
    }

    private func sendFinal(_ ending: inout Ending, id: String, now: Date) -> [Action] {
        let notify = makeNotify(&ending.watch, terminated: ending.reason, now: now)
        ending.finalSent = true
        let destination = ending.watch.subscription.source
        var actions: [Action] = [.sendNotify(notify, subscriptionID: id, to: destination)]
        if let oversize = oversize(notify, id: id, to: destination) { actions.append(oversize) }
        return actions
    }

    /// Ends a subscription without a NOTIFY: the phone refused ours or is not answering.
    private mutating func drop(_ id: String, reason: TerminationReason) -> [Action] {
        guard let watch = watches.removeValue(forKey: id) else { return [] }
        unindex(watch.subscription)
        return [.remove(watch.subscription, reason: reason)]
    }

    /// A live subscription joins its line's watchers and the count of its package. `id` is
    /// the string the slot table is keyed by: the list shares its storage (`Subscription.id`
    /// builds a new string each time it is read).
    private mutating func index(_ subscription: Subscription, id: String) {
        watchIDsByTarget[subscription.targetNumber, default: []].append(id)
        liveCounts[subscription.event, default: 0] += 1
        countsBySourceHost[subscription.source.host, default: 0] += 1
    }

    private mutating func unindex(_ subscription: Subscription) {
        let target = subscription.targetNumber
        let id = subscription.id
        watchIDsByTarget[target]?.removeAll { $0 == id }
        if watchIDsByTarget[target]?.isEmpty == true { watchIDsByTarget[target] = nil }
        liveCounts[subscription.event, default: 0] -= 1
        let host = subscription.source.host
        let fromHost = (countsBySourceHost[host] ?? 1) - 1
        countsBySourceHost[host] = fromHost > 0 ? fromHost : nil
    }

    /// Builds the next NOTIFY in the subscription's dialog (its CSeq rises by one) with the
    /// line's whole state; the body's version is the subscription's next one.
    private func makeNotify(_ watch: inout Watch, terminated reason: TerminationReason?, now: Date) -> SIPRequest {
        // In place: a copy of the subscription would copy its dialog (copy on write).
        var notify = watch.subscription.dialog.makeRequest(method: .notify)
        let subscription = watch.subscription
        // RFC 6665 §8.2.1 / §4.2.1.2: NOTIFY carries the Event of the subscription and a
        // Subscription-State; `active` with the remaining seconds, or `terminated` with a reason.
        notify.headers.add(.event, subscription.event.rawValue)
        if let reason {
            notify.headers.add(.subscriptionState, "terminated;reason=\(reason.rawValue)")
        } else {
            let remaining = max(0, Int(subscription.expiresAt.timeIntervalSince(now).rounded()))
            notify.headers.add(.subscriptionState, "active;expires=\(remaining)")
        }
        if Self.finalNotifyCarriesState(reason) {
            let line = lineState(number: subscription.targetNumber)
            let idleID = directory.line(number: subscription.targetNumber)?.extensionNumber ?? subscription.targetNumber
            let body: String
            switch subscription.event {
            case .dialog:
                let ended = watch.shownDialogs.filter { shown in !line.dialogs.contains { $0.id == shown.id } }
                body = DialogInfoDocument.render(
                    entity: subscription.entity,
                    version: subscription.nextVersion,
                    idleDialogID: idleID,
                    dialogs: line.dialogs,
                    ended: ended
                )
                watch.shownDialogs = line.dialogs
            case .presence:
                body = PresenceDocument.render(entity: subscription.entity, tupleID: idleID, state: line)
            }
            notify.headers.add(.contentType, subscription.event.contentType)
            notify.body = Array(body.utf8)
            // RFC 4235 §4.1: the version "MUST be incremented by 1 for each new document being
            // sent to a subscriber". Counted for presence too, where it is not on the wire.
            watch.subscription.nextVersion = Self.adding(1, to: subscription.nextVersion)
        }
        return notify
    }

    /// A final NOTIFY for a subscription the watcher may no longer see (`rejected`), or whose
    /// line is gone (`noresource`, `invariant`), carries no state.
    private static func finalNotifyCarriesState(_ reason: TerminationReason?) -> Bool {
        switch reason {
        case nil, .timeout, .deactivated, .probation, .giveup: return true
        case .rejected, .noresource, .invariant: return false
        }
    }

    /// `.oversizeNotify` when a UDP NOTIFY, with what the driver adds, exceeds the limit.
    private func oversize(_ notify: SIPRequest, id: String, to destination: SIPPeer) -> Action? {
        guard destination.transport == .udp else { return nil }
        let bytes = Self.serializedSize(of: notify) + Self.driverHeaderAllowance
        guard bytes > settings.maximumUDPMessageSize else { return nil }
        return .oversizeNotify(subscriptionID: id, bytes: bytes)
    }

    /// The size `SIPRequest.serializedBytes` would have, without building the bytes.
    static func serializedSize(of request: SIPRequest) -> Int {
        // "METHOD URI SIP/2.0\r\n"
        var size = request.method.rawValue.utf8.count + 1 + request.uri.description.utf8.count + 10
        for field in request.headers where field.name != .contentLength {
            size += field.name.canonical.utf8.count + 2 + field.value.utf8.count + 2
        }
        // The serializer writes exactly one Content-Length, with the body's real size.
        size += "Content-Length: ".utf8.count + String(request.body.count).utf8.count + 2
        return size + 2 + request.body.count
    }

    // MARK: Rules and restarts

    /// Why the directory no longer allows a subscription (PRODUCT.md rules 1 and 2), if it does not.
    /// The watcher's line was given a new password: its subscriptions were authenticated with
    /// the old one. RFC 6665 §4.2.2: `deactivated` asks the subscriber to "re-subscribe
    /// immediately", so a phone with the new password is back at once (and authenticated
    /// again), while one with the old password is refused, as it should be.
    private func credentialsChanged(of subscription: Subscription, since previous: Directory) -> TerminationReason? {
        guard let before = previous.line(number: subscription.watcherNumber),
            let after = directory.line(number: subscription.watcherNumber),
            before.credentials != after.credentials
        else { return nil }
        return .deactivated
    }

    private func violation(of subscription: Subscription) -> TerminationReason? {
        guard let target = directory.line(number: subscription.targetNumber),
            let watcher = directory.line(number: subscription.watcherNumber)
        else { return .noresource }
        guard target.accountID == watcher.accountID, target.group == watcher.group, directory.showsPresence(target)
        else { return .rejected }
        return nil
    }

    /// The stored dialog with its local CSeq `restartSequenceMargin` higher.
    private func restarted(_ dialog: Dialog) -> Dialog {
        var restored = dialog
        restored.jumpLocalSequenceNumber(
            to: Self.adding(settings.restartSequenceMargin, to: dialog.localSequenceNumber ?? 0)
        )
        return restored
    }

    /// `base + amount`, stopping at `UInt32.max` instead of trapping.
    private static func adding(_ amount: UInt32, to base: UInt32) -> UInt32 {
        let (sum, overflow) = base.addingReportingOverflow(amount)
        return overflow ? .max : sum
    }
}
