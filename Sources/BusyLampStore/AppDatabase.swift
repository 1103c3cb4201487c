import Foundation
import GRDB

/// The SQLite database of the embedded store: its schema and the connection to it (GRDB's
/// `AppDatabase` pattern).
///
/// It promises that the schema is migrated when it returns, and that every write is durable
/// when the write call returns, even across a power loss:
///
/// - The database is a `DatabasePool`, hence in WAL mode: readers (the directory lookups) never
///   wait for the writer (registrations).
/// - `synchronous=FULL`. In WAL mode, `NORMAL` already survives the process being killed
///   (`kill -9`): a commit is in the WAL file in the OS cache when the call returns. It is only
///   lost on a power failure or OS crash. The registrar answers 200 only after a binding is
///   written (STYLE.md), so we pay one fsync per commit and the promise holds for power loss too.
///   The cost is about a millisecond per REGISTER on an SSD; if that ever limits, group commits
///   rather than weaken the promise.
struct AppDatabase: Sendable {
    /// The file's name inside the `--data` folder (INTERFACE.md).
    static let fileName = "busylamp.sqlite"
    /// How long a writer waits for the lock before failing (another process on the same file,
    /// e.g. `busylamp import` while `serve` runs).
    static let busyTimeout: TimeInterval = 5

    let writer: any DatabaseWriter

    init(_ writer: any DatabaseWriter) throws {
        self.writer = writer
        try Self.migrator.migrate(writer)
    }

    /// Opens (creating if needed) the database file at `path`.
    static func open(path: String) throws -> AppDatabase {
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        let pool = try DatabasePool(path: path, configuration: configuration)
        // Set on the pool's single writer connection, after GRDB's WAL setup (which sets NORMAL
        // once the connection is prepared, so `prepareDatabase` would be overridden).
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        return try AppDatabase(pool)
    }

    /// The schema's history. A migration is never edited once it has shipped: a change is a new,
    /// later migration.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // One row: the platform settings of the last import.
            try db.create(table: "platform_settings") { t in
                t.primaryKey("id", .integer).check { $0 == 1 }
                t.column("domain", .text).notNull()
                t.column("presence_default", .boolean).notNull()
                t.column("min_expires", .integer).notNull()
                t.column("max_expires", .integer).notNull()
            }
            // Rows keep their rowid so that lists come back in the order they were created.
            try db.create(table: "accounts") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull()
                t.column("presence", .boolean)
                t.column("same_network_only", .boolean).notNull()
                t.column("pickup_directed", .text).notNull()
                t.column("pickup_group", .text).notNull()
            }
            try db.create(table: "lines") { t in
                t.column("account_id", .text).notNull()
                    .references("accounts", onDelete: .cascade)
                t.column("extension", .text).notNull()
                t.column("number", .text).notNull().unique()
                t.column("name", .text).notNull()
                t.column("group_name", .text).notNull()
                t.column("presence", .boolean)
                // HA1 = H(number ":" domain ":" password), RFC 7616 §3.4.2. Never the password.
                t.column("ha1_md5", .text)
                t.column("ha1_sha256", .text)
                t.primaryKey(["account_id", "extension"])
            }
            try db.create(table: "trunks") { t in
                t.primaryKey("name", .text)
                t.column("host", .text).notNull()
                t.column("port", .integer).notNull()
                t.column("transport", .text).notNull()
            }
            // Registrar bindings. Times are milliseconds since 1970 (UTC), so that the expiry
            // sweep is one indexed integer comparison.
            try db.create(table: "bindings") { t in
                t.column("aor", .text).notNull()
                t.column("contact", .text).notNull()
                t.column("instance_id", .text)
                t.column("reg_id", .integer)
                t.column("expires_at", .integer).notNull().indexed()
                t.column("call_id", .text).notNull()
                t.column("cseq", .integer).notNull()
                t.column("transport", .text).notNull()
                t.column("host", .text).notNull()
                t.column("port", .integer).notNull()
                t.column("connection_id", .integer)
                t.column("q", .double)
                t.column("user_agent", .text)
                t.column("updated_at", .integer).notNull()
                t.primaryKey(["aor", "contact"])
            }
        }
        migrator.registerMigration("v2-subscriptions") { db in
            // SUBSCRIBE dialogs (issue 3), one row per `Subscription.id` (Call-ID;local tag),
            // rewritten at each NOTIFY so that its CSeq and body version survive a restart.
            // Times are seconds since 2001-01-01 as REAL (`Date`'s own value, exact both ways;
            // readable as `datetime(expires_at + 978307200, 'unixepoch')`).
            try db.create(table: "subscriptions") { t in
                t.primaryKey("id", .text)
                t.column("event", .text).notNull()
                t.column("account_id", .text).notNull()
                t.column("watcher_number", .text).notNull()
                t.column("target_number", .text).notNull().indexed()
                t.column("entity", .text).notNull()
                // The dialog, RFC 3261 §12: every field `Dialog(restoring:...)` takes.
                t.column("dialog_state", .text).notNull()
                t.column("call_id", .text).notNull()
                t.column("local_tag", .text).notNull()
                t.column("remote_tag", .text)
                t.column("local_cseq", .integer)
                t.column("remote_cseq", .integer)
                t.column("local_address", .text).notNull()
                t.column("remote_address", .text).notNull()
                t.column("remote_target", .text).notNull()
                // A JSON array of name-addr texts, in the order requests visit them.
                t.column("route_set", .text).notNull()
                t.column("is_secure", .boolean).notNull()
                // Where the SUBSCRIBE came from (as in `bindings`).
                t.column("transport", .text).notNull()
                t.column("host", .text).notNull()
                t.column("port", .integer).notNull()
                t.column("connection_id", .integer)
                t.column("expires_at", .double).notNull().indexed()
                t.column("next_version", .integer).notNull()
                t.column("user_agent", .text)
                t.column("created_at", .double).notNull()
            }
        }
        migrator.registerMigration("v3-listener") { db in
            // Which of our listeners a binding's or subscription's peer reached (issue 9: a
            // NOTIFY or INVITE leaves from that socket). NULL for rows from before: the first.
            for table in ["bindings", "subscriptions"] {
                try db.alter(table: table) { t in t.add(column: "listener", .integer) }
            }
        }
        migrator.registerMigration("v4-call-teardowns") { db in
            // What ends each call in progress if the server dies (issue 9, `CallTeardown`):
            // a JSON array of steps, each a message of ours with where it goes, rewritten as the
            // call moves on and removed when it ends.
            try db.create(table: "call_teardowns") { t in
                t.primaryKey("call_id", .text)
                t.column("steps", .text).notNull()
            }
        }
        return migrator
    }
}
