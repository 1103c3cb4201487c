import BusyLampCore
import Foundation
import Metrics
import NIOCore
import SIPAuth
import SIPCore
import SIPTransactions

/// What an account looks like live, read in one turn of the event loop: the query seam the
/// admin API, `busylamp why` and (later) cluster peers read the server through.
///
/// A value taken at one instant, so that its parts agree with each other. A server of several
/// shards (or a cluster of nodes) answers with the merge of every shard's snapshot.
public struct AccountLiveState: Sendable {
    /// The directory the server judges requests by now.
    public var directory: Directory
    public var accountID: String
    /// The account's lines with their live state, in directory order.
    public var lines: [(line: Line, state: LineState)]
    /// Active subscriptions whose watcher is a line of the account.
    public var subscriptions: [Subscription]
    /// Recent refusals, newest first.
    public var refusals: [Refusal]
    /// Source addresses of each line's live registrations, by number.
    public var registeredSourceHosts: [String: [String]]
    /// The feed's sequence when this was read: changes after it arrive on ``LineStateFeed``.
    public var sequence: UInt64

    /// The diagnosis of a watcher and a target of this account, from this snapshot.
    public func diagnose(watcherExtension: String, targetExtension: String) -> SubscriptionDiagnosis {
        SubscriptionDiagnosis.diagnose(
            accountID: accountID,
            watcherExtension: watcherExtension,
            targetExtension: targetExtension,
            directory: directory,
            registeredSourceHosts: { registeredSourceHosts[$0] ?? [] },
            refusals: refusals
        )
    }
}

extension SIPShard {
    // MARK: The query seam

    /// The live state of one account as this shard sees it (its own subscriptions and
    /// refusals), or `nil` when the directory has no such account. ``SIPServer`` merges the shards'.
    func liveState(accountID: String) async -> AccountLiveState? {
        try? await eventLoop.submit { [self] () -> AccountLiveState? in
            guard directory.account(id: accountID) != nil else { return nil }
            let lines = directory.lines(accountID: accountID)
            var hosts: [String: [String]] = [:]
            for line in lines {
                let sources = registeredSourceHosts(number: line.number)
                if !sources.isEmpty { hosts[line.number] = sources }
            }
            return AccountLiveState(
                directory: directory,
                accountID: accountID,
                lines: lines.map { ($0, notifier.lineState(number: $0.number)) },
                subscriptions: notifier.subscriptions.filter { $0.accountID == accountID },
                refusals: refusalLog.refusals(accountID: accountID),
                registeredSourceHosts: hosts,
                sequence: lineStateFeed.currentSequence
            )
        }.get() ?? nil
    }

    /// Applies a changed directory and returns once live traffic is judged by it (the admin
    /// API answers only then, so that a client's next SIP request meets the new rules).
    func applyDirectory(_ newDirectory: Directory) async {
        directoryChanged(newDirectory)
        // `directoryChanged` queues its work on the loop; this runs after it.
        try? await eventLoop.submit {}.get()
    }

    /// How many SIP listeners are bound and serving (`/healthz`).
    func boundListenerCount() async -> Int {
        (try? await eventLoop.submit { self.transport.listeners.count }.get()) ?? 0
    }

    // MARK: Line changes

    /// Changes line `number`'s state through the notifier (its watchers hear of it) and, when
    /// anything changed, publishes the new state on ``lineStateFeed`` and sends it (with the
    /// line's bindings when they changed) to every other shard. Every line change of the server
    /// goes through here, on the line owner: calls, registrations, the demo.
    func changeLine(
        _ number: String,
        now: Date,
        bindingsChanged: Bool = false,
        _ change: (inout LineState) -> Void
    ) {
        let before = notifier.lineState(number: number)
        let changedAt = NIODeadline.now()
        let actions = notifier.updateLine(number, now: now, change)
        let after = notifier.lineState(number: number)
        if after != before || bindingsChanged {
            let bindings = liveBindings[number]
            for shard in shards where shard !== self {
                shard.eventLoop.execute {
                    shard.replicate(line: number, state: after, bindings: bindings, now: now, changedAt: changedAt)
                }
            }
        }
        if after != before, let line = directory.line(number: number) {
            lineStateFeed.publish(line: line, state: after, time: now)
            metrics.lineChanges.increment()
        }
        execute(actions, lineChangedAt: changedAt)
    }

    /// A line change from the line owner: this shard's watchers of the line hear of it.
    private func replicate(
        line number: String,
        state: LineState,
        bindings: [Binding]?,
        now: Date,
        changedAt: NIODeadline
    ) {
        liveBindings[number] = bindings
        execute(notifier.updateLine(number, now: now) { $0 = state }, lineChangedAt: changedAt)
    }

    // MARK: Refusals for the operator

    /// Records a refused request in its account's ring (nothing for an unknown account: a
    /// scan of made-up users cannot grow the log).
    func recordRefusal(
        _ request: SIPRequest,
        from source: SIPPeer,
        line: Line?,
        status: Int,
        reason: String,
        code: String
    ) {
        guard let user = line ?? request.from?.uri.user.flatMap({ directory.line(number: $0) }) else { return }
        let targetUser = request.uri.user ?? ""
        let target =
            request.method == .subscribe
            ? (directory.line(dialed: targetUser, accountID: user.accountID)?.extensionNumber ?? targetUser)
            : targetUser
        refusalLog.record(
            Refusal(
                time: Date(),
                method: request.method.rawValue,
                source: source,
                watcher: user.extensionNumber,
                target: target,
                statusCode: status,
                reasonPhrase: reason,
                code: code
            ),
            accountID: user.accountID
        )
    }

    /// The line a request's digest credentials name, whether or not they were right.
    func claimedLine(of request: SIPRequest, headerName: SIPHeaderName) -> Line? {
        guard let value = request.headers[headerName], let credentials = try? DigestCredentials(parsing: value)
        else { return nil }
        return directory.line(number: credentials.username)
    }
}
