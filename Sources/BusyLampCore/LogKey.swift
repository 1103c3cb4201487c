import Logging

/// Every log metadata key, declared once (STYLE.md: dotted keys, one spelling each), so that a
/// log search for a call or a subscription finds every line about it.
public enum LogKey {
    public static let callID: Logger.Metadata.Key = "sip.call_id"
    public static let method: Logger.Metadata.Key = "sip.method"
    public static let peer: Logger.Metadata.Key = "sip.peer"
    public static let uri: Logger.Metadata.Key = "sip.uri"
    public static let target: Logger.Metadata.Key = "sip.target"
    public static let reason: Logger.Metadata.Key = "sip.reason"
    public static let event: Logger.Metadata.Key = "sip.event"
    public static let parseError: Logger.Metadata.Key = "sip.error"
    public static let bytes: Logger.Metadata.Key = "sip.bytes"
    public static let transaction: Logger.Metadata.Key = "sip.transaction"
    public static let bindings: Logger.Metadata.Key = "sip.bindings"
    public static let listeners: Logger.Metadata.Key = "sip.listeners"
    public static let subscriptionID: Logger.Metadata.Key = "sub.id"
    public static let subscriptionReason: Logger.Metadata.Key = "sub.reason"
    public static let subscriptionWatcher: Logger.Metadata.Key = "sub.watcher"
    public static let subscriptionEvent: Logger.Metadata.Key = "sub.event"
    public static let subscriptionCount: Logger.Metadata.Key = "sub.count"
    public static let subscriptionsRestored: Logger.Metadata.Key = "sub.restored"
    public static let callCount: Logger.Metadata.Key = "call.count"
    public static let shards: Logger.Metadata.Key = "sip.shards"
    /// A line's number.
    public static let line: Logger.Metadata.Key = "line"
    public static let trunk: Logger.Metadata.Key = "trunk"
    public static let file: Logger.Metadata.Key = "file"
    public static let error: Logger.Metadata.Key = "error"
    /// What a lockout covers (`user` at an address, or the `address`) and when it ends.
    public static let scope: Logger.Metadata.Key = "scope"
    public static let until: Logger.Metadata.Key = "until"
    /// The limit a refused source went past.
    public static let limit: Logger.Metadata.Key = "limit"
}
