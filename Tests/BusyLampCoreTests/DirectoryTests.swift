import BusyLampCore
import SIPAuth
import SIPTransactions
import Testing

@Suite("Directory", .timeLimit(.minutes(1)))
struct DirectoryTests {
    static func line(_ account: String, _ extensionNumber: String, _ number: String, presence: Bool? = nil) -> Line {
        Line(
            accountID: account,
            extensionNumber: extensionNumber,
            number: number,
            presence: presence,
            credentials: Line.credentials(number: number, realm: "sip.busylamp.test", password: "pw-\(number)")
        )
    }

    static let directory = Directory(
        platform: PlatformSettings(domain: "sip.busylamp.test", presenceDefault: false),
        accounts: [Account(id: "acme", presence: true), Account(id: "globex")],
        lines: [
            line("acme", "201", "6495550201"),
            line("acme", "202", "6495550202", presence: false),
            line("globex", "201", "6495550301"),
        ],
        trunks: [
            Trunk(name: "pstn", host: "192.0.2.10", port: 5060, transport: .udp),
            Trunk(name: "pbx", host: "192.0.2.20", port: 5060, transport: .tcp),
        ]
    )

    @Test func findsLinesByNumberAndByExtension() {
        let directory = Self.directory
        #expect(directory.line(number: "6495550202")?.extensionNumber == "202")
        #expect(directory.line(number: "6495550301")?.accountID == "globex")
        #expect(directory.line(number: "201") == nil)
        #expect(directory.line(accountID: "acme", extensionNumber: "201")?.number == "6495550201")
        #expect(directory.line(accountID: "globex", extensionNumber: "201")?.number == "6495550301")
        #expect(directory.line(accountID: "globex", extensionNumber: "202") == nil)
        #expect(directory.account(id: "globex")?.id == "globex")
        #expect(directory.account(id: "initech") == nil)
    }

    @Test(
        arguments: [
            (SIPPeer(transport: .udp, host: "192.0.2.10", port: 5060), "pstn"),
            (SIPPeer(transport: .udp, host: "192.0.2.10", port: 5061), nil),
            (SIPPeer(transport: .tcp, host: "192.0.2.10", port: 5060), nil),
            // A TCP peer connects from an ephemeral port: the host is enough.
            (SIPPeer(transport: .tcp, host: "192.0.2.20", port: 40123, connectionID: 7), "pbx"),
            (SIPPeer(transport: .udp, host: "192.0.2.20", port: 5060), nil),
            (SIPPeer(transport: .udp, host: "198.51.100.1", port: 5060), nil),
        ] as [(SIPPeer, String?)]
    )
    func findsTrunkBySourceAddress(peer: SIPPeer, trunk: String?) {
        #expect(Self.directory.trunk(from: peer)?.name == trunk)
    }

    @Test func presenceFallsBackFromLineToAccountToPlatform() throws {
        let directory = Self.directory
        let alice = try #require(directory.line(number: "6495550201"))
        let bob = try #require(directory.line(number: "6495550202"))
        let globex = try #require(directory.line(number: "6495550301"))
        #expect(directory.showsPresence(alice))  // acme says true
        #expect(!directory.showsPresence(bob))  // the line says false
        #expect(!directory.showsPresence(globex))  // globex unset, platform default false
    }

    @Test func credentialsAreHA1PerAlgorithm() {
        let credentials = Line.credentials(number: "6495550201", realm: "sip.busylamp.test", password: "alice-secret")
        #expect(Set(credentials.keys) == Set(DigestAlgorithm.allCases))
        for algorithm in DigestAlgorithm.allCases {
            #expect(credentials[algorithm]?.count == algorithm.hexLength)
            #expect(credentials[algorithm] == algorithm.hash("6495550201:sip.busylamp.test:alice-secret"))
        }
    }

    @Test func descriptionDoesNotShowCredentials() {
        let alice = Self.line("acme", "201", "6495550201")
        #expect("\(alice)" == "line acme/201 (6495550201)")
    }

    @Test func replacingAccountsReindexes() {
        var directory = Self.directory
        directory.setAccounts([Account(id: "acme")], lines: [Self.line("acme", "205", "6495550205")])
        #expect(directory.line(number: "6495550201") == nil)
        #expect(directory.line(accountID: "acme", extensionNumber: "205")?.number == "6495550205")
        #expect(directory.account(id: "globex") == nil)
    }
}

extension DirectoryTests {
    @Test func descriptionSummarises() {
        #expect("\(Self.directory)" == "directory sip.busylamp.test: 2 accounts, 3 lines, 2 trunks")
    }
}
