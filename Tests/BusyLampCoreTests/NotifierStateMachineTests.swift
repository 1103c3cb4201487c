import Foundation
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampCore

/// The notifier driven as the server drives it, with values only: subscriptions, line states
/// and NOTIFY outcomes in, actions out. No sockets, no clock (`now` is always given).
@Suite("Notifier state machine", .timeLimit(.minutes(1)))
struct NotifierStateMachineTests {
    typealias Action = NotifierStateMachine.Action

    static let domain = "sip.busylamp.test"
    static let now = Date(timeIntervalSince1970: 1_700_000_000)
    static let phone = SIPPeer(transport: .udp, host: "198.51.100.7", port: 5062)

    static func line(_ accountID: String, _ ext: String, _ number: String, group: String = Line.defaultGroup) -> Line {
        Line(accountID: accountID, extensionNumber: ext, number: number, group: group, credentials: [:])
    }

    static let alice = line("acme", "201", "6495550201")
    static let bob = line("acme", "202", "6495550202")
    static let carol = line("acme", "203", "6495550203")
    static let directory = Directory(
        platform: PlatformSettings(domain: domain),
        accounts: [Account(id: "acme"), Account(id: "globex")],
        lines: [alice, bob, carol]
    )

    /// `directory` with `change` applied to the line numbered `number` (or that line removed).
    static func directory(changing number: String, _ change: ((inout Line) -> Void)?) -> Directory {
        var changed = directory
        var lines = directory.lines
        if let change, let index = lines.firstIndex(where: { $0.number == number }) {
            change(&lines[index])
        } else {
            lines.removeAll { $0.number == number }
        }
        changed.setAccounts(changed.accounts, lines: lines)
        return changed
    }

    /// Alice's phone watching Bob: a subscription dialog as the server builds it on its 200.
    static func subscription(
        _ n: Int = 1,
        event: EventPackage = .dialog,
        watcher: Line = alice,
        target: Line = bob,
        expiresIn seconds: TimeInterval = 600,
        source: SIPPeer = phone,
        localSequenceNumber: UInt32? = nil,
        nextVersion: UInt32 = 0
    ) -> Subscription {
        let dialog = Dialog(
            restoring: .confirmed,
            callID: "sub-\(n)@198.51.100.7",
            localTag: "srv\(n)",
            remoteTag: "ph\(n)",
            localSequenceNumber: localSequenceNumber,
            remoteSequenceNumber: 1,
            localAddress: NameAddress(uri: SIPURI(user: target.extensionNumber, host: domain)),
            remoteAddress: NameAddress(uri: SIPURI(user: watcher.number, host: domain)),
            remoteTarget: SIPURI(user: watcher.number, host: "198.51.100.7", port: 5062),
            routeSet: [],
            isSecure: false
        )
        return Subscription(
            event: event,
            accountID: target.accountID,
            watcherNumber: watcher.number,
            targetNumber: target.number,
            entity: "sip:\(target.extensionNumber)@\(domain)",
            dialog: dialog,
            source: source,
            expiresAt: now.addingTimeInterval(seconds),
            nextVersion: nextVersion,
            createdAt: now
        )
    }

    static func notifier(
        maximumConsecutiveFailures: Int = 3,
        notifiesBetweenWrites: UInt32 = 1_000
    )
        -> NotifierStateMachine
    {
        var settings = NotifierStateMachine.Settings()
        settings.maximumConsecutiveFailures = maximumConsecutiveFailures
        settings.notifiesBetweenWrites = notifiesBetweenWrites
        return NotifierStateMachine(directory: directory, settings: settings)
    }

    static func notifies(_ actions: [Action]) -> [SIPRequest] {
        actions.compactMap { action -> SIPRequest? in
            guard case .sendNotify(let request, _, _) = action else { return nil }
            return request
        }
    }

    static func only(_ actions: [Action]) throws -> SIPRequest {
        let requests = notifies(actions)
        try #require(requests.count == 1, "expected one NOTIFY in \(actions)")
        return requests[0]
    }

    static func document(_ notify: SIPRequest) throws -> ParsedXMLElement {
        let text = String(decoding: notify.body, as: UTF8.self)
        return try #require(ParsedXMLElement.parse(text), "not well-formed XML:\n\(text)")
    }

    /// Bob's line with these dialogs (registered).
    static func bobState(_ dialogs: [LineDialog] = [], registered: Bool = true) -> LineState {
        LineState(number: bob.number, isRegistered: registered, dialogs: dialogs)
    }

    // MARK: The first NOTIFY

    /// The gauges' counts follow subscriptions as they come, are replaced and end.
    @Test func liveCountsFollowTheSubscriptions() {
        var notifier = NotifierStateMachine(directory: Self.directory)
        _ = notifier.add(Self.subscription(1), now: Self.now)
        _ = notifier.add(Self.subscription(2), now: Self.now)
        _ = notifier.add(Self.subscription(3, event: .presence), now: Self.now)
        #expect(notifier.liveCounts == [.dialog: 2, .presence: 1])
        // The same dialog again, now for presence, replaces the dialog subscription.
        _ = notifier.add(Self.subscription(2, event: .presence), now: Self.now)
        #expect(notifier.liveCounts == [.dialog: 1, .presence: 2])
        _ = notifier.unsubscribe(id: Self.subscription(1).id, now: Self.now)
        #expect(notifier.liveCounts[.dialog, default: 0] == 0)
        #expect(notifier.liveCounts[.presence] == 2)
        #expect(notifier.count == 2)
    }

    /// Issue 9's limits read these: watchers per line and subscriptions per source address,
    /// kept as subscriptions come, are replaced and end.
    @Test func countsPerLineAndPerSourceFollowTheSubscriptions() {
        var notifier = NotifierStateMachine(directory: Self.directory)
        let office = SIPPeer(transport: .udp, host: "203.0.113.7", port: 5062)
        let otherPort = SIPPeer(transport: .udp, host: "203.0.113.7", port: 5064)
        _ = notifier.add(Self.subscription(1, source: office), now: Self.now)
        _ = notifier.add(Self.subscription(2, source: otherPort), now: Self.now)
        _ = notifier.add(Self.subscription(3, target: Self.alice), now: Self.now)
        #expect(notifier.watcherCount(ofLine: Self.bob.number) == 2)
        #expect(notifier.watcherCount(ofLine: Self.alice.number) == 1)
        #expect(notifier.subscriptionCount(fromHost: "203.0.113.7") == 2, "by address, whatever the port")
        #expect(notifier.subscriptionCount(fromHost: Self.phone.host) == 1)
        // Replaced by one from elsewhere, then ended.
        _ = notifier.add(Self.subscription(1), now: Self.now)
        #expect(notifier.subscriptionCount(fromHost: "203.0.113.7") == 1)
        _ = notifier.unsubscribe(id: Self.subscription(2).id, now: Self.now)
        #expect(notifier.subscriptionCount(fromHost: "203.0.113.7") == 0)
        #expect(notifier.watcherCount(ofLine: Self.bob.number) == 1)
    }

    @Test func firstNotifyCarriesTheFullIdleState() throws {
        var notifier = Self.notifier()
        let subscription = Self.subscription()
        let actions = notifier.add(subscription, now: Self.now.addingTimeInterval(0.4))

        var sent = subscription
        sent.nextVersion = 1
        _ = sent.dialog.makeRequest(method: .notify)
        let notify = try Self.only(actions)
        // The driver wrote the subscription before its 200: the first NOTIFY's CSeq and version
        // are not written again (`notifiesBetweenWrites`).
        #expect(actions == [.sendNotify(notify, subscriptionID: subscription.id, to: Self.phone)])

        #expect(notify.method == .notify)
        #expect(notify.uri == subscription.dialog.remoteTarget)
        #expect(notify.cseq == CSeq(number: 1, method: .notify))
        #expect(notify.callID == "sub-1@198.51.100.7")
        #expect(notify.from?.tag == "srv1")
        #expect(notify.to?.tag == "ph1")
        #expect(notify.headers[.event] == "dialog")
        #expect(notify.headers[.subscriptionState] == "active;expires=600")  // 599.6 s, rounded
        #expect(notify.headers[.contentType] == "application/dialog-info+xml")
        #expect(notify.headers[.via] == nil)
        #expect(notify.headers[.contact] == nil)

        let root = try Self.document(notify)
        #expect(root.name == "dialog-info")
        #expect(root.attributes["version"] == "0")
        #expect(root.attributes["state"] == "full")
        #expect(root.attributes["entity"] == "sip:202@\(Self.domain)")
        let dialogs = root.children(named: "dialog")
        #expect(dialogs.map { $0.attributes["id"] } == ["202"])  // the target's extension
        #expect(dialogs.first?.children(named: "state").first?.text == "terminated")

        #expect(notifier.subscription(id: subscription.id) == sent)
        #expect(notifier.subscriptions(targetNumber: Self.bob.number) == [sent])
        #expect(notifier.count == 1)
        #expect(notifier.isNotifyInFlight(subscriptionID: subscription.id))
    }

    @Test func firstNotifyShowsACallAlreadyRinging() throws {
        var notifier = Self.notifier()
        _ = notifier.lineChanged(Self.bobState([makeDialog("a", .recipient, .early)]), now: Self.now)
        let notify = try Self.only(notifier.add(Self.subscription(), now: Self.now))
        let dialog = try #require(Self.document(notify).children(named: "dialog").first)
        #expect(dialog.attributes["id"] == "a")
        #expect(dialog.attributes["call-id"] == "call-a")
        #expect(dialog.attributes["local-tag"] == "lt-a")
        #expect(dialog.attributes["remote-tag"] == "rt-a")
        #expect(dialog.attributes["direction"] == "recipient")
        #expect(dialog.children(named: "state").first?.text == "early")
        #expect(dialog.children(named: "remote").first?.children(named: "identity").first?.text != nil)
    }

    // MARK: Versions, CSeq, coalescing

    @Test func versionAndCSeqRiseByOnePerNotify() throws {
        var notifier = Self.notifier()
        let subscription = Self.subscription()
        let id = subscription.id
        var sent = [try Self.only(notifier.add(subscription, now: Self.now))]
        let states: [[LineDialog]] = [
            [makeDialog("a", .recipient, .early)], [makeDialog("a", .recipient, .confirmed)], [],
        ]
        for dialogs in states {
            #expect(notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now).isEmpty)
            sent.append(try Self.only(notifier.lineChanged(Self.bobState(dialogs), now: Self.now)))
        }
        #expect(try sent.map { try Self.document($0).attributes["version"] } == ["0", "1", "2", "3"])
        #expect(sent.map { $0.cseq?.number } == [1, 2, 3, 4])
        #expect(notifier.subscription(id: id)?.nextVersion == 4)
        #expect(notifier.subscription(id: id)?.dialog.localSequenceNumber == 4)
    }

    /// The store is never more than `notifiesBetweenWrites` NOTIFYs behind: every third NOTIFY
    /// here is persisted, with the numbers it carries, before it is sent.
    @Test func sequenceNumbersArePersistedEveryFewNotifies() throws {
        var notifier = Self.notifier(notifiesBetweenWrites: 3)
        let subscription = Self.subscription()
        let id = subscription.id
        var persisted: [UInt32?] = []
        func record(_ actions: [Action]) throws {
            let notify = try Self.only(actions)
            for case .persist(let written) in actions {
                #expect(actions.first == .persist(written))
                #expect(written.dialog.localSequenceNumber == notify.cseq?.number)
                persisted.append(written.dialog.localSequenceNumber)
            }
        }
        try record(notifier.add(subscription, now: Self.now))
        for n in 0..<7 {
            #expect(notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now).isEmpty)
            let state: LineDialog.State = n.isMultiple(of: 2) ? .early : .confirmed
            try record(notifier.lineChanged(Self.bobState([makeDialog("p\(n)", .recipient, state)]), now: Self.now))
        }
        #expect(persisted == [3, 6])
        #expect(notifier.subscription(id: id)?.dialog.localSequenceNumber == 8)
    }

    @Test func aBurstWhileANotifyIsInFlightBecomesOneNotifyWithTheNewestState() throws {
        var notifier = Self.notifier()
        let id = Self.subscription().id
        _ = try Self.only(notifier.add(Self.subscription(), now: Self.now))
        for n in 0..<100 {
            let state: LineDialog.State = n.isMultiple(of: 2) ? .early : .confirmed
            let actions = notifier.lineChanged(Self.bobState([makeDialog("d\(n)", .recipient, state)]), now: Self.now)
            #expect(actions.count == 0, "change \(n) sent while a NOTIFY was in flight")
        }
        let next = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)
        let notify = try Self.only(next)
        let root = try Self.document(notify)
        #expect(root.attributes["version"] == "1")
        // Only the newest dialog: the 99 that came and went in between were never shown.
        let dialogs = root.children(named: "dialog")
        #expect(dialogs.map { $0.attributes["id"] } == ["d99"])
        #expect(dialogs.first?.children(named: "state").first?.text == "confirmed")
        #expect(notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now).isEmpty)
        #expect(!notifier.isNotifyInFlight(subscriptionID: id))
    }

    @Test func aBurstReachesEveryWatcherOnce() throws {
        var notifier = Self.notifier()
        let subscriptions = (1...50).map { Self.subscription($0) }
        for subscription in subscriptions { _ = notifier.add(subscription, now: Self.now) }
        for n in 0..<10 {
            #expect(
                notifier.lineChanged(Self.bobState([makeDialog("d\(n)", .recipient, .early)]), now: Self.now).isEmpty
            )
        }
        var followUps = 0
        for subscription in subscriptions {
            followUps +=
                Self.notifies(
                    notifier.notifyAnswered(subscriptionID: subscription.id, statusCode: 200, now: Self.now)
                ).count
        }
        #expect(followUps == 50)
    }

    @Test func anUnchangedStateSendsNothing() throws {
        var notifier = Self.notifier()
        let id = Self.subscription().id
        _ = notifier.add(Self.subscription(), now: Self.now)
        _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)
        let ringing = Self.bobState([makeDialog("a", .recipient, .early)])
        #expect(Self.notifies(notifier.lineChanged(ringing, now: Self.now)).count == 1)
        _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)
        #expect(notifier.lineChanged(ringing, now: Self.now).isEmpty)
        // Registration alone changes nothing a dialog watcher sees.
        #expect(
            notifier.lineChanged(Self.bobState([makeDialog("a", .recipient, .early)], registered: false), now: Self.now)
                .isEmpty
        )
        #expect(notifier.lineState(number: Self.bob.number).isRegistered == false)
    }

    @Test func anEndedCallIsShownOnceAsTerminated() throws {
        var notifier = Self.notifier()
        let id = Self.subscription().id
        _ = notifier.add(Self.subscription(), now: Self.now)
        _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)
        _ = notifier.lineChanged(Self.bobState([makeDialog("a", .recipient, .confirmed)]), now: Self.now)
        _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)

        let ended = try Self.document(Self.only(notifier.lineChanged(Self.bobState(), now: Self.now)))
        #expect(ended.children(named: "dialog").map { $0.attributes["id"] } == ["a"])
        #expect(ended.children(named: "dialog").first?.children(named: "state").first?.text == "terminated")
        _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)

        let next = try Self.document(
            Self.only(notifier.lineChanged(Self.bobState([makeDialog("b", .initiator, .early)]), now: Self.now))
        )
        #expect(next.children(named: "dialog").map { $0.attributes["id"] } == ["b"])
    }

    // MARK: Refresh

    @Test func refreshOfAnUnknownSubscriptionIsNil() {
        var notifier = Self.notifier()
        #expect(notifier.refresh(id: "nope;none", expiresAt: Self.now.addingTimeInterval(600), now: Self.now) == nil)
    }

    @Test func refreshPersistsTheExpiryAndNotifiesTheFullState() throws {
        var notifier = Self.notifier()
        let id = Self.subscription().id
        _ = notifier.add(Self.subscription(), now: Self.now)
        _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)
        let later = Self.now.addingTimeInterval(500)
        let refreshed = notifier.refresh(id: id, expiresAt: later.addingTimeInterval(300), now: later)
        let actions = try #require(refreshed)
        let notify = try Self.only(actions)
        #expect(notify.headers[.subscriptionState] == "active;expires=300")
        #expect(notify.cseq?.number == 2)
        guard case .persist(let persisted) = actions.first else {
            Issue.record("no persist first in \(actions)")
            return
        }
        #expect(persisted.expiresAt == later.addingTimeInterval(300))
        #expect(persisted.dialog.localSequenceNumber == 2)
    }

    @Test func refreshWhileANotifyIsInFlightWaitsForIt() throws {
        var notifier = Self.notifier()
        let id = Self.subscription().id
        _ = notifier.add(Self.subscription(), now: Self.now)
        let expiresAt = Self.now.addingTimeInterval(900)
        let refreshed = notifier.refresh(id: id, expiresAt: expiresAt, now: Self.now)
        let actions = try #require(refreshed)
        #expect(Self.notifies(actions).isEmpty)
        #expect(actions == [.persist(try #require(notifier.subscription(id: id)))])
        #expect(notifier.subscription(id: id)?.expiresAt == expiresAt)
        let notify = try Self.only(notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now))
        #expect(notify.headers[.subscriptionState] == "active;expires=900")
    }

    // MARK: Termination reasons

    @Test func expiryEndsWithAFinalTimeoutNotifyCarryingTheState() throws {
        var notifier = Self.notifier()
        let subscription = Self.subscription(expiresIn: 600)
        let id = subscription.id
        _ = notifier.add(subscription, now: Self.now)
        _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)
        #expect(notifier.nextExpiry == subscription.expiresAt)
        #expect(notifier.expire(now: Self.now.addingTimeInterval(599)).isEmpty)

        let actions = notifier.expire(now: Self.now.addingTimeInterval(600))
        let final = try Self.only(actions)
        #expect(final.headers[.subscriptionState] == "terminated;reason=timeout")
        #expect(try Self.document(final).attributes["version"] == "1")
        #expect(final.cseq?.number == 2)
        guard case .remove(let removed, let reason) = actions.last else {
            Issue.record("no remove in \(actions)")
            return
        }
        #expect(removed.id == id)
        #expect(reason == .timeout)
        #expect(notifier.subscription(id: id) == nil)
        #expect(notifier.count == 0)
        #expect(notifier.refresh(id: id, expiresAt: Self.now.addingTimeInterval(1200), now: Self.now) == nil)
        #expect(notifier.lineChanged(Self.bobState([makeDialog("a", .recipient, .early)]), now: Self.now).isEmpty)
        #expect(notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now).isEmpty)
        #expect(!notifier.isNotifyInFlight(subscriptionID: id))
    }

    @Test func unsubscribeEndsWithAFinalTimeoutNotify() throws {
        var notifier = Self.notifier()
        let id = Self.subscription().id
        _ = notifier.add(Self.subscription(), now: Self.now)
        _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)
        let actions = notifier.unsubscribe(id: id, now: Self.now)
        let final = try Self.only(actions)
        #expect(final.headers[.subscriptionState] == "terminated;reason=timeout")
        #expect(final.headers[.contentType] == "application/dialog-info+xml")
        #expect(actions.last.map { if case .remove(_, .timeout) = $0 { true } else { false } } == true)
        #expect(notifier.unsubscribe(id: id, now: Self.now).isEmpty)
    }

    @Test func unsubscribeWhileANotifyIsInFlightSendsTheFinalOneAfterIt() throws {
        var notifier = Self.notifier()
        let id = Self.subscription().id
        _ = notifier.add(Self.subscription(), now: Self.now)
        let actions = notifier.unsubscribe(id: id, now: Self.now)
        // Removed from the store at once, but never two NOTIFYs in flight.
        #expect(Self.notifies(actions).isEmpty)
        #expect(actions.count == 1)
        #expect(actions.first.map { if case .remove(_, .timeout) = $0 { true } else { false } } == true)
        let final = try Self.only(notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now))
        #expect(final.headers[.subscriptionState] == "terminated;reason=timeout")
        #expect(final.cseq?.number == 2)
        #expect(notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now).isEmpty)
        #expect(!notifier.isNotifyInFlight(subscriptionID: id))
    }

    @Test func aFetchGetsOneFinalNotifyWithTheState() throws {
        var notifier = Self.notifier()
        _ = notifier.lineChanged(Self.bobState([makeDialog("a", .initiator, .confirmed)]), now: Self.now)
        let subscription = Self.subscription(expiresIn: 0)
        let actions = notifier.add(subscription, now: Self.now)
        let final = try Self.only(actions)
        #expect(final.headers[.subscriptionState] == "terminated;reason=timeout")
        #expect(try Self.document(final).children(named: "dialog").first?.attributes["id"] == "a")
        #expect(actions.last.map { if case .remove(_, .timeout) = $0 { true } else { false } } == true)
        #expect(notifier.count == 0)
    }

    @Test(
        "Rule changes end live subscriptions",
        arguments: [
            ("presence off for the target", "6495550202", TerminationReason.rejected),
            ("target in another group", "6495550202", .rejected),
            ("target moved to another account", "6495550202", .rejected),
            ("watcher in another group", "6495550201", .rejected),
            ("target deleted", "6495550202", .noresource),
            ("watcher deleted", "6495550201", .noresource),
        ]
    )
    func ruleChange(change: String, number: String, reason: TerminationReason) throws {
        let changed: Directory
        switch change {
        case "presence off for the target": changed = Self.directory(changing: number) { $0.presence = false }
        case "target moved to another account": changed = Self.directory(changing: number) { $0.accountID = "globex" }
        case "target deleted", "watcher deleted": changed = Self.directory(changing: number, nil)
        default: changed = Self.directory(changing: number) { $0.group = "SALES" }
        }
        var notifier = Self.notifier()
        let subscription = Self.subscription()
        let other = Self.subscription(2, watcher: Self.carol, target: Self.alice)
        _ = notifier.add(subscription, now: Self.now)
        _ = notifier.add(other, now: Self.now)
        _ = notifier.notifyAnswered(subscriptionID: subscription.id, statusCode: 200, now: Self.now)

        let actions = notifier.directoryChanged(changed, now: Self.now)
        let final = try Self.only(
            actions.filter { if case .sendNotify(_, subscription.id, _) = $0 { true } else { false } }
        )
        #expect(final.headers[.subscriptionState] == "terminated;reason=\(reason.rawValue)")
        // The watcher may no longer see the line: the final NOTIFY carries no state.
        #expect(final.body.isEmpty)
        #expect(final.headers[.contentType] == nil)
        #expect(actions.contains { if case .remove(let s, reason) = $0 { s.id == subscription.id } else { false } })
        #expect(notifier.subscription(id: subscription.id) == nil)
        #expect(notifier.directory == changed)
        // Alice watched by Carol is ended only when Alice's line is gone or regrouped.
        let otherEnded = actions.contains { if case .remove(let s, _) = $0 { s.id == other.id } else { false } }
        #expect(otherEnded == (number == Self.alice.number))
    }

    /// A new password for the watcher's line: its subscription ends with `deactivated`, so
    /// that the phone subscribes again at once and authenticates with the new password.
    @Test func aNewPasswordForTheWatcherDeactivatesItsSubscription() throws {
        var notifier = Self.notifier()
        let subscription = Self.subscription()
        _ = notifier.add(subscription, now: Self.now)
        _ = notifier.notifyAnswered(subscriptionID: subscription.id, statusCode: 200, now: Self.now)
        let changed = Self.directory(changing: subscription.watcherNumber) {
            $0.credentials = Line.credentials(number: $0.number, realm: "sip.busylamp.test", password: "new-password")
        }
        let actions = notifier.directoryChanged(changed, now: Self.now)
        let final = try Self.only(actions.filter { if case .sendNotify = $0 { true } else { false } })
        #expect(final.headers[.subscriptionState]?.hasPrefix("terminated;reason=deactivated") == true)
        #expect(notifier.count == 0)
        // The target's new password changes nothing for those who watch it.
        var again = Self.notifier()
        _ = again.add(subscription, now: Self.now)
        let targetChanged = Self.directory(changing: subscription.targetNumber) {
            $0.credentials = Line.credentials(number: $0.number, realm: "sip.busylamp.test", password: "other")
        }
        #expect(again.directoryChanged(targetChanged, now: Self.now).isEmpty)
    }

    @Test func aDirectoryChangeThatBreaksNoRuleEndsNothing() {
        var notifier = Self.notifier()
        _ = notifier.add(Self.subscription(), now: Self.now)
        let renamed = Self.directory(changing: Self.bob.number) { $0.name = "Robert" }
        #expect(notifier.directoryChanged(renamed, now: Self.now).isEmpty)
        #expect(notifier.count == 1)
    }

    @Test func a481EndsTheSubscriptionAtOnce() {
        var notifier = Self.notifier()
        let subscription = Self.subscription()
        _ = notifier.add(subscription, now: Self.now)
        _ = notifier.lineChanged(Self.bobState([makeDialog("a", .recipient, .early)]), now: Self.now)  // pending
        let actions = notifier.notifyAnswered(subscriptionID: subscription.id, statusCode: 481, now: Self.now)
        #expect(Self.notifies(actions).isEmpty)
        #expect(actions.count == 1)
        #expect(
            actions.first.map { if case .remove(let s, .deactivated) = $0 { s.id == subscription.id } else { false } }
                == true
        )
        #expect(notifier.subscription(id: subscription.id) == nil)
        #expect(notifier.lineChanged(Self.bobState(), now: Self.now).isEmpty)
        #expect(notifier.expire(now: Self.now.addingTimeInterval(3600)).isEmpty)
    }

    @Test func anotherErrorResponseEndsItWithoutANotify() {
        var notifier = Self.notifier()
        let subscription = Self.subscription()
        _ = notifier.add(subscription, now: Self.now)
        #expect(notifier.notifyAnswered(subscriptionID: subscription.id, statusCode: 180, now: Self.now).isEmpty)
        let actions = notifier.notifyAnswered(subscriptionID: subscription.id, statusCode: 488, now: Self.now)
        #expect(actions.count == 1)
        #expect(actions.first.map { if case .remove(_, .rejected) = $0 { true } else { false } } == true)
        #expect(notifier.count == 0)
    }

    @Test(arguments: [1, 2, 3, 5])
    func consecutiveFailuresEndItAtTheLimitAndNotBefore(limit: Int) throws {
        var notifier = Self.notifier(maximumConsecutiveFailures: limit)
        let id = Self.subscription().id
        _ = notifier.add(Self.subscription(), now: Self.now)
        for round in 1..<limit {
            // Below the limit: kept, and the next change is still delivered.
            #expect(notifier.notifyFailed(subscriptionID: id, now: Self.now).isEmpty)
            #expect(notifier.subscription(id: id) != nil)
            let dialog = makeDialog("r\(round)", .recipient, .early)
            #expect(Self.notifies(notifier.lineChanged(Self.bobState([dialog]), now: Self.now)).count == 1)
        }
        let actions = notifier.notifyFailed(subscriptionID: id, now: Self.now)
        #expect(Self.notifies(actions).isEmpty)  // the phone is not answering: no final NOTIFY
        #expect(actions.count == 1)
        #expect(actions.first.map { if case .remove(_, .timeout) = $0 { true } else { false } } == true)
        #expect(notifier.subscription(id: id) == nil)
    }

    @Test func anAnswerResetsTheFailureCount() throws {
        var notifier = Self.notifier(maximumConsecutiveFailures: 2)
        let id = Self.subscription().id
        _ = notifier.add(Self.subscription(), now: Self.now)
        for round in 0..<5 {
            #expect(notifier.notifyFailed(subscriptionID: id, now: Self.now).isEmpty)
            _ = notifier.lineChanged(Self.bobState([makeDialog("f\(round)", .recipient, .early)]), now: Self.now)
            #expect(notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now).isEmpty)
            _ = notifier.lineChanged(Self.bobState([makeDialog("o\(round)", .recipient, .early)]), now: Self.now)
        }
        #expect(notifier.subscription(id: id) != nil)
    }

    @Test func aFailureSendsTheChangeThatCameMeanwhile() throws {
        var notifier = Self.notifier()
        let id = Self.subscription().id
        _ = notifier.add(Self.subscription(), now: Self.now)
        _ = notifier.lineChanged(Self.bobState([makeDialog("a", .recipient, .confirmed)]), now: Self.now)
        let notify = try Self.only(notifier.notifyFailed(subscriptionID: id, now: Self.now))
        #expect(try Self.document(notify).children(named: "dialog").map { $0.attributes["id"] } == ["a"])
        // A 408 answer counts like our own timeout.
        #expect(notifier.notifyAnswered(subscriptionID: id, statusCode: 408, now: Self.now).isEmpty)
        #expect(notifier.subscription(id: id) != nil)
    }

    // MARK: Restart

    @Test func restoreBumpsCSeqAndVersionAndNotifies() throws {
        var notifier = Self.notifier()
        let stored = Self.subscription(localSequenceNumber: 41, nextVersion: 7)
        let margin = NotifierStateMachine.Settings().restartSequenceMargin
        #expect(notifier.restore([stored], now: Self.now).isEmpty, "the NOTIFY waits for its turn")
        #expect(notifier.owedRestartNotifyCount == 1)
        let actions = notifier.sendOwedRestartNotifies(atMost: 10, now: Self.now)
        #expect(notifier.owedRestartNotifyCount == 0)
        let notify = try Self.only(actions)
        #expect(notify.cseq?.number == 41 + margin + 1)
        #expect(try Self.document(notify).attributes["version"] == String(7 + margin))
        guard case .persist(let persisted) = actions.first else {
            Issue.record("no persist first in \(actions)")
            return
        }
        #expect(persisted.dialog.localSequenceNumber == 41 + margin + 1)
        #expect(persisted.nextVersion == 7 + margin + 1)
        #expect(persisted.dialog.id == stored.dialog.id)
        #expect(persisted.dialog.remoteTarget == stored.dialog.remoteTarget)
        #expect(notifier.subscription(id: stored.id) == persisted)
        // Restoring the same subscription again changes nothing.
        #expect(notifier.restore([stored], now: Self.now).isEmpty)
    }

    @Test func restoreOfANeverNotifiedDialogStartsAboveTheMargin() throws {
        var notifier = Self.notifier()
        _ = notifier.restore([Self.subscription()], now: Self.now)
        let notify = try Self.only(notifier.sendOwedRestartNotifies(atMost: 1, now: Self.now))
        #expect(notify.cseq?.number == NotifierStateMachine.Settings().restartSequenceMargin + 1)
    }

    @Test("restored NOTIFYs go out at the pace the driver asks for, in the order restored")
    func restoredNotifiesArePaced() throws {
        var notifier = Self.notifier()
        let stored = (1...10).map { Self.subscription($0) }
        #expect(notifier.restore(stored, now: Self.now).isEmpty)
        var notified: [String] = []
        for _ in 0..<3 {
            let actions = notifier.sendOwedRestartNotifies(atMost: 4, now: Self.now)
            let sent = actions.compactMap { action -> String? in
                if case .sendNotify(_, let id, _) = action { id } else { nil }
            }
            #expect(sent.count <= 4)
            notified += sent
        }
        #expect(notified == stored.map(\.id))
        #expect(notifier.sendOwedRestartNotifies(atMost: 4, now: Self.now).isEmpty)
    }

    @Test("a restored subscription whose line changes before its turn is notified once, at the change")
    func aLineChangeOvertakesThePacedQueue() throws {
        var notifier = Self.notifier()
        let first = Self.subscription(1)
        let second = Self.subscription(2)
        _ = notifier.restore([first, second], now: Self.now)
        let atChange = notifier.lineChanged(Self.bobState([makeDialog("a", .recipient, .early)]), now: Self.now)
        #expect(atChange.filter { if case .sendNotify = $0 { true } else { false } }.count == 2)
        // Both are now in flight or notified: the queue has nothing more for them.
        #expect(notifier.sendOwedRestartNotifies(atMost: 10, now: Self.now).isEmpty)
        #expect(notifier.owedRestartNotifyCount == 0)
    }

    @Test func restoreRemovesExpiredSubscriptionsWithoutANotify() {
        var notifier = Self.notifier()
        let expired = Self.subscription(expiresIn: -5)
        #expect(notifier.restore([expired], now: Self.now) == [.remove(expired, reason: .timeout)])
        #expect(notifier.count == 0)
    }

    @Test func restoreEndsWhatTheDirectoryNoLongerAllows() throws {
        var notifier = NotifierStateMachine(
            directory: Self.directory(changing: Self.bob.number) { $0.presence = false }
        )
        let stored = Self.subscription(localSequenceNumber: 3)
        let actions = notifier.restore([stored], now: Self.now)
        #expect(notifier.owedRestartNotifyCount == 0, "no paced NOTIFY for a subscription that ended")
        let final = try Self.only(actions)
        #expect(final.headers[.subscriptionState] == "terminated;reason=rejected")
        #expect(final.cseq?.number == 3 + NotifierStateMachine.Settings().restartSequenceMargin + 1)
        #expect(actions.last.map { if case .remove(_, .rejected) = $0 { true } else { false } } == true)
    }

    // MARK: Presence

    @Test(
        "PIDF: closed, open and Ready, open and on-the-phone",
        arguments: [
            (false, [], "closed", false),
            (true, [], "open", false),
            (true, [makeDialog("a", .recipient, .early)], "open", true),
            (true, [makeDialog("a", .initiator, .early)], "open", true),
            (true, [makeDialog("a", .recipient, .confirmed)], "open", true),
        ] as [(Bool, [LineDialog], String, Bool)]
    )
    func presence(registered: Bool, dialogs: [LineDialog], basic: String, onThePhone: Bool) throws {
        var notifier = Self.notifier()
        _ = notifier.lineChanged(Self.bobState(dialogs, registered: registered), now: Self.now)
        let notify = try Self.only(notifier.add(Self.subscription(event: .presence), now: Self.now))
        #expect(notify.headers[.event] == "presence")
        #expect(notify.headers[.contentType] == "application/pidf+xml")
        let root = try Self.document(notify)
        #expect(root.name == "presence")
        #expect(root.attributes["entity"] == "sip:202@\(Self.domain)")
        #expect(root.attributes["xmlns:rpid"] == "urn:ietf:params:xml:ns:pidf:rpid")
        #expect(root.descendants(named: "basic").first?.text == basic)
        #expect(!root.descendants(named: "rpid:on-the-phone").isEmpty == onThePhone)
        if registered && dialogs.isEmpty { #expect(root.descendants(named: "dm:note").first?.text == "Ready") }
    }

    @Test func presenceWatchersHearRegistrationButNotDialogDetails() throws {
        var notifier = Self.notifier()
        let id = Self.subscription(event: .presence).id
        _ = notifier.add(Self.subscription(event: .presence), now: Self.now)
        _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)
        let open = try Self.only(notifier.lineChanged(Self.bobState(), now: Self.now))
        #expect(try Self.document(open).descendants(named: "basic").first?.text == "open")
        _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)
        _ = try Self.only(notifier.lineChanged(Self.bobState([makeDialog("a", .recipient, .confirmed)]), now: Self.now))
        _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)
        // A second call while busy changes the dialogs, not what PIDF shows.
        let second = [makeDialog("a", .recipient, .confirmed), makeDialog("b", .recipient, .early)]
        #expect(notifier.lineChanged(Self.bobState(second), now: Self.now).isEmpty)
    }

    // MARK: Size

    @Test func aLargeNotifyOverUDPIsReported() throws {
        var notifier = Self.notifier()
        let dialogs = (0..<6).map { makeDialog("call-with-a-long-identifier-\($0)", .recipient, .confirmed) }
        _ = notifier.lineChanged(Self.bobState(dialogs), now: Self.now)
        let subscription = Self.subscription()
        let actions = notifier.add(subscription, now: Self.now)
        let notify = try Self.only(actions)
        let expected = notify.serializedBytes.count + NotifierStateMachine.driverHeaderAllowance
        #expect(expected > 1300)
        #expect(actions.last == .oversizeNotify(subscriptionID: subscription.id, bytes: expected))

        // The same over TCP is fine.
        let overTCP = Self.subscription(2, source: SIPPeer(transport: .tcp, host: "198.51.100.7", port: 5062))
        let tcpActions = notifier.add(overTCP, now: Self.now)
        #expect(!tcpActions.contains { if case .oversizeNotify = $0 { true } else { false } })
    }

    @Test func aSmallNotifyOverUDPIsNotReported() throws {
        var notifier = Self.notifier()
        let actions = notifier.add(Self.subscription(), now: Self.now)
        let notify = try Self.only(actions)
        #expect(notify.serializedBytes.count + NotifierStateMachine.driverHeaderAllowance <= 1300)
        #expect(!actions.contains { if case .oversizeNotify = $0 { true } else { false } })
    }

    @Test func theSizeEstimateIsTheSerializedSize() throws {
        var notifier = Self.notifier()
        let id = Self.subscription().id
        _ = notifier.lineChanged(Self.bobState([makeDialog("a", .recipient, .early)]), now: Self.now)
        let notify = try Self.only(notifier.add(Self.subscription(), now: Self.now))
        #expect(NotifierStateMachine.serializedSize(of: notify) == notify.serializedBytes.count)
        _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: Self.now)
        // A final NOTIFY without a body.
        let final = try Self.only(
            notifier.directoryChanged(Self.directory(changing: Self.bob.number, nil), now: Self.now)
        )
        #expect(final.body.isEmpty)
        #expect(NotifierStateMachine.serializedSize(of: final) == final.serializedBytes.count)
    }
}
