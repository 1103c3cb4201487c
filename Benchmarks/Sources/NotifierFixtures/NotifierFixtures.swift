import BusyLampCore
import Foundation
import SIPCore
import SIPTransactions

/// What the NOTIFY builder and notifier benchmarks measure against: one account on
/// `pbx.example.com` (the domain of ``BenchmarkMessages``), its line 202 (Bob) watched by desk
/// phones of the same account, and Bob's line idle, ringing and busy.
///
/// Everything is built once, before any measurement; `now` is fixed, so that every NOTIFY says
/// the same `expires` and a benchmark repeats itself exactly.
public enum NotifierFixtures {
    public static let domain = "pbx.example.com"
    public static let now = Date(timeIntervalSince1970: 1_700_000_000)
    public static let accountID = "acme"

    /// The watched line: extension 202, as in ``BenchmarkMessages/subscribe``.
    public static let bob = Line(
        accountID: accountID,
        extensionNumber: "202",
        number: "6495550202",
        name: "Bob",
        credentials: [:]
    )
    /// The watcher of ``BenchmarkMessages/subscribe``: extension 201.
    public static let alice = Line(
        accountID: accountID,
        extensionNumber: "201",
        number: "6495550201",
        name: "Alice",
        credentials: [:]
    )
    /// A second watched line, for the benchmarks of one subscription beside the 1,000 on Bob.
    public static let carol = Line(
        accountID: accountID,
        extensionNumber: "203",
        number: "6495550203",
        name: "Carol",
        credentials: [:]
    )

    /// The `n`-th watcher (from 0): extension `1000 + n`, number `649555` followed by it.
    public static func watcher(_ n: Int) -> Line {
        let extensionNumber = String(1000 + n)
        return Line(
            accountID: accountID,
            extensionNumber: extensionNumber,
            number: "649555\(extensionNumber)",
            credentials: [:]
        )
    }

    /// Bob, Alice, Carol and `watchers` further lines of the one account, presence on.
    public static func directory(watchers: Int) -> Directory {
        Directory(
            platform: PlatformSettings(domain: domain, presenceDefault: true),
            accounts: [Account(id: accountID, name: "Acme")],
            lines: [bob, alice, carol] + (0..<watchers).map(watcher)
        )
    }

    /// `watcher`'s subscription to `target` as the server keeps it after its 200: a confirmed
    /// dialog of its own, NOTIFYs back over UDP to where the SUBSCRIBE came from.
    public static func subscription(
        _ n: Int,
        event: EventPackage = .dialog,
        watcher: Line,
        target: Line = bob
    ) -> Subscription {
        let host = "192.0.2.\(n % 250 + 2)"
        let dialog = Dialog(
            restoring: .confirmed,
            callID: "blf-\(target.extensionNumber)-\(n)-7f6e5d4c3b2a1908@\(host)",
            localTag: "bl\(n)a9f3",
            remoteTag: "4a1b\(n)c3d",
            localSequenceNumber: nil,
            remoteSequenceNumber: 21,
            localAddress: NameAddress(uri: SIPURI(user: target.extensionNumber, host: domain)),
            remoteAddress: NameAddress(displayName: "Watcher \(n)", uri: SIPURI(user: watcher.number, host: domain)),
            remoteTarget: SIPURI(user: watcher.number, host: host, port: 5060),
            routeSet: [],
            isSecure: false
        )
        return Subscription(
            event: event,
            accountID: accountID,
            watcherNumber: watcher.number,
            targetNumber: target.number,
            entity: "sip:\(target.extensionNumber)@\(domain)",
            dialog: dialog,
            source: SIPPeer(transport: .udp, host: host, port: 5060),
            expiresAt: now.addingTimeInterval(1800),
            userAgent: "Polycom/6.4.3.5018 PolycomVVX-VVX_450-UA/6.4.3.5018",
            createdAt: now
        )
    }

    /// Alice calling Bob, from Bob's side: the other party's identity and target, tags as a
    /// B2BUA leg has them.
    public static func call(_ state: LineDialog.State, on line: Line = bob) -> LineDialog {
        LineDialog(
            id: "call-\(line.extensionNumber)-1",
            callID: "3848276298220188511@192.0.2.21",
            localTag: "as6151c2ed",
            remoteTag: state == .early || state == .confirmed ? "1928301774" : nil,
            direction: .recipient,
            state: state,
            local: LineDialog.Party(identity: "sip:\(line.extensionNumber)@\(domain)", displayName: line.name),
            remote: LineDialog.Party(
                identity: "sip:\(alice.extensionNumber)@\(domain)",
                displayName: alice.name,
                target: "sip:\(alice.extensionNumber)@192.0.2.21:5060"
            ),
            startedAt: now
        )
    }

    /// The line registered and idle.
    public static func idle(_ line: Line = bob) -> LineState {
        LineState(number: line.number, isRegistered: true)
    }

    /// The line registered, Alice's call ringing on it.
    public static func ringing(_ line: Line = bob) -> LineState {
        LineState(number: line.number, isRegistered: true, dialogs: [call(.early, on: line)])
    }

    /// The line registered, Alice's call answered.
    public static func busy(_ line: Line = bob) -> LineState {
        LineState(number: line.number, isRegistered: true, dialogs: [call(.confirmed, on: line)])
    }

    /// A notifier with `subscriptions` dialog subscriptions to Bob, one per watcher, each of
    /// whose first NOTIFY is answered 200: nothing is in flight.
    public static func settledNotifier(subscriptions: Int) -> NotifierStateMachine {
        var notifier = NotifierStateMachine(directory: directory(watchers: subscriptions))
        _ = notifier.lineChanged(idle(), now: now)
        for n in 0..<subscriptions {
            let actions = notifier.add(subscription(n, watcher: watcher(n)), now: now)
            answer(actions, in: &notifier)
        }
        precondition(notifier.count == subscriptions, "every fixture subscription must be live")
        return notifier
    }

    /// Answers 200 to every NOTIFY in `actions`; returns how many there were.
    @discardableResult
    public static func answer(_ actions: [NotifierStateMachine.Action], in notifier: inout NotifierStateMachine) -> Int
    {
        var answered = 0
        for case .sendNotify(_, let id, _) in actions {
            _ = notifier.notifyAnswered(subscriptionID: id, statusCode: 200, now: now)
            answered += 1
        }
        return answered
    }

    /// The NOTIFY requests among `actions`.
    public static func notifies(in actions: [NotifierStateMachine.Action]) -> [SIPRequest] {
        actions.compactMap { action in
            guard case .sendNotify(let request, _, _) = action else { return nil }
            return request
        }
    }
}
