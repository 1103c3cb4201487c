import Foundation
import SIPTransactions

/// One refused SUBSCRIBE, REGISTER or INVITE, as the operator's "why is my lamp orange" view
/// shows it (INTERFACE.md `GET .../refusals`).
public struct Refusal: Sendable, Hashable {
    public var time: Date
    public var method: String
    /// Where the request came from.
    public var source: SIPPeer
    /// The watcher's (or caller's) extension when known, else the user name it sent.
    public var watcher: String
    /// The target's extension when known, else the Request-URI user as sent (`""` for REGISTER).
    public var target: String
    public var statusCode: Int
    public var reasonPhrase: String
    /// A stable snake_case code (`bad_credentials`, `other_group`, …) for tools and metrics.
    public var code: String

    public init(
        time: Date,
        method: String,
        source: SIPPeer,
        watcher: String,
        target: String,
        statusCode: Int,
        reasonPhrase: String,
        code: String
    ) {
        self.time = time
        self.method = method
        self.source = source
        self.watcher = watcher
        self.target = target
        self.statusCode = statusCode
        self.reasonPhrase = reasonPhrase
        self.code = code
    }
}

/// The recent refusals of every account, each account in a ring of fixed size.
///
/// A flood of refused requests must not grow memory: each account keeps at most
/// ``capacityPerAccount`` entries (the oldest is overwritten), and only accounts of the
/// directory are kept (``retainAccounts(_:)`` drops deleted ones), so the whole log is bounded
/// by accounts × capacity whatever the traffic. A value: the server owns one on its loop.
public struct RefusalLog: Sendable {
    /// Enough to see a phone's last few minutes of retries (a phone retries every 30–60 s).
    public static let defaultCapacityPerAccount = 256

    public let capacityPerAccount: Int
    private var rings: [String: Ring] = [:]

    private struct Ring: Sendable {
        var entries: [Refusal] = []
        /// Where the next entry goes once the ring is full.
        var next = 0
    }

    public init(capacityPerAccount: Int = RefusalLog.defaultCapacityPerAccount) {
        self.capacityPerAccount = max(1, capacityPerAccount)
    }

    public mutating func record(_ refusal: Refusal, accountID: String) {
        var ring = rings[accountID] ?? Ring()
        if ring.entries.count < capacityPerAccount {
            ring.entries.append(refusal)
        } else {
            ring.entries[ring.next] = refusal
            ring.next = (ring.next + 1) % capacityPerAccount
        }
        rings[accountID] = ring
    }

    /// The account's refusals, newest first.
    public func refusals(accountID: String) -> [Refusal] {
        guard let ring = rings[accountID] else { return [] }
        let inOrder = Array(ring.entries[ring.next...] + ring.entries[..<ring.next])
        return inOrder.reversed()
    }

    /// Forgets every account not in `accountIDs` (deleted from the directory).
    public mutating func retainAccounts(_ accountIDs: Set<String>) {
        rings = rings.filter { accountIDs.contains($0.key) }
    }

    /// Entries kept in all, for tests and metrics.
    public var count: Int { rings.values.reduce(0) { $0 + $1.entries.count } }
}

extension Refusal {
    /// An identifier as the admin API and metrics spell codes (`otherGroup` → `other_group`).
    public static func snakeCase(_ identifier: String) -> String {
        var result = ""
        for character in identifier {
            if character.isUppercase {
                result += "_" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }
}

extension SubscriptionAdmission.Refusal.Code {
    /// The code as the admin API and metrics spell it (`otherGroup` → `other_group`).
    public var snakeCase: String { Refusal.snakeCase(rawValue) }
}

extension CallRouting.Refusal.Code {
    /// The code as the admin API and metrics spell it (`unknownDestination` → `unknown_destination`).
    public var snakeCase: String { Refusal.snakeCase(rawValue) }
}
