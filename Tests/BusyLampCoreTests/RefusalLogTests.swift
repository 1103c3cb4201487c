import Foundation
import SIPTransactions
import Testing

@testable import BusyLampCore

/// The operator's ring of refusals: newest first, bounded per account whatever the traffic,
/// and forgetting deleted accounts.
@Suite("Refusal log", .timeLimit(.minutes(1)))
struct RefusalLogTests {
    static func refusal(_ index: Int, code: String = "other_group") -> Refusal {
        Refusal(
            time: Date(timeIntervalSince1970: TimeInterval(index)),
            method: "SUBSCRIBE",
            source: SIPPeer(transport: .udp, host: "198.51.100.7", port: 5060 + index),
            watcher: "201",
            target: "202",
            statusCode: 403,
            reasonPhrase: "Target In Another Group",
            code: code
        )
    }

    @Test func newestFirst() {
        var log = RefusalLog(capacityPerAccount: 4)
        for index in 0..<3 { log.record(Self.refusal(index), accountID: "acme") }
        #expect(log.refusals(accountID: "acme").map(\.source.port) == [5062, 5061, 5060])
        #expect(log.refusals(accountID: "globex").isEmpty)
    }

    /// A flood of 10,000 refusals keeps the last `capacity`, in order.
    @Test func floodDoesNotGrowIt() {
        var log = RefusalLog(capacityPerAccount: 256)
        for index in 0..<10_000 { log.record(Self.refusal(index), accountID: "acme") }
        let kept = log.refusals(accountID: "acme")
        #expect(kept.count == 256 && log.count == 256)
        #expect(kept.first?.source.port == 5060 + 9_999)
        #expect(kept.last?.source.port == 5060 + 10_000 - 256)
        #expect(zip(kept, kept.dropFirst()).allSatisfy { $0.time > $1.time })
    }

    @Test func deletedAccountsAreForgotten() {
        var log = RefusalLog()
        log.record(Self.refusal(1), accountID: "acme")
        log.record(Self.refusal(2), accountID: "gone")
        log.retainAccounts(["acme"])
        #expect(log.refusals(accountID: "gone").isEmpty)
        #expect(log.refusals(accountID: "acme").count == 1)
    }

    @Test(arguments: [
        (SubscriptionAdmission.Refusal.Code.otherGroup, "other_group"),
        (.unknownTarget, "unknown_target"),
        (.presenceOff, "presence_off"),
        (.badEvent, "bad_event"),
    ])
    func codesAreSnakeCase(_ code: SubscriptionAdmission.Refusal.Code, _ expected: String) {
        #expect(code.snakeCase == expected)
    }

    @Test func callRefusalCodesAreSnakeCase() {
        #expect(CallRouting.Refusal.Code.pickupTargetInAnotherGroup.snakeCase == "pickup_target_in_another_group")
        #expect(CallRouting.Refusal.Code.noTrunk.snakeCase == "no_trunk")
    }
}
