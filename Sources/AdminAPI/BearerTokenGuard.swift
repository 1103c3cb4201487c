import Crypto
import Foundation
import Metrics
import Synchronization

/// Checks the admin token (`Authorization: Bearer TOKEN`) and slows down guessing.
///
/// INTERFACE.md: with no token configured the API is closed (503), never open. A wrong token
/// gets 401 and is counted; an address with ``slowDownAfter`` failures in ``window`` has each
/// further attempt answered only after ``penalty``, and one with ``lockAfter`` failures gets 429
/// until its window ends, without the token being compared at all. Addresses are kept at most
/// ``maximumTrackedAddresses`` (the oldest window is forgotten first), so a scan from many
/// addresses cannot grow memory.
final class BearerTokenGuard: Sendable {
    static let window: TimeInterval = 60
    static let slowDownAfter = 5
    static let lockAfter = 20
    static let penalty: Duration = .seconds(1)
    static let maximumTrackedAddresses = 10_000

    enum Verdict: Equatable {
        case allowed
        case noTokenConfigured
        case wrongToken(slowDown: Bool)
        case locked(retryAfter: Int)
    }

    /// The token's SHA-256, as bytes.
    private let tokenDigest: [UInt8]?
    private let failures = Mutex([String: (count: Int, windowStart: Date)]())
    private let failureCounter = Counter(label: "busylamp_admin_auth_failures_total")

    init(token: String?) {
        tokenDigest = token.map { Array(SHA256.hash(data: Data($0.utf8))) }
    }

    var isConfigured: Bool { tokenDigest != nil }

    /// Judges the `presented` token (nil: none sent) from `address` at `now`.
    func check(presented: String?, from address: String, now: Date = Date()) -> Verdict {
        guard let tokenDigest else { return .noTokenConfigured }
        // Compared as digests, in constant time: the token's length and prefix leak nothing.
        let matches =
            presented.map { Self.constantTimeEqual(Array(SHA256.hash(data: Data($0.utf8))), tokenDigest) } ?? false
        // One lock: the window's expiry, the lock-out check and the count of this failure.
        let outcome = failures.withLock { table -> Verdict in
            if let entry = table[address], now.timeIntervalSince(entry.windowStart) > Self.window {
                table[address] = nil
            }
            if let entry = table[address], entry.count >= Self.lockAfter {
                let retry = Int((Self.window - now.timeIntervalSince(entry.windowStart)).rounded(.up))
                return .locked(retryAfter: max(1, retry))
            }
            if matches { return .allowed }
            if table.count >= Self.maximumTrackedAddresses, table[address] == nil,
                let oldest = table.min(by: { $0.value.windowStart < $1.value.windowStart })?.key
            {
                table[oldest] = nil
            }
            var entry = table[address] ?? (0, now)
            entry.count += 1
            table[address] = entry
            return .wrongToken(slowDown: entry.count > Self.slowDownAfter)
        }
        if case .wrongToken = outcome { failureCounter.increment() }
        return outcome
    }

    private static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }

    /// The token from `Authorization: Bearer TOKEN`.
    static func bearerToken(fromAuthorization header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }
}
