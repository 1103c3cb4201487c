import Foundation

/// Where the line owner keeps what ends each call in progress (``CallTeardown``), so that the
/// start after a crash hangs those calls up instead of leaving phones ringing or talking to
/// nobody (issue 9).
///
/// Every method is synchronous and thread-safe, and a write is durable when it returns.
public protocol CallTeardownStore: Sendable {
    /// Writes `teardowns` (replacing those with the same call id) and removes the calls in
    /// `removing`, in one transaction.
    func saveCallTeardowns(_ teardowns: [CallTeardown], removing: [String]) throws
    /// Every call teardown kept, oldest first.
    func allCallTeardowns() throws -> [CallTeardown]
}
