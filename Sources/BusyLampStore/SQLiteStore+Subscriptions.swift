import BusyLampCore
import Foundation
import GRDB

extension SQLiteStore: SubscriptionStore {
    public func upsert(_ subscription: Subscription) throws {
        try writer.write { db in try SubscriptionRecord(subscription).insert(db, onConflict: .replace) }
    }

    /// One transaction, hence one fsync, for the whole batch: all of them are written, or none.
    public func upsert(_ subscriptions: [Subscription]) throws {
        guard !subscriptions.isEmpty else { return }
        try writer.write { db in
            var statement: Statement?
            for subscription in subscriptions {
                let values = try SubscriptionRecord(subscription).columnValues()
                if statement == nil {
                    statement = try db.cachedStatement(sql: SubscriptionRecord.upsertSQL(columns: values.map(\.column)))
                }
                try statement?.execute(arguments: StatementArguments(values.map(\.value)))
            }
        }
    }

    public func removeSubscription(id: String) throws -> Bool {
        try writer.write { db in
            try SubscriptionRecord.filter(SubscriptionRecord.Columns.id == id).deleteAll(db) > 0
        }
    }

    public func subscription(id: String) throws -> Subscription? {
        try writer.read { db in
            try SubscriptionRecord.filter(SubscriptionRecord.Columns.id == id).fetchOne(db)?.subscription
        }
    }

    public func allSubscriptions() throws -> [Subscription] {
        try writer.read { db in try SubscriptionRecord.order(Column.rowID).fetchAll(db).map(\.subscription) }
    }

    public func subscriptions(targetNumber: String) throws -> [Subscription] {
        try writer.read { db in
            try SubscriptionRecord
                .filter(SubscriptionRecord.Columns.targetNumber == targetNumber)
                .order(Column.rowID)
                .fetchAll(db)
                .map(\.subscription)
        }
    }

    public func removeExpiredSubscriptions(now: Date) throws -> [Subscription] {
        try writer.write { db in
            let expired = SubscriptionRecord.filter(
                SubscriptionRecord.Columns.expiresAt <= SubscriptionRecord.seconds(now)
            )
            let removed = try expired.order(Column.rowID).fetchAll(db).map(\.subscription)
            try expired.deleteAll(db)
            return removed
        }
    }
}
