import BusyLampCore
import Foundation
import GRDB
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampStore

@Suite("SQLite store: subscriptions", .timeLimit(.minutes(1)))
struct SubscriptionStoreTests {
    /// Not a whole millisecond: subscription times come back exactly as stored.
    static let now = Date(timeIntervalSince1970: 1_800_000_000.123_456_7)

    /// A dialog as the server builds it from a SUBSCRIBE over TCP: a route set of two (one with
    /// a display name and a header parameter), a remote tag, a display name with escaped quotes,
    /// an empty display name on our side, the phone's CSeq, and two NOTIFYs already sent.
    static func parsedDialog(callID: String) throws -> Dialog {
        let token = callID.filter { $0.isLetter || $0.isNumber }
        let text =
            [
                "SUBSCRIBE sip:6495550202@pbx.example.test SIP/2.0",
                "Via: SIP/2.0/TCP 192.0.2.10:40000;branch=z9hG4bK-\(token)",
                "Max-Forwards: 70",
                "Record-Route: <sip:edge.example.test;lr;transport=tcp>",
                #"Record-Route: "Core \"B\"" <sip:[2001:db8::5]:5070;lr>;x-id=7"#,
                #"From: "Reception \"Front\" Desk" <sip:6495550201@pbx.example.test>;tag=yl-4711"#,
                #"To: "" <sip:6495550202@pbx.example.test>"#,
                "Call-ID: \(callID)",
                "CSeq: 41 SUBSCRIBE",
                "Contact: <sip:6495550201@192.0.2.10:40000;transport=tcp;ob>",
                "Event: dialog",
                "Expires: 3600",
                "Content-Length: 0",
            ].joined(separator: "\r\n") + "\r\n\r\n"
        guard case .request(let request) = try SIPParser().parse(Array(text.utf8)) else {
            throw StoreTestFailure("the SUBSCRIBE did not parse as a request")
        }
        let ok = SIPResponse(replyingTo: request, statusCode: 200, toTag: "bl-\(token.prefix(8))")
        guard var dialog = Dialog(uasRequest: request, response: ok, receivedOverTLS: false) else {
            throw StoreTestFailure("the SUBSCRIBE and its 200 made no dialog")
        }
        _ = dialog.makeRequest(method: .notify)
        _ = dialog.makeRequest(method: .notify)
        return dialog
    }

    /// A BLF subscription with every optional field set, watching `target`.
    static func fullSubscription(
        callID: String = "3c26700e-2d1f@192.0.2.10",
        target: String = "6495550202",
        expiresIn seconds: TimeInterval = 3600
    ) throws -> Subscription {
        Subscription(
            event: .dialog,
            accountID: "acme",
            watcherNumber: "6495550201",
            targetNumber: target,
            entity: "sip:\(target)@pbx.example.test",
            dialog: try parsedDialog(callID: callID),
            source: SIPPeer(
                transport: .tcp,
                host: "192.0.2.10",
                port: 40000,
                connectionID: UInt64.max - 6,
                listener: 3
            ),
            expiresAt: now.addingTimeInterval(seconds),
            nextVersion: 3,
            userAgent: "Yealink SIP-T46U 66.86.0.15",
            createdAt: now.addingTimeInterval(-0.000_3)
        )
    }

    /// A presence subscription with the optional fields empty: no remote tag (RFC 2543 peer),
    /// no CSeq either way, no route set, UDP without a connection, no User-Agent.
    static func bareSubscription(
        callID: String,
        target: String = "6495550203",
        expiresIn seconds: TimeInterval = 1800
    ) -> Subscription {
        Subscription(
            event: .presence,
            accountID: "acme",
            watcherNumber: "6495550204",
            targetNumber: target,
            entity: "sip:\(target)@pbx.example.test",
            dialog: Dialog(
                restoring: .early,
                callID: callID,
                localTag: "bl-\(callID)",
                remoteTag: nil,
                localSequenceNumber: nil,
                remoteSequenceNumber: nil,
                localAddress: NameAddress(uri: SIPURI(user: target, host: "pbx.example.test")),
                remoteAddress: NameAddress(uri: SIPURI(user: "6495550204", host: "pbx.example.test")),
                remoteTarget: SIPURI(user: "6495550204", host: "[2001:db8::4]", port: 5062),
                routeSet: [],
                isSecure: true
            ),
            source: SIPPeer(transport: .udp, host: "2001:db8::4", port: 5062),
            expiresAt: now.addingTimeInterval(seconds),
            createdAt: now
        )
    }

    @Test func everyFieldComesBackExactly() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        let full = try Self.fullSubscription()
        let bare = Self.bareSubscription(callID: "bare-1")
        try store.upsert(full)
        try store.upsert(bare)

        let restored = try #require(try store.subscription(id: full.id))
        #expect(restored == full)
        // What the equality covers, spelled out for the fields most easily lost.
        #expect(restored.id == "3c26700e-2d1f@192.0.2.10;bl-3c26700e")
        #expect(restored.dialog.localSequenceNumber == 2)
        #expect(restored.dialog.remoteSequenceNumber == 41)
        #expect(restored.dialog.remoteTag == "yl-4711")
        #expect(restored.dialog.remoteAddress.displayName == #"Reception "Front" Desk"#)
        #expect(restored.dialog.localAddress.displayName == "")
        #expect(restored.dialog.routeSet.map(\.description) == full.dialog.routeSet.map(\.description))
        #expect(restored.dialog.routeSet.count == 2)
        #expect(restored.dialog.routeSet[1].displayName == #"Core "B""#)
        #expect(restored.source.connectionID == UInt64.max - 6)
        #expect(restored.expiresAt == full.expiresAt)
        #expect(restored.createdAt == full.createdAt)
        #expect(restored.nextVersion == 3)

        #expect(try store.subscription(id: bare.id) == bare)
        #expect(try store.subscription(id: "no-such;id") == nil)
        #expect(try store.allSubscriptions() == [full, bare])
    }

    @Test func upsertReplacesTheSubscriptionWithTheSameID() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        let original = try Self.fullSubscription()
        try store.upsert(original)

        // A NOTIFY went out and the phone refreshed: CSeq, version and expiry move on.
        var refreshed = original
        _ = refreshed.dialog.makeRequest(method: .notify)
        refreshed.nextVersion += 1
        refreshed.expiresAt = Self.now.addingTimeInterval(7200)
        refreshed.userAgent = nil
        #expect(refreshed.id == original.id)
        try store.upsert(refreshed)

        #expect(try store.allSubscriptions() == [refreshed])
        #expect(try store.subscription(id: original.id)?.dialog.localSequenceNumber == 3)
        #expect(try store.subscription(id: original.id)?.nextVersion == 4)
    }

    @Test func batchUpsertWritesAllInOneTransaction() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        let first = try Self.fullSubscription(callID: "call-a@192.0.2.10")
        let second = Self.bareSubscription(callID: "call-b")
        try store.upsert([first, second])
        #expect(try store.allSubscriptions() == [first, second])

        let commits = CommitCounter(table: SubscriptionRecord.databaseTableName)
        store.writer.add(transactionObserver: commits)
        // The notifier's batch: a new NOTIFY CSeq and version for both, and one new subscription.
        var batch = [first, second, Self.bareSubscription(callID: "call-c", target: "6495550205")]
        for index in 0..<2 {
            _ = batch[index].dialog.makeRequest(method: .notify)
            batch[index].nextVersion += 1
        }
        try store.upsert(batch)
        #expect(commits.count == 1)
        #expect(Set(try store.allSubscriptions()) == Set(batch))
        #expect(try store.subscription(id: second.id)?.dialog.localSequenceNumber == 1)

        try store.upsert([Subscription]())
        #expect(commits.count == 1)
    }

    @Test func removeSubscriptionByID() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        let kept = Self.bareSubscription(callID: "kept")
        let gone = Self.bareSubscription(callID: "gone")
        try store.upsert([kept, gone])

        #expect(try store.removeSubscription(id: gone.id))
        #expect(try !store.removeSubscription(id: gone.id))
        #expect(try store.subscription(id: gone.id) == nil)
        #expect(try store.allSubscriptions() == [kept])
    }

    @Test func subscriptionsOfOneTargetLine() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        let blf = try Self.fullSubscription(callID: "blf@192.0.2.10", target: "6495550202")
        let buddy = Self.bareSubscription(callID: "buddy", target: "6495550202")
        let other = Self.bareSubscription(callID: "other", target: "6495550209")
        try store.upsert([blf, other, buddy])

        #expect(try store.subscriptions(targetNumber: "6495550202") == [blf, buddy])
        #expect(try store.subscriptions(targetNumber: "6495550209") == [other])
        #expect(try store.subscriptions(targetNumber: "6495550299").isEmpty)
    }

    @Test func removeExpiredTakesExactlyWhatRanOut() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        let short = Self.bareSubscription(callID: "short", expiresIn: 60)
        let exact = try Self.fullSubscription(callID: "exact@192.0.2.10", expiresIn: 120)
        let long = Self.bareSubscription(callID: "long", expiresIn: 3600)
        try store.upsert([short, exact, long])

        #expect(try store.removeExpiredSubscriptions(now: Self.now).isEmpty)
        #expect(try store.removeExpiredSubscriptions(now: Self.now.addingTimeInterval(61)) == [short])
        // Times are kept exactly: a tenth of a millisecond before its end it is still there.
        #expect(try store.removeExpiredSubscriptions(now: exact.expiresAt.addingTimeInterval(-0.000_1)).isEmpty)
        // A subscription ends at its `expiresAt` exactly.
        #expect(try store.removeExpiredSubscriptions(now: exact.expiresAt) == [exact])
        #expect(try store.allSubscriptions() == [long])
    }

    @Test func subscriptionsSurviveReopening() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let subscriptions = [
            try Self.fullSubscription(callID: "one@192.0.2.10"),
            Self.bareSubscription(callID: "two"),
            try Self.fullSubscription(callID: "three@192.0.2.10", target: "6495550207"),
        ]
        do {
            let store = try SQLiteStore.open(dataDirectory: folder.url)
            try store.upsert(subscriptions)
            try store.close()
        }
        let reopened = try SQLiteStore.open(dataDirectory: folder.url)
        #expect(try reopened.allSubscriptions() == subscriptions)
        #expect(try reopened.subscriptions(targetNumber: "6495550207") == [subscriptions[2]])
    }

    @Test func subscriptionsSurviveAnUncleanStop() throws {
        // The writer is never closed (as after kill -9): a second connection to the same file,
        // like the restarted process, sees every write that returned, the last CSeq included.
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let writer = try SQLiteStore.open(dataDirectory: folder.url)
        var subscription = try Self.fullSubscription()
        try writer.upsert(subscription)
        _ = subscription.dialog.makeRequest(method: .notify)
        subscription.nextVersion += 1
        try writer.upsert([subscription])

        let other = try SQLiteStore.open(dataDirectory: folder.url)
        #expect(try other.allSubscriptions() == [subscription])
        #expect(try other.subscription(id: subscription.id)?.dialog.localSequenceNumber == 3)
    }

    @Test func aBatchOfAThousand() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        let template = try Self.fullSubscription()
        let subscriptions = (0..<1000).map { index in
            var subscription = template
            let dialog = template.dialog
            subscription.dialog = Dialog(
                restoring: dialog.state,
                callID: "blf-\(index)@192.0.2.10",
                localTag: dialog.localTag,
                remoteTag: dialog.remoteTag,
                localSequenceNumber: UInt32(index),
                remoteSequenceNumber: dialog.remoteSequenceNumber,
                localAddress: dialog.localAddress,
                remoteAddress: dialog.remoteAddress,
                remoteTarget: dialog.remoteTarget,
                routeSet: dialog.routeSet,
                isSecure: dialog.isSecure
            )
            subscription.targetNumber = String(6_495_550_000 + index % 50)
            return subscription
        }
        let commits = CommitCounter(table: SubscriptionRecord.databaseTableName)
        store.writer.add(transactionObserver: commits)
        try store.upsert(subscriptions)
        #expect(commits.count == 1)
        #expect(try store.allSubscriptions() == subscriptions)
        #expect(try store.subscriptions(targetNumber: "6495550007").count == 20)
    }

    @Test func anUnreadableRowIsReportedNotGuessed() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        let subscription = try Self.fullSubscription()
        try store.upsert(subscription)
        try store.writer.write { db in
            try db.execute(sql: "UPDATE subscriptions SET route_set = '[\"<sip:broken'")
        }
        #expect(throws: StoreCorruption.self) { try store.subscription(id: subscription.id) }
        try store.writer.write { db in
            try db.execute(sql: "UPDATE subscriptions SET route_set = '[\"<sip:broken\"]'")
        }
        #expect(throws: StoreCorruption.self) { try store.allSubscriptions() }
        try store.writer.write { db in
            try db.execute(sql: "UPDATE subscriptions SET route_set = '[]', local_cseq = 4294967296")
        }
        #expect(throws: StoreCorruption.self) { try store.subscriptions(targetNumber: subscription.targetNumber) }
    }

    @Test func theMigrationsRunInOrderAndKeepOlderRows() throws {
        #expect(AppDatabase.migrator.migrations == ["v1", "v2-subscriptions", "v3-listener", "v4-call-teardowns"])

        // A database written by a release with only v1 (with a binding) gains the table and the
        // listener column, and keeps its rows (their listener unknown: NULL).
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.url.appendingPathComponent(AppDatabase.fileName).path
        let binding = Binding(
            aor: "6495550201",
            contact: "sip:6495550201@192.0.2.10",
            expiresAt: Date(timeIntervalSince1970: 1_800_003_600),
            callID: "reg-1@192.0.2.10",
            cseq: 5,
            source: SIPPeer(transport: .udp, host: "192.0.2.10", port: 5060),
            updatedAt: Date(timeIntervalSince1970: 1_800_000_000)
        )
        do {
            let pool = try DatabasePool(path: path)
            try AppDatabase.migrator.migrate(pool, upTo: "v1")
            // The columns of v1 only: today's record writes the later `listener` column too.
            try pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO bindings (aor, contact, expires_at, call_id, cseq, transport, host, port, updated_at)
                        VALUES (?, ?, ?, ?, ?, 'udp', '192.0.2.10', 5060, ?)
                        """,
                    arguments: [
                        binding.aor, binding.contact, BindingRecord.milliseconds(binding.expiresAt), binding.callID,
                        Int64(binding.cseq), BindingRecord.milliseconds(binding.updatedAt),
                    ]
                )
            }
            try pool.close()
        }
        let store = try SQLiteStore.open(path: path)
        let (applied, indexedColumns) = try store.writer.read { db in
            (
                try AppDatabase.migrator.appliedMigrations(db),
                try db.indexes(on: SubscriptionRecord.databaseTableName).map(\.columns)
            )
        }
        #expect(applied == ["v1", "v2-subscriptions", "v3-listener", "v4-call-teardowns"])
        #expect(indexedColumns.contains(["target_number"]))
        #expect(indexedColumns.contains(["expires_at"]))
        #expect(try store.allBindings() == [binding])
        #expect(try store.allSubscriptions().isEmpty)
    }
}

/// Counts the committed transactions that changed one table.
private final class CommitCounter: TransactionObserver, @unchecked Sendable {
    let table: String
    private let lock = NSLock()
    private var changed = false
    private var commits = 0

    init(table: String) { self.table = table }

    var count: Int { lock.withLock { commits } }

    func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool { eventKind.tableName == table }

    func databaseDidChange(with event: DatabaseEvent) { lock.withLock { changed = true } }

    func databaseDidCommit(_ db: Database) {
        lock.withLock {
            if changed { commits += 1 }
            changed = false
        }
    }

    func databaseDidRollback(_ db: Database) { lock.withLock { changed = false } }
}

struct StoreTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
