import BusyLampCore
import Foundation
import SIPAuth
import Testing

@Suite("Directory file", .timeLimit(.minutes(1)))
struct DirectoryFileTests {
    /// INTERFACE.md's example with every optional field set, some to non-defaults.
    static let complete = """
        domain: sip.busylamp.test
        presence_default: false
        min_expires: 30
        max_expires: 7200
        trunks:
          - name: pstn
            address: 127.0.0.1:5090
            transport: udp
          - name: pbx
            address: "[2001:db8::1]:5070"
            transport: tcp
        accounts:
          - id: acme
            name: Acme Ltd
            presence: true
            same_network_only: true
            pickup: { directed: "*8", group: "#88" }
            lines:
              - extension: "201"
                number: "6495550201"
                name: Alice
                password: alice-secret
                group: SALES
                presence: false
              - extension: 202
                number: 6495550202
                name: Bob
                password: bob-secret
          - id: globex
            lines:
              - extension: "201"
                number: "6495550301"
                password: x
        """

    @Test func loadsEveryField() throws {
        let directory = try DirectoryFile.parse(Self.complete)

        #expect(
            directory.platform
                == PlatformSettings(
                    domain: "sip.busylamp.test",
                    presenceDefault: false,
                    minimumExpires: 30,
                    maximumExpires: 7200
                )
        )
        #expect(
            directory.trunks == [
                Trunk(name: "pstn", host: "127.0.0.1", port: 5090, transport: .udp),
                Trunk(name: "pbx", host: "2001:db8::1", port: 5070, transport: .tcp),
            ]
        )
        #expect(
            directory.accounts == [
                Account(
                    id: "acme",
                    name: "Acme Ltd",
                    presence: true,
                    sameNetworkOnly: true,
                    pickup: PickupCodes(directed: "*8", group: "#88")
                ),
                Account(
                    id: "globex",
                    name: "",
                    presence: nil,
                    sameNetworkOnly: false,
                    pickup: PickupCodes(directed: "*89", group: "*88")
                ),
            ]
        )

        let alice = try #require(directory.line(accountID: "acme", extensionNumber: "201"))
        #expect(alice.number == "6495550201")
        #expect(alice.name == "Alice")
        #expect(alice.group == "SALES")
        #expect(alice.presence == false)
        // RFC 7616 §3.4.2: HA1 = H(username ":" realm ":" password), user name = number, realm = domain.
        #expect(
            alice.credentials[.md5]
                == DigestAlgorithm.md5.ha1(username: "6495550201", realm: "sip.busylamp.test", password: "alice-secret")
        )
        #expect(
            alice.credentials[.sha256]
                == DigestAlgorithm.sha256.ha1(
                    username: "6495550201",
                    realm: "sip.busylamp.test",
                    password: "alice-secret"
                )
        )

        // Unquoted numbers are read as the digits written.
        let bob = try #require(directory.line(number: "6495550202"))
        #expect(bob.extensionNumber == "202")
        #expect(bob.group == Line.defaultGroup)
        #expect(bob.presence == nil)

        // Extensions are per account: 201 exists in both.
        #expect(directory.line(accountID: "globex", extensionNumber: "201")?.number == "6495550301")
        #expect(directory.lines(accountID: "acme").map(\.extensionNumber) == ["201", "202"])
    }

    @Test func neverKeepsThePassword() throws {
        let directory = try DirectoryFile.parse(Self.complete)
        var dump = ""
        Swift.dump(directory, to: &dump)  // every stored field, reflected
        #expect(
            dump.contains(
                DigestAlgorithm.md5.ha1(username: "6495550201", realm: "sip.busylamp.test", password: "alice-secret")
            )
        )
        #expect(!dump.contains("alice-secret"))
        #expect(!dump.contains("bob-secret"))
    }

    @Test func appliesDefaults() throws {
        let directory = try DirectoryFile.parse("domain: example.org\n")
        #expect(
            directory.platform
                == PlatformSettings(
                    domain: "example.org",
                    presenceDefault: true,
                    minimumExpires: 60,
                    maximumExpires: 3600
                )
        )
        #expect(directory.accounts.isEmpty)
        #expect(directory.lines.isEmpty)
        #expect(directory.trunks.isEmpty)
    }

    @Test func nullMeansUnset() throws {
        let yaml = "domain: a.test\npresence_default:\naccounts:\n  - id: acme\n    presence: ~\n    lines:\n"
        let directory = try DirectoryFile.parse(yaml)
        #expect(directory.platform.presenceDefault == PlatformSettings.defaultPresence)
        #expect(directory.account(id: "acme")?.presence == nil)
    }

    @Test func loadsFromAFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("busylamp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("office.yaml")
        try Self.complete.write(to: url, atomically: true, encoding: .utf8)
        #expect(try DirectoryFile.load(contentsOf: url) == DirectoryFile.parse(Self.complete))

        let bad = folder.appendingPathComponent("bad.yaml")
        try "domain: a.test\nfoo: 1\n".write(to: bad, atomically: true, encoding: .utf8)
        let error = #expect(throws: DirectoryFileError.self) { try DirectoryFile.load(contentsOf: bad) }
        #expect(error?.file == "bad.yaml")
        #expect(error?.line == 2)
        #expect(error.map { "\($0)" }?.hasPrefix("bad.yaml:2: unknown key \"foo\"") == true)
    }

    @Test func missingFileIsAnError() {
        let url = URL(fileURLWithPath: "/nonexistent/busylamp/directory.yaml")
        let error = #expect(throws: DirectoryFileError.self) { try DirectoryFile.load(contentsOf: url) }
        #expect(error?.line == nil)
        #expect(error?.problem.hasPrefix("cannot read the file") == true)
    }

    /// A refused file: the YAML, the line the error must name, and the start of its message.
    struct Refusal: Sendable, CustomTestStringConvertible {
        var name: String
        var yaml: String
        var line: Int?
        var message: String
        var testDescription: String { name }
    }

    static let account = """
        domain: sip.busylamp.test
        accounts:
          - id: acme
            lines:
              - extension: "201"
                number: "6495550201"
                password: a

        """

    static let refusals: [Refusal] = [
        Refusal(name: "empty file", yaml: "", line: nil, message: "the file is empty"),
        Refusal(name: "not a mapping", yaml: "- a\n- b\n", line: 1, message: "expected a mapping"),
        Refusal(name: "bad YAML", yaml: "domain: [a\n", line: 2, message: "not valid YAML"),
        Refusal(
            name: "duplicate key",
            yaml: "domain: a.test\ndomain: b.test\n",
            line: 1,
            message: "duplicate key \"domain\""
        ),
        Refusal(name: "missing domain", yaml: "min_expires: 60\n", line: 1, message: "missing \"domain\""),
        Refusal(name: "null domain", yaml: "domain: ~\nmin_expires: 60\n", line: 1, message: "missing \"domain\""),
        Refusal(
            name: "empty domain",
            yaml: "domain: \"\"\n",
            line: 1,
            message: "\"domain\" must be a host name or IP address"
        ),
        Refusal(
            name: "unknown top key",
            yaml: "domain: a.test\npresense_default: true\n",
            line: 2,
            message: "unknown key \"presense_default\""
        ),
        Refusal(
            name: "non-boolean presence_default",
            yaml: "domain: a.test\npresence_default: maybe\n",
            line: 2,
            message: "\"presence_default\" must be true or false, not \"maybe\""
        ),
        Refusal(
            name: "quoted boolean",
            yaml: "domain: a.test\npresence_default: \"true\"\n",
            line: 2,
            message: "\"presence_default\" must be true or false"
        ),
        Refusal(
            name: "non-numeric min_expires",
            yaml: "domain: a.test\nmin_expires: soon\n",
            line: 2,
            message: "\"min_expires\" must be a whole number, not negative, not \"soon\""
        ),
        Refusal(
            name: "negative min_expires",
            yaml: "domain: a.test\nmin_expires: -5\n",
            line: 2,
            message: "\"min_expires\" must be a whole number, not negative, not \"-5\""
        ),
        Refusal(
            name: "zero max_expires",
            yaml: "domain: a.test\nmin_expires: 0\nmax_expires: 0\n",
            line: 3,
            message: "\"max_expires\" must be a positive whole number"
        ),
        Refusal(
            name: "min above max",
            yaml: "domain: a.test\nmin_expires: 4000\nmax_expires: 3600\n",
            line: 2,
            message: "min_expires (4000) is greater than max_expires (3600)"
        ),
        Refusal(
            name: "trunks not a list",
            yaml: "domain: a.test\ntrunks: pstn\n",
            line: 2,
            message: "\"trunks\" must be a list"
        ),
        Refusal(
            name: "trunk without name",
            yaml: "domain: a.test\ntrunks:\n  - address: 127.0.0.1:5060\n",
            line: 3,
            message: "trunk: missing \"name\""
        ),
        Refusal(
            name: "trunk without address",
            yaml: "domain: a.test\ntrunks:\n  - name: pstn\n",
            line: 3,
            message: "trunk pstn: missing \"address\""
        ),
        Refusal(
            name: "trunk address without port",
            yaml: "domain: a.test\ntrunks:\n  - name: pstn\n    address: 127.0.0.1\n",
            line: 4,
            message: "trunk pstn: bad address \"127.0.0.1\""
        ),
        Refusal(
            name: "trunk port out of range",
            yaml: "domain: a.test\ntrunks:\n  - name: pstn\n    address: 127.0.0.1:70000\n",
            line: 4,
            message: "trunk pstn: bad address \"127.0.0.1:70000\""
        ),
        Refusal(
            name: "trunk host name",
            yaml: "domain: a.test\ntrunks:\n  - name: pstn\n    address: carrier.example:5060\n",
            line: 4,
            message: "trunk pstn: bad address \"carrier.example:5060\""
        ),
        Refusal(
            name: "trunk transport",
            yaml: "domain: a.test\ntrunks:\n  - name: pstn\n    address: 127.0.0.1:5060\n    transport: sctp\n",
            line: 5,
            message: "trunk pstn: \"transport\" must be udp or tcp, not \"sctp\""
        ),
        Refusal(
            name: "trunk unknown key",
            yaml: "domain: a.test\ntrunks:\n  - name: pstn\n    adress: 127.0.0.1:5060\n",
            line: 4,
            message: "trunk pstn: unknown key \"adress\""
        ),
        Refusal(
            name: "duplicate trunk",
            yaml:
                "domain: a.test\ntrunks:\n  - name: pstn\n    address: 127.0.0.1:5060\n  - name: pstn\n    address: 127.0.0.2:5060\n",
            line: 5,
            message: "duplicate trunk name \"pstn\" (first on line 3)"
        ),
        Refusal(
            name: "unnamed trunk unknown key",
            yaml: "domain: a.test\ntrunks:\n  - adress: 127.0.0.1:5060\n",
            line: 3,
            message: "trunk: unknown key \"adress\""
        ),
        Refusal(
            name: "account without id",
            yaml: "domain: a.test\naccounts:\n  - name: Acme\n",
            line: 3,
            message: "account: missing \"id\""
        ),
        Refusal(
            name: "account unknown key",
            yaml: "domain: a.test\naccounts:\n  - id: acme\n    colour: red\n",
            line: 4,
            message: "account acme: unknown key \"colour\""
        ),
        Refusal(
            name: "account presence",
            yaml: "domain: a.test\naccounts:\n  - id: acme\n    presence: 1\n",
            line: 4,
            message: "account acme: \"presence\" must be true or false, not \"1\""
        ),
        Refusal(
            name: "duplicate account",
            yaml: "domain: a.test\naccounts:\n  - id: acme\n  - id: globex\n  - id: acme\n",
            line: 5,
            message: "duplicate account id \"acme\" (first on line 3)"
        ),
        Refusal(
            name: "pickup unknown key",
            yaml: "domain: a.test\naccounts:\n  - id: acme\n    pickup:\n      direct: \"*89\"\n",
            line: 5,
            message: "account acme: pickup: unknown key \"direct\""
        ),
        Refusal(
            name: "pickup code",
            yaml: "domain: a.test\naccounts:\n  - id: acme\n    pickup: { group: \"pick\" }\n",
            line: 4,
            message: "account acme: pickup: \"group\" must be a keypad code"
        ),
        Refusal(
            name: "lines not a list",
            yaml: "domain: a.test\naccounts:\n  - id: acme\n    lines: {}\n",
            line: 4,
            message: "account acme: \"lines\" must be a list"
        ),
        Refusal(
            name: "line without extension",
            yaml: account + "      - number: \"6495550202\"\n        password: b\n",
            line: 8,
            message: "account acme: line #2: missing \"extension\""
        ),
        Refusal(
            name: "line without number",
            yaml: account + "      - extension: \"202\"\n        password: b\n",
            line: 8,
            message: "line 202: missing \"number\""
        ),
        Refusal(
            name: "line without password",
            yaml: account + "      - extension: \"202\"\n        number: \"6495550202\"\n",
            line: 8,
            message: "line 202: missing \"password\""
        ),
        Refusal(
            name: "empty password",
            yaml: account + "      - extension: \"202\"\n        number: \"6495550202\"\n        password: \"\"\n",
            line: 10,
            message: "line 202: \"password\" must not be empty"
        ),
        Refusal(
            name: "extension not digits",
            yaml: account + "      - extension: \"20a\"\n        number: \"6495550202\"\n        password: b\n",
            line: 8,
            message: "account acme: line #2: \"extension\" must be digits, not \"20a\""
        ),
        Refusal(
            name: "empty extension",
            yaml: account + "      - extension: \"\"\n        number: \"6495550202\"\n        password: b\n",
            line: 8,
            message: "account acme: line #2: \"extension\" must be digits, not \"\""
        ),
        Refusal(
            name: "number not digits",
            yaml: account + "      - extension: \"202\"\n        number: \"+64 9 555\"\n        password: b\n",
            line: 9,
            message: "line 202: \"number\" must be digits, not \"+64 9 555\""
        ),
        Refusal(
            name: "line presence",
            yaml: account
                + "      - extension: \"202\"\n        number: \"6495550202\"\n        password: b\n        presence: sometimes\n",
            line: 11,
            message: "line 202: \"presence\" must be true or false, not \"sometimes\""
        ),
        Refusal(
            name: "empty group",
            yaml: account
                + "      - extension: \"202\"\n        number: \"6495550202\"\n        password: b\n        group: \"\"\n",
            line: 11,
            message: "line 202: \"group\" must not be empty"
        ),
        Refusal(
            name: "line unknown key",
            yaml: account + "      - extension: \"202\"\n        number: \"6495550202\"\n        pasword: b\n",
            line: 10,
            message: "line 202: unknown key \"pasword\""
        ),
        Refusal(
            name: "duplicate extension",
            yaml: account + "      - extension: \"201\"\n        number: \"6495550202\"\n        password: b\n",
            line: 8,
            message: "line 201: duplicate extension \"201\" in account acme"
        ),
        Refusal(
            name: "duplicate number across accounts",
            yaml: account
                + "  - id: globex\n    lines:\n      - extension: \"301\"\n        number: \"6495550201\"\n        password: b\n",
            line: 11,
            message: "line 301: duplicate number \"6495550201\" (already line 201 of account acme)"
        ),
    ]

    @Test(arguments: refusals)
    func refuses(_ refusal: Refusal) {
        let error = #expect(throws: DirectoryFileError.self) {
            try DirectoryFile.parse(refusal.yaml, fileName: "directory.yaml")
        }
        #expect(error?.file == "directory.yaml")
        #expect(error?.line == refusal.line, "\(error.map { "\($0)" } ?? "no error")")
        #expect(error?.problem.hasPrefix(refusal.message) == true, "\(error.map { "\($0)" } ?? "no error")")
    }

    @Test func errorNamesFileLineAndProblem() {
        let yaml = Self.account + "      - extension: \"201\"\n        number: \"6495550202\"\n        password: b\n"
        let error = #expect(throws: DirectoryFileError.self) {
            try DirectoryFile.parse(yaml, fileName: "directory.yaml")
        }
        #expect(error.map { "\($0)" } == "directory.yaml:8: line 201: duplicate extension \"201\" in account acme")
    }
}
