import Foundation
import GRDB
import Testing

@testable import BusyLampStore

@Suite("AppDatabase", .timeLimit(.minutes(1)))
struct AppDatabaseTests {
    /// Shipped migrations are frozen: a schema change is a new migration appended here.
    @Test func migrationsAreNamedAndInOrder() {
        #expect(AppDatabase.migrator.migrations == ["v1", "v2-subscriptions", "v3-listener", "v4-call-teardowns"])
    }

    @Test func durabilitySettings() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url.appendingPathComponent("nested/data"))
        #expect(
            FileManager.default.fileExists(
                atPath: folder.url.appendingPathComponent("nested/data/busylamp.sqlite").path
            )
        )
        let (journalMode, synchronous, foreignKeys, applied) = try store.writer.write { db in
            (
                try String.fetchOne(db, sql: "PRAGMA journal_mode"),
                try Int.fetchOne(db, sql: "PRAGMA synchronous"),
                try Bool.fetchOne(db, sql: "PRAGMA foreign_keys"),
                try AppDatabase.migrator.appliedMigrations(db)
            )
        }
        #expect(journalMode == "wal")
        // 2 = FULL: the WAL is synced at every commit (see AppDatabase).
        #expect(synchronous == 2)
        #expect(foreignKeys == true)
        #expect(applied == ["v1", "v2-subscriptions", "v3-listener", "v4-call-teardowns"])
    }

    @Test func schemaKeepsHashesNotPasswords() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(path: folder.url.appendingPathComponent("sub/custom.sqlite").path)
        let (tables, lineColumns) = try store.writer.read { db in
            let tables = try String.fetchAll(
                db,
                sql:
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'grdb_%' ORDER BY name"
            )
            let lineColumns = try db.columns(in: "lines").map(\.name)
            return (tables, lineColumns)
        }
        #expect(
            tables == [
                "accounts", "bindings", "call_teardowns", "lines", "platform_settings", "subscriptions", "trunks",
            ]
        )
        #expect(lineColumns.contains("ha1_md5"))
        #expect(lineColumns.contains("ha1_sha256"))
        #expect(!lineColumns.contains { $0.contains("password") })
    }
}
