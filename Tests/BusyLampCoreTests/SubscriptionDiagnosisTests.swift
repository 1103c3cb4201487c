import Foundation
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampCore

/// "Why is this lamp orange?": each rule's verdict, in the admission's order, and a decision
/// that always agrees with what ``SubscriptionAdmission`` would answer.
@Suite("Subscription diagnosis", .timeLimit(.minutes(1)))
struct SubscriptionDiagnosisTests {
    typealias Fixture = SubscriptionAdmissionTests
    static let directory = Fixture.directory

    static func diagnose(
        _ watcher: String,
        _ target: String,
        account: String = "acme",
        in directory: Directory = Self.directory,
        hosts: [String: [String]]? = [:],
        refusals: [Refusal] = []
    ) -> SubscriptionDiagnosis {
        SubscriptionDiagnosis.diagnose(
            accountID: account,
            watcherExtension: watcher,
            targetExtension: target,
            directory: directory,
            registeredSourceHosts: hosts.map { table in { table[$0] ?? [] } },
            refusals: refusals
        )
    }

    static func verdicts(_ diagnosis: SubscriptionDiagnosis) -> [String: SubscriptionDiagnosis.Verdict] {
        Dictionary(uniqueKeysWithValues: diagnosis.rules.map { ($0.name.rawValue, $0.verdict) })
    }

    @Test func everyRulePasses() {
        let diagnosis = Self.diagnose("201", "202")
        #expect(diagnosis.isAccepted && diagnosis.isLive)
        let verdicts = Self.verdicts(diagnosis)
        #expect(verdicts["same_account"] == .pass && verdicts["same_group"] == .pass && verdicts["presence"] == .pass)
        #expect(verdicts["same_network_only"] == .notApplicable)
        #expect(verdicts["target_registered"] == .info)
        #expect(diagnosis.rules.first { $0.name == .presence }?.presenceSource == .platform)
    }

    @Test func otherGroupNamesBothGroups() {
        let diagnosis = Self.diagnose("201", "203")
        #expect(diagnosis.refusalStatus == 403 && diagnosis.refusalReason == "Target In Another Group")
        let group = diagnosis.rules.first { $0.name == .sameGroup }
        #expect(group?.verdict == .fail)
        #expect(group?.detail.contains("SALES") == true && group?.detail.contains("DEFAULT") == true)
        #expect(diagnosis.summary.contains("SALES"))
        // Later rules were not reached.
        #expect(Self.verdicts(diagnosis)["presence"] == .notChecked)
    }

    @Test func presenceOffSaysWhereTheSettingComesFrom() {
        let onLine = Self.diagnose("201", "204")
        #expect(onLine.refusalReason == "Presence Disabled For Target")
        #expect(onLine.rules.first { $0.name == .presence }?.presenceSource == .line)

        var directory = Self.directory
        var accounts = directory.accounts
        accounts[0].presence = false
        directory.setAccounts(accounts, lines: directory.lines)
        let onAccount = Self.diagnose("201", "202", in: directory)
        #expect(onAccount.refusalStatus == 403)
        let rule = onAccount.rules.first { $0.name == .presence }
        #expect(rule?.verdict == .fail && rule?.presenceSource == .account)
    }

    @Test func sameNetworkOnlyComparesTheAddresses() {
        let shared = Self.diagnose(
            "301",
            "302",
            account: "lan",
            hosts: ["6495550401": ["10.0.0.1"], "6495550402": ["10.0.0.1"]]
        )
        #expect(shared.isAccepted)
        let apart = Self.diagnose(
            "301",
            "302",
            account: "lan",
            hosts: ["6495550401": ["10.0.0.1"], "6495550402": ["10.9.9.9"]]
        )
        #expect(apart.refusalReason == "Not On The Target's Network")
        let rule = apart.rules.first { $0.name == .sameNetworkOnly }
        #expect(rule?.watcherAddresses == ["10.0.0.1"] && rule?.targetAddresses == ["10.9.9.9"])
        // From the store only, the addresses are unknown: no verdict is invented.
        let storeOnly = Self.diagnose("301", "302", account: "lan", hosts: nil)
        #expect(!storeOnly.isLive && storeOnly.rules.first { $0.name == .sameNetworkOnly }?.verdict == .info)
    }

    @Test func unknownLines() {
        #expect(Self.diagnose("999", "202").refusalStatus == 404)
        #expect(Self.diagnose("201", "999").refusalReason == "Unknown Target")
        // The target is looked up like dialing: another account's number is found, then refused.
        let otherAccount = Self.diagnose("201", "6495550301")
        #expect(otherAccount.refusalReason == "Target In Another Account")
    }

    /// Only the pair's SUBSCRIBE refusals are shown, newest first, matched by extension or number.
    @Test func recentRefusalsOfThePair() {
        let mine = RefusalLogTests.refusal(2)
        var byNumber = RefusalLogTests.refusal(1)
        byNumber.watcher = "6495550201"
        byNumber.code = "bad_credentials"
        var other = RefusalLogTests.refusal(3)
        other.target = "204"
        var register = RefusalLogTests.refusal(4)
        register.method = "REGISTER"
        let diagnosis = Self.diagnose("201", "202", refusals: [register, other, mine, byNumber])
        #expect(diagnosis.recentRefusals.map(\.code) == ["other_group", "bad_credentials"])
    }

    /// The diagnosis and the admission agree for every pair of the fixture's lines.
    @Test func agreesWithTheAdmission() throws {
        let lines = Self.directory.lines
        for watcher in lines {
            for target in lines where target.accountID == watcher.accountID {
                let diagnosis = Self.diagnose(
                    watcher.extensionNumber,
                    target.extensionNumber,
                    account: watcher.accountID,
                    hosts: [:]
                )
                let refusal = Fixture.admission.checkRules(
                    target: target,
                    watcher: watcher,
                    source: SIPPeer(transport: .udp, host: Fixture.phoneIP, port: 5060),
                    registeredSourceHosts: { _ in [] }
                )
                #expect(diagnosis.refusalReason == refusal?.reasonPhrase, "\(watcher) → \(target)")
                #expect(diagnosis.refusalStatus == refusal?.statusCode, "\(watcher) → \(target)")
            }
        }
    }
}
