import Foundation

/// Where subscriptions are kept, so that after a restart or `kill -9` every watcher gets a
/// NOTIFY with the current state without resubscribing (issue 3), and NOTIFY CSeq and body
/// versions go on rising.
///
/// Every method is synchronous and thread-safe, and a write is durable when it returns: a
/// SUBSCRIBE is answered 200 only after `upsert` returned (persist, then answer).
public protocol SubscriptionStore: Sendable {
    /// Inserts the subscription, or replaces the one with the same id.
    func upsert(_ subscription: Subscription) throws
    /// Several subscriptions in one transaction (the CSeq and version of many NOTIFYs at once).
    func upsert(_ subscriptions: [Subscription]) throws
    /// Returns false if there was no such subscription.
    @discardableResult func removeSubscription(id: String) throws -> Bool
    func subscription(id: String) throws -> Subscription?
    func allSubscriptions() throws -> [Subscription]
    /// The subscriptions that watch the line with this number.
    func subscriptions(targetNumber: String) throws -> [Subscription]
    /// Removes the subscriptions with `expiresAt <= now` and returns them.
    @discardableResult func removeExpiredSubscriptions(now: Date) throws -> [Subscription]
}
