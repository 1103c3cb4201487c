import Foundation

/// Stops password guessing without taking an office down (issue 9).
///
/// Failed authentications are counted per source address **and user name**: a phone with a
/// wrong password locks out only its own user at that address, and its colleagues behind the
/// same Internet connection (one public address for the whole office) keep registering.
/// Kamailio's stock configuration bans a whole address after 16 requests in 2 s, which bans an
/// office at boot.
///
/// An attacker rotating user names from one address is caught by the second rule: when more
/// than ``Settings/failingUsersPerAddress`` different users fail from one address within the
/// window, that address is locked for every user that has not authenticated from it before.
/// The phones that have keep being served: every success is remembered as a hash of address
/// and user (8 bytes each, up to ``Settings/maximumTrustedPairs``).
///
/// A plain value: the shard asks ``verdict(address:user:now:)`` before it verifies credentials,
/// and reports each outcome. A lockout is returned once, when it starts, so that it is logged
/// once. Memory is bounded by ``Settings/maximumTrackedAddresses``; past it, addresses whose
/// windows and lockouts have ended are forgotten first, and a new address is not tracked while
/// the table is full of live ones (the guard fails open rather than grow).
public struct FailedAuthenticationGuard: Sendable {
    public struct Settings: Sendable, Hashable {
        /// Failures of one user from one address within `window` that lock that pair out.
        public var failuresBeforeLockout = 10
        /// How far back failures count.
        public var window: TimeInterval = 300
        /// How long a lockout lasts.
        public var lockoutDuration: TimeInterval = 600
        /// More failing users than this from one address within `window` lock the address for
        /// every user not trusted there.
        public var failingUsersPerAddress = 20
        /// Address and user pairs remembered as having authenticated (past it, new ones are not).
        public var maximumTrustedPairs = 1 << 20
        /// Addresses tracked at once.
        public var maximumTrackedAddresses = 65_536
        /// What a locked-out request gets.
        public var lockoutAnswer = LockoutAnswer.forbidden

        public init() {}
    }

    /// `403` tells a confused phone's owner why (it shows on the phone); silence costs a
    /// scanner its timeouts and tells it nothing, as Kamailio's pike does.
    public enum LockoutAnswer: String, Sendable, Hashable, CaseIterable {
        case forbidden = "403"
        case silence
    }

    public enum Scope: String, Sendable, Hashable {
        /// One user at one address.
        case user
        /// Every user an address has not authenticated before.
        case address
    }

    public enum Verdict: Sendable, Hashable {
        case allowed
        case lockedOut(scope: Scope, until: Date)
    }

    /// A lockout that has just started.
    public struct Lockout: Sendable, Hashable {
        public var scope: Scope
        public var address: String
        public var user: String
        public var until: Date
    }

    private struct FailingUser {
        var windowStart: Date
        var failures: Int
        var lockedUntil: Date?
    }

    private struct AddressRecord {
        var failingUsers: [String: FailingUser] = [:]
        var lockedUntil: Date?

        /// Whether nothing in it is live any more.
        func isIdle(at now: Date, window: TimeInterval) -> Bool {
            guard (lockedUntil ?? .distantPast) <= now else { return false }
            return failingUsers.values.allSatisfy { user in
                (user.lockedUntil ?? .distantPast) <= now && now.timeIntervalSince(user.windowStart) > window
            }
        }
    }

    public var settings: Settings
    private var addresses: [String: AddressRecord] = [:]
    private var trustedPairs: Set<Int> = []

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// Addresses tracked now.
    public var trackedAddressCount: Int { addresses.count }

    /// Whether `user` (the digest user name) from `address` may have its credentials checked.
    public func verdict(address: String, user: String, now: Date) -> Verdict {
        guard let record = addresses[address] else { return .allowed }
        if let until = record.failingUsers[user]?.lockedUntil, until > now {
            return .lockedOut(scope: .user, until: until)
        }
        if let until = record.lockedUntil, until > now, !trustedPairs.contains(Self.pair(address, user)) {
            return .lockedOut(scope: .address, until: until)
        }
        return .allowed
    }

    /// Counts a failed authentication (a wrong response, an unknown user); returns the lockout
    /// it starts, if any.
    public mutating func recordFailure(address: String, user: String, now: Date) -> Lockout? {
        // Taken out while it changes, so that its table is not copied (copy on write).
        guard var record = addresses.removeValue(forKey: address) ?? (makeRoom(now: now) ? AddressRecord() : nil)
        else { return nil }
        let lockout = Self.failure(of: user, at: address, in: &record, now: now, settings: settings)
        addresses[address] = record
        return lockout
    }

    private static func failure(
        of user: String,
        at address: String,
        in record: inout AddressRecord,
        now: Date,
        settings: Settings
    ) -> Lockout? {
        // Users whose window is over count from zero again (and free their place).
        record.failingUsers = record.failingUsers.filter { _, failing in
            (failing.lockedUntil ?? .distantPast) > now || now.timeIntervalSince(failing.windowStart) <= settings.window
        }
        let addressLocked = (record.lockedUntil ?? .distantPast) > now
        if record.failingUsers[user] == nil {
            // A locked address tracks no new names: an attacker's rotation cannot grow it.
            guard !addressLocked else { return nil }
            record.failingUsers[user] = FailingUser(windowStart: now, failures: 0)
        }
        var failing = record.failingUsers[user]!
        failing.failures += 1
        var lockout: Lockout?
        if failing.failures >= settings.failuresBeforeLockout, (failing.lockedUntil ?? .distantPast) <= now {
            let until = now.addingTimeInterval(settings.lockoutDuration)
            failing.lockedUntil = until
            lockout = Lockout(scope: .user, address: address, user: user, until: until)
        }
        record.failingUsers[user] = failing
        if !addressLocked, record.failingUsers.count > settings.failingUsersPerAddress {
            let until = now.addingTimeInterval(settings.lockoutDuration)
            record.lockedUntil = until
            // The address lockout is the news: it covers this user too.
            lockout = Lockout(scope: .address, address: address, user: user, until: until)
        }
        return lockout
    }

    /// `user` authenticated from `address`: its failures are forgotten, and it stays served
    /// there if the address is locked later.
    public mutating func recordSuccess(address: String, user: String) {
        if trustedPairs.count < settings.maximumTrustedPairs { trustedPairs.insert(Self.pair(address, user)) }
        guard !addresses.isEmpty, addresses[address]?.failingUsers[user] != nil else { return }
        addresses[address]?.failingUsers[user] = nil
    }

    private static func pair(_ address: String, _ user: String) -> Int {
        var hasher = Hasher()
        hasher.combine(address)
        hasher.combine(user)
        return hasher.finalize()
    }

    /// Forgets what no longer matters when the table is full; false when it is full of live
    /// records.
    private mutating func makeRoom(now: Date) -> Bool {
        guard addresses.count >= settings.maximumTrackedAddresses else { return true }
        let window = settings.window
        addresses = addresses.filter { _, record in !record.isIdle(at: now, window: window) }
        return addresses.count < settings.maximumTrackedAddresses
    }
}
