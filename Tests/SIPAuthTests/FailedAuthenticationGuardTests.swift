import Foundation
import SIPAuth
import Testing

/// Issue 9: per-source limits on failed authentications that stop a guesser without taking
/// down the office that shares its address.
@Suite("Failed authentication guard", .timeLimit(.minutes(1)))
struct FailedAuthenticationGuardTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)
    static let office = "203.0.113.7"

    static func settings(limit: Int = 10, users: Int = 20) -> FailedAuthenticationGuard.Settings {
        var settings = FailedAuthenticationGuard.Settings()
        settings.failuresBeforeLockout = limit
        settings.window = 300
        settings.lockoutDuration = 600
        settings.failingUsersPerAddress = users
        return settings
    }

    @Test func aUserIsLockedOutAfterTheLimitAndOnlyThatUser() {
        var guardian = FailedAuthenticationGuard(settings: Self.settings(limit: 5))
        var lockouts: [FailedAuthenticationGuard.Lockout] = []
        for second in 0..<8 {
            let now = Self.start.addingTimeInterval(Double(second))
            if guardian.verdict(address: Self.office, user: "201", now: now) == .allowed,
                let lockout = guardian.recordFailure(address: Self.office, user: "201", now: now)
            {
                lockouts.append(lockout)
            }
        }
        // Reported once, at the fifth failure.
        #expect(lockouts.map(\.scope) == [.user])
        #expect(lockouts.first?.until == Self.start.addingTimeInterval(4 + 600))
        let now = Self.start.addingTimeInterval(10)
        #expect(
            guardian.verdict(address: Self.office, user: "201", now: now)
                == .lockedOut(scope: .user, until: Self.start.addingTimeInterval(604))
        )
        #expect(guardian.verdict(address: Self.office, user: "202", now: now) == .allowed)
        #expect(guardian.verdict(address: "198.51.100.9", user: "201", now: now) == .allowed)
        // The lockout ends.
        #expect(
            guardian.verdict(address: Self.office, user: "201", now: Self.start.addingTimeInterval(605)) == .allowed
        )
    }

    /// The Kiwi seed's office: 50 phones on one Internet connection. One has a wrong password and
    /// retries every 30 s for an hour; the other 49 authenticate every minute. Only that one is
    /// ever refused.
    @Test func oneWrongPasswordDoesNotTakeTheOfficeDown() {
        var guardian = FailedAuthenticationGuard(settings: Self.settings())
        var refusedColleagues = 0
        var lockouts = 0
        for second in stride(from: 0, to: 3_600, by: 30) {
            let now = Self.start.addingTimeInterval(Double(second))
            if guardian.verdict(address: Self.office, user: "250", now: now) == .allowed,
                guardian.recordFailure(address: Self.office, user: "250", now: now) != nil
            {
                lockouts += 1
            }
            guard second % 60 == 0 else { continue }
            for phone in 201...249 {
                if guardian.verdict(address: Self.office, user: String(phone), now: now) != .allowed {
                    refusedColleagues += 1
                } else {
                    guardian.recordSuccess(address: Self.office, user: String(phone))
                }
            }
        }
        #expect(refusedColleagues == 0)
        // 10 failures in 270 s, locked 600 s, then again: a lockout about every 15 minutes.
        #expect(lockouts >= 3 && lockouts <= 5)
    }

    @Test func failuresOutsideTheWindowDoNotAddUp() {
        var guardian = FailedAuthenticationGuard(settings: Self.settings(limit: 3))
        for minute in 0..<30 {
            // Two failures every 6 minutes: never 3 within 5 minutes.
            let now = Self.start.addingTimeInterval(Double(minute) * 360)
            #expect(guardian.recordFailure(address: Self.office, user: "201", now: now) == nil)
            #expect(guardian.recordFailure(address: Self.office, user: "201", now: now.addingTimeInterval(1)) == nil)
        }
    }

    @Test func aSuccessForgetsTheFailures() {
        var guardian = FailedAuthenticationGuard(settings: Self.settings(limit: 3))
        _ = guardian.recordFailure(address: Self.office, user: "201", now: Self.start)
        _ = guardian.recordFailure(address: Self.office, user: "201", now: Self.start)
        guardian.recordSuccess(address: Self.office, user: "201")
        #expect(guardian.recordFailure(address: Self.office, user: "201", now: Self.start) == nil)
        #expect(guardian.recordFailure(address: Self.office, user: "201", now: Self.start) == nil)
        #expect(guardian.recordFailure(address: Self.office, user: "201", now: Self.start)?.scope == .user)
    }

    /// An attacker rotating user names from the office's address: past the cap of failing users
    /// the address is locked for every name not seen to authenticate there, while the phones
    /// that have (before the attack) keep working.
    @Test func rotatingUserNamesLocksTheAddressButNotItsKnownPhones() {
        var guardian = FailedAuthenticationGuard(settings: Self.settings(users: 20))
        for phone in 201...230 { guardian.recordSuccess(address: Self.office, user: String(phone)) }
        var lockouts: [FailedAuthenticationGuard.Lockout] = []
        for attempt in 0..<500 {
            let now = Self.start.addingTimeInterval(Double(attempt) / 100)
            let user = "guess\(attempt)"
            guard guardian.verdict(address: Self.office, user: user, now: now) == .allowed else { continue }
            if let lockout = guardian.recordFailure(address: Self.office, user: user, now: now) {
                lockouts.append(lockout)
            }
        }
        #expect(lockouts.map(\.scope) == [.address])
        #expect(lockouts.first?.user == "guess20", "the 21st failing user")
        let now = Self.start.addingTimeInterval(10)
        #expect(guardian.verdict(address: Self.office, user: "201", now: now) == .allowed)
        #expect(guardian.verdict(address: Self.office, user: "230", now: now) == .allowed)
        if case .lockedOut(.address, _) = guardian.verdict(address: Self.office, user: "231", now: now) {
        } else {
            Issue.record("a user never seen at the locked address is refused")
        }
        #expect(guardian.verdict(address: "198.51.100.9", user: "guess1", now: now) == .allowed)
        #expect(
            guardian.verdict(address: Self.office, user: "231", now: Self.start.addingTimeInterval(700)) == .allowed
        )
    }

    @Test func memoryIsBounded() {
        var settings = Self.settings()
        settings.maximumTrackedAddresses = 100
        var guardian = FailedAuthenticationGuard(settings: settings)
        for index in 0..<1_000 {
            _ = guardian.recordFailure(address: "10.0.\(index / 256).\(index % 256)", user: "201", now: Self.start)
        }
        #expect(guardian.trackedAddressCount == 100)
        // Once their windows are over, they make room for new ones.
        _ = guardian.recordFailure(address: "192.0.2.1", user: "201", now: Self.start.addingTimeInterval(301))
        #expect(guardian.trackedAddressCount == 1)
    }
}
