import BusyLampCore
import BusyLampStore
import Foundation
import SIPTransactions
import Testing

@Suite("SQLite store: registration bindings", .timeLimit(.minutes(1)))
struct SQLiteStoreBindingTests {
    /// A fixed instant, whole milliseconds (the store keeps milliseconds).
    static let now = Date(timeIntervalSince1970: 1_800_000_000.250)

    static func binding(
        _ aor: String,
        _ contact: String,
        expiresIn seconds: TimeInterval = 3600,
        cseq: UInt32 = 1,
        source: SIPPeer = SIPPeer(transport: .udp, host: "192.0.2.1", port: 5060)
    ) -> Binding {
        Binding(
            aor: aor,
            contact: contact,
            expiresAt: now.addingTimeInterval(seconds),
            callID: "call-\(aor)@192.0.2.1",
            cseq: cseq,
            source: source,
            updatedAt: now
        )
    }

    @Test func upsertInsertsThenReplaces() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)

        var full = Self.binding(
            "6495550201",
            "sip:6495550201@192.0.2.1:5060;transport=tcp",
            source: SIPPeer(transport: .tcp, host: "192.0.2.1", port: 40000, connectionID: UInt64.max, listener: 2)
        )
        full.instanceID = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
        full.regID = 1
        full.q = 0.7
        full.userAgent = "Yealink SIP-T46U"
        try store.upsert(full)
        try store.upsert(Self.binding("6495550201", "sip:6495550201@198.51.100.7:5062"))
        try store.upsert(Self.binding("6495550202", "sip:6495550202@192.0.2.2"))
        #expect(
            try store.bindings(aor: "6495550201") == [
                full, Self.binding("6495550201", "sip:6495550201@198.51.100.7:5062"),
            ]
        )

        // A refresh of the same contact replaces it: one row, the new CSeq and expiry.
        let refreshed = Self.binding("6495550201", "sip:6495550201@198.51.100.7:5062", expiresIn: 60, cseq: 2)
        try store.upsert(refreshed)
        let bindings = try store.bindings(aor: "6495550201")
        #expect(bindings.count == 2)
        #expect(bindings.contains(refreshed))
        #expect(try store.allBindings().count == 3)
    }

    @Test func removeOneAndAll() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        try store.upsert(Self.binding("6495550201", "sip:a@192.0.2.1"))
        try store.upsert(Self.binding("6495550201", "sip:b@192.0.2.1"))
        try store.upsert(Self.binding("6495550202", "sip:c@192.0.2.1"))

        #expect(try store.remove(aor: "6495550201", contact: "sip:a@192.0.2.1"))
        #expect(try !store.remove(aor: "6495550201", contact: "sip:a@192.0.2.1"))
        #expect(try !store.remove(aor: "6495550202", contact: "sip:b@192.0.2.1"))
        #expect(try store.bindings(aor: "6495550201").map(\.contact) == ["sip:b@192.0.2.1"])

        // RFC 3261 §10.3 step 6: `Contact: *` with `Expires: 0` removes every binding of the AOR.
        try store.upsert(Self.binding("6495550201", "sip:a@192.0.2.1"))
        #expect(try store.removeAll(aor: "6495550201") == 2)
        #expect(try store.bindings(aor: "6495550201").isEmpty)
        #expect(try store.allBindings().map(\.aor) == ["6495550202"])
    }

    @Test func applyChangesOneRegisterAtOnce() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        try store.upsert(Self.binding("6495550201", "sip:a@192.0.2.1"))
        try store.apply(
            aor: "6495550201",
            upserts: [Self.binding("6495550201", "sip:b@192.0.2.1"), Self.binding("6495550201", "sip:c@192.0.2.1")],
            removals: ["sip:a@192.0.2.1"]
        )
        #expect(
            try store.bindings(aor: "6495550201").map(\.contact).sorted() == ["sip:b@192.0.2.1", "sip:c@192.0.2.1"]
        )
    }

    @Test func removeExpiredTakesOnlyWhatRanOut() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        let short = Self.binding("6495550201", "sip:a@192.0.2.1", expiresIn: 60)
        let exact = Self.binding("6495550202", "sip:b@192.0.2.1", expiresIn: 120)
        let long = Self.binding("6495550203", "sip:c@192.0.2.1", expiresIn: 3600)
        for binding in [short, exact, long] { try store.upsert(binding) }

        #expect(try store.removeExpired(now: Self.now).isEmpty)
        #expect(try store.removeExpired(now: Self.now.addingTimeInterval(61)) == [short])
        // A binding expires at its `expiresAt` exactly.
        #expect(try store.removeExpired(now: exact.expiresAt) == [exact])
        #expect(try store.allBindings() == [long])
        #expect(exact.isExpired(at: exact.expiresAt))
        #expect(!long.isExpired(at: exact.expiresAt))
    }

    @Test func bindingsSurviveReopening() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let bindings = [
            Self.binding("6495550201", "sip:a@192.0.2.1"),
            Self.binding(
                "6495550202",
                "sip:b@192.0.2.2",
                source: SIPPeer(transport: .tcp, host: "2001:db8::2", port: 5070, connectionID: 42)
            ),
        ]
        do {
            let store = try SQLiteStore.open(dataDirectory: folder.url)
            for binding in bindings { try store.upsert(binding) }
            try store.close()
        }
        let reopened = try SQLiteStore.open(dataDirectory: folder.url)
        #expect(try reopened.allBindings() == bindings)
    }

    @Test func bindingsSurviveAnUncleanStop() throws {
        // The writer is never closed (as after kill -9): a second connection to the same file,
        // like the restarted process, sees every write that returned.
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let writer = try SQLiteStore.open(dataDirectory: folder.url)
        let binding = Self.binding("6495550201", "sip:a@192.0.2.1")
        try writer.upsert(binding)
        let other = try SQLiteStore.open(dataDirectory: folder.url)
        #expect(try other.bindings(aor: "6495550201") == [binding])
    }

    @Test func importDoesNotTouchBindings() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        let binding = Self.binding("6495550201", "sip:a@192.0.2.1")
        try store.upsert(binding)
        try DirectoryImporter.importDirectory(try DirectoryFile.parse("domain: a.test\n"), into: store)
        #expect(try store.allBindings() == [binding])
    }
}
