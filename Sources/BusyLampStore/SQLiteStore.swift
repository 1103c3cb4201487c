import BusyLampCore
import Foundation
import GRDB

/// The embedded store: the directory, the registrar's bindings and the subscriptions in one
/// SQLite file, `busylamp.sqlite` in the `--data` folder.
///
/// It is a value over a thread-safe GRDB `DatabasePool`: copies share the database, every call is
/// synchronous, reads run concurrently and writes are serialized. A write is durable when its
/// call returns (see ``AppDatabase`` for the `synchronous=FULL` choice). Several processes may
/// open the same file (`busylamp import` beside `serve`): SQLite's locks keep them consistent.
public struct SQLiteStore: Sendable {
    let database: AppDatabase

    var writer: any DatabaseWriter { database.writer }

    /// Opens the store in `dataDirectory`, creating the folder and the database if needed.
    public static func open(dataDirectory: URL) throws -> SQLiteStore {
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
        return try open(path: dataDirectory.appendingPathComponent(AppDatabase.fileName).path)
    }

    /// Opens the database file at `path` (`--store sqlite:PATH`), creating it and its folder if
    /// needed.
    public static func open(path: String) throws -> SQLiteStore {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return SQLiteStore(database: try AppDatabase.open(path: path))
    }

    /// The database file's path.
    public var path: String { writer.path }

    /// Closes the connections. Calls made after this throw.
    public func close() throws {
        try writer.close()
    }
}

// MARK: - DirectoryStore

extension SQLiteStore: DirectoryStore {
    public func loadDirectory() throws -> Directory? {
        try writer.read { db in
            guard let platform = try PlatformSettingsRecord.fetchOne(db) else { return nil }
            let accounts = try AccountRecord.order(Column.rowID).fetchAll(db).map(\.account)
            let lines = try LineRecord.order(Column.rowID).fetchAll(db).map(\.line)
            let trunks = try TrunkRecord.order(Column.rowID).fetchAll(db).map(\.trunk)
            return Directory(platform: platform.settings, accounts: accounts, lines: lines, trunks: trunks)
        }
    }

    public func replaceDirectory(with directory: Directory) throws {
        try writer.write { db in
            // Lines go with their accounts (ON DELETE CASCADE), but say so explicitly.
            try LineRecord.deleteAll(db)
            try AccountRecord.deleteAll(db)
            try TrunkRecord.deleteAll(db)
            try PlatformSettingsRecord(directory.platform).save(db)
            for account in directory.accounts {
                try insert(account, db)
            }
            for line in directory.lines {
                try insert(line, db)
            }
            for trunk in directory.trunks {
                try TrunkRecord(trunk).insert(db, onConflict: .replace)
            }
        }
    }

    public func platformSettings() throws -> PlatformSettings? {
        try writer.read { db in try PlatformSettingsRecord.fetchOne(db)?.settings }
    }

    public func savePlatformSettings(_ settings: PlatformSettings) throws {
        try writer.write { db in try PlatformSettingsRecord(settings).save(db) }
    }

    public func accounts() throws -> [Account] {
        try writer.read { db in try AccountRecord.order(Column.rowID).fetchAll(db).map(\.account) }
    }

    public func account(id: String) throws -> Account? {
        try writer.read { db in try AccountRecord.filter(AccountRecord.Columns.id == id).fetchOne(db)?.account }
    }

    public func insertAccount(_ account: Account) throws {
        try writer.write { db in try insert(account, db) }
    }

    public func updateAccount(_ account: Account) throws {
        try writer.write { db in
            guard try AccountRecord.filter(AccountRecord.Columns.id == account.id).fetchCount(db) > 0 else {
                throw DirectoryStoreError(.accountNotFound, subject: account.id)
            }
            try AccountRecord(account).update(db)
        }
    }

    public func deleteAccount(id: String) throws -> Bool {
        try writer.write { db in
            try LineRecord.filter(LineRecord.Columns.accountID == id).deleteAll(db)
            return try AccountRecord.filter(AccountRecord.Columns.id == id).deleteAll(db) > 0
        }
    }

    public func lines(accountID: String) throws -> [Line] {
        try writer.read { db in
            try LineRecord.filter(LineRecord.Columns.accountID == accountID).order(Column.rowID).fetchAll(db).map(
                \.line
            )
        }
    }

    public func line(accountID: String, extensionNumber: String) throws -> Line? {
        try writer.read { db in try fetchLine(accountID: accountID, extensionNumber: extensionNumber, db) }
    }

    public func line(number: String) throws -> Line? {
        try writer.read { db in try LineRecord.filter(LineRecord.Columns.number == number).fetchOne(db)?.line }
    }

    public func insertLine(_ line: Line) throws {
        try writer.write { db in try insert(line, db) }
    }

    public func updateLine(_ line: Line) throws {
        try writer.write { db in
            guard try fetchLine(accountID: line.accountID, extensionNumber: line.extensionNumber, db) != nil else {
                throw DirectoryStoreError(.lineNotFound, subject: "\(line.accountID)/\(line.extensionNumber)")
            }
            let taken =
                try LineRecord
                .filter(LineRecord.Columns.number == line.number)
                .filter(
                    LineRecord.Columns.accountID != line.accountID
                        || LineRecord.Columns.extensionNumber != line.extensionNumber
                )
                .fetchCount(db)
            guard taken == 0 else { throw DirectoryStoreError(.duplicateNumber, subject: line.number) }
            try LineRecord(line).update(db)
        }
    }

    public func deleteLine(accountID: String, extensionNumber: String) throws -> Bool {
        try writer.write { db in
            try LineRecord
                .filter(
                    LineRecord.Columns.accountID == accountID && LineRecord.Columns.extensionNumber == extensionNumber
                )
                .deleteAll(db) > 0
        }
    }

    public func trunks() throws -> [Trunk] {
        try writer.read { db in try TrunkRecord.order(Column.rowID).fetchAll(db).map(\.trunk) }
    }

    public func saveTrunk(_ trunk: Trunk) throws {
        try writer.write { db in try TrunkRecord(trunk).save(db) }
    }

    public func deleteTrunk(name: String) throws -> Bool {
        try writer.write { db in try TrunkRecord.filter(TrunkRecord.Columns.name == name).deleteAll(db) > 0 }
    }

    // MARK: Checked inserts, inside a write transaction

    /// Inserts the account, refusing a taken id with the store's own error rather than SQLite's.
    private func insert(_ account: Account, _ db: Database) throws {
        guard try AccountRecord.filter(AccountRecord.Columns.id == account.id).fetchCount(db) == 0 else {
            throw DirectoryStoreError(.duplicateAccount, subject: account.id)
        }
        try AccountRecord(account).insert(db)
    }

    private func insert(_ line: Line, _ db: Database) throws {
        guard try AccountRecord.filter(AccountRecord.Columns.id == line.accountID).fetchCount(db) > 0 else {
            throw DirectoryStoreError(.accountNotFound, subject: line.accountID)
        }
        guard try fetchLine(accountID: line.accountID, extensionNumber: line.extensionNumber, db) == nil else {
            throw DirectoryStoreError(.duplicateExtension, subject: line.extensionNumber)
        }
        guard try LineRecord.filter(LineRecord.Columns.number == line.number).fetchCount(db) == 0 else {
            throw DirectoryStoreError(.duplicateNumber, subject: line.number)
        }
        try LineRecord(line).insert(db)
    }

    private func fetchLine(accountID: String, extensionNumber: String, _ db: Database) throws -> Line? {
        try LineRecord
            .filter(LineRecord.Columns.accountID == accountID && LineRecord.Columns.extensionNumber == extensionNumber)
            .fetchOne(db)?.line
    }
}

// MARK: - RegistrationStore

extension SQLiteStore: RegistrationStore {
    public func upsert(_ binding: Binding) throws {
        try writer.write { db in try BindingRecord(binding).insert(db, onConflict: .replace) }
    }

    public func apply(aor: String, upserts: [Binding], removals: [String]) throws {
        try writer.write { db in
            for contact in removals {
                try bindingsRequest(aor: aor, contact: contact).deleteAll(db)
            }
            for binding in upserts {
                try BindingRecord(binding).insert(db, onConflict: .replace)
            }
        }
    }

    public func remove(aor: String, contact: String) throws -> Bool {
        try writer.write { db in try bindingsRequest(aor: aor, contact: contact).deleteAll(db) > 0 }
    }

    public func removeAll(aor: String) throws -> Int {
        try writer.write { db in try BindingRecord.filter(BindingRecord.Columns.aor == aor).deleteAll(db) }
    }

    public func bindings(aor: String) throws -> [Binding] {
        try writer.read { db in
            try BindingRecord.filter(BindingRecord.Columns.aor == aor).order(Column.rowID).fetchAll(db).map(\.binding)
        }
    }

    public func allBindings() throws -> [Binding] {
        try writer.read { db in try BindingRecord.order(Column.rowID).fetchAll(db).map(\.binding) }
    }

    public func removeExpired(now: Date) throws -> [Binding] {
        try writer.write { db in
            let expired = BindingRecord.filter(BindingRecord.Columns.expiresAt <= BindingRecord.milliseconds(now))
            let removed = try expired.fetchAll(db).map(\.binding)
            try expired.deleteAll(db)
            return removed
        }
    }

    private func bindingsRequest(aor: String, contact: String) -> QueryInterfaceRequest<BindingRecord> {
        BindingRecord.filter(BindingRecord.Columns.aor == aor && BindingRecord.Columns.contact == contact)
    }
}
