import BusyLampCore
import BusyLampStore
import Foundation
import SIPAuth
import Testing

@Suite("SQLite store: directory", .timeLimit(.minutes(1)))
struct SQLiteStoreDirectoryTests {
    static let yaml = """
        domain: sip.busylamp.test
        presence_default: false
        min_expires: 30
        max_expires: 7200
        trunks:
          - name: pstn
            address: 127.0.0.1:5090
            transport: udp
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
              - extension: "202"
                number: "6495550202"
                name: Bob
                password: bob-secret
          - id: globex
            lines:
              - extension: "201"
                number: "6495550301"
                password: globex-secret
        """

    static func line(_ account: String, _ extensionNumber: String, _ number: String, password: String = "pw") -> Line {
        Line(
            accountID: account,
            extensionNumber: extensionNumber,
            number: number,
            credentials: Line.credentials(number: number, realm: "sip.busylamp.test", password: password)
        )
    }

    @Test func importThenLoadRoundTrips() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url.appendingPathComponent("data"))
        #expect(try store.loadDirectory() == nil)

        let file = folder.url.appendingPathComponent("directory.yaml")
        try Self.yaml.write(to: file, atomically: true, encoding: .utf8)
        let summary = try DirectoryImporter.importFile(at: file, into: store)
        #expect(summary == DirectoryImporter.Summary(accounts: 2, lines: 3, trunks: 1))

        let loaded = try #require(try store.loadDirectory())
        #expect(loaded == (try DirectoryFile.parse(Self.yaml)))
        #expect(loaded.line(number: "6495550201")?.presence == false)
        #expect(loaded.account(id: "globex")?.presence == nil)
        #expect(try store.line(number: "6495550202")?.name == "Bob")
        #expect(try store.lines(accountID: "acme").map(\.extensionNumber) == ["201", "202"])
    }

    @Test func reimportReplacesEverything() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        try DirectoryImporter.importDirectory(try DirectoryFile.parse(Self.yaml), into: store)

        let smaller = """
            domain: other.test
            accounts:
              - id: initech
                lines:
                  - extension: "100"
                    number: "6495550201"
                    password: new-secret
            """
        try DirectoryImporter.importDirectory(try DirectoryFile.parse(smaller), into: store)
        let loaded = try #require(try store.loadDirectory())
        #expect(loaded == (try DirectoryFile.parse(smaller)))
        #expect(try store.account(id: "acme") == nil)
        #expect(try store.trunks().isEmpty)
        // The number moved to another account: the old row is gone, not duplicated.
        #expect(try store.line(number: "6495550201")?.accountID == "initech")
    }

    @Test func aRefusedFileChangesNothing() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        try DirectoryImporter.importDirectory(try DirectoryFile.parse(Self.yaml), into: store)
        let before = try store.loadDirectory()

        let bad = folder.url.appendingPathComponent("bad.yaml")
        try "domain: x.test\naccounts:\n  - id: a\n    lines:\n      - extension: 1\n".write(
            to: bad,
            atomically: true,
            encoding: .utf8
        )
        #expect(throws: DirectoryFileError.self) { try DirectoryImporter.importFile(at: bad, into: store) }
        #expect(try store.loadDirectory() == before)

        // A directory that breaks the store's own rules rolls back as a whole.
        var duplicate = try DirectoryFile.parse("domain: y.test\n")
        duplicate.setAccounts([Account(id: "a")], lines: [Self.line("a", "1", "100"), Self.line("a", "2", "100")])
        #expect(throws: DirectoryStoreError(.duplicateNumber, subject: "100")) {
            try store.replaceDirectory(with: duplicate)
        }
        #expect(try store.loadDirectory() == before)
    }

    @Test func accountsAndLinesOneAtATime() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        try store.savePlatformSettings(PlatformSettings(domain: "sip.busylamp.test"))

        try store.insertAccount(Account(id: "acme", name: "Acme"))
        #expect(throws: DirectoryStoreError(.duplicateAccount, subject: "acme")) {
            try store.insertAccount(Account(id: "acme"))
        }
        try store.updateAccount(Account(id: "acme", name: "Acme Ltd", presence: false))
        #expect(try store.account(id: "acme") == Account(id: "acme", name: "Acme Ltd", presence: false))
        #expect(throws: DirectoryStoreError(.accountNotFound, subject: "nope")) {
            try store.updateAccount(Account(id: "nope"))
        }

        try store.insertLine(Self.line("acme", "201", "6495550201"))
        try store.insertLine(Self.line("acme", "202", "6495550202"))
        #expect(throws: DirectoryStoreError(.duplicateExtension, subject: "201")) {
            try store.insertLine(Self.line("acme", "201", "6495550299"))
        }
        #expect(throws: DirectoryStoreError(.duplicateNumber, subject: "6495550201")) {
            try store.insertLine(Self.line("acme", "203", "6495550201"))
        }
        #expect(throws: DirectoryStoreError(.accountNotFound, subject: "nope")) {
            try store.insertLine(Self.line("nope", "201", "6495550999"))
        }

        var bob = Self.line("acme", "202", "6495550202", password: "changed")
        bob.group = "SALES"
        bob.presence = true
        try store.updateLine(bob)
        #expect(try store.line(accountID: "acme", extensionNumber: "202") == bob)
        bob.number = "6495550201"
        #expect(throws: DirectoryStoreError(.duplicateNumber, subject: "6495550201")) { try store.updateLine(bob) }
        #expect(throws: DirectoryStoreError(.lineNotFound, subject: "acme/299")) {
            try store.updateLine(Self.line("acme", "299", "6495550299"))
        }

        #expect(try store.deleteLine(accountID: "acme", extensionNumber: "201"))
        #expect(try !store.deleteLine(accountID: "acme", extensionNumber: "201"))
        #expect(try store.lines(accountID: "acme").map(\.extensionNumber) == ["202"])

        #expect(try store.deleteAccount(id: "acme"))
        #expect(try store.line(number: "6495550202") == nil)
        #expect(try !store.deleteAccount(id: "acme"))
        #expect(try store.accounts().isEmpty)

        let trunk = Trunk(name: "pstn", host: "127.0.0.1", port: 5090, transport: .udp)
        try store.saveTrunk(trunk)
        try store.saveTrunk(Trunk(name: "pstn", host: "127.0.0.1", port: 5091, transport: .tcp))
        #expect(try store.trunks() == [Trunk(name: "pstn", host: "127.0.0.1", port: 5091, transport: .tcp)])
        #expect(try store.deleteTrunk(name: "pstn"))
        #expect(try store.trunks().isEmpty)
    }

    @Test func directorySurvivesReopening() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let expected = try DirectoryFile.parse(Self.yaml)
        do {
            let store = try SQLiteStore.open(dataDirectory: folder.url)
            try DirectoryImporter.importDirectory(expected, into: store)
            try store.close()
        }
        let reopened = try SQLiteStore.open(dataDirectory: folder.url)
        #expect(reopened.path.hasSuffix("/busylamp.sqlite"))
        #expect(try reopened.loadDirectory() == expected)
    }

    @Test func passwordsAreNeverStored() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        try DirectoryImporter.importDirectory(try DirectoryFile.parse(Self.yaml), into: store)
        try store.updateLine(Self.line("acme", "202", "6495550202", password: "bob-new-secret"))

        let files = try folder.allBytes()
        #expect(!files.isEmpty)
        let everything = files.reduce(Data(), +)
        // The hashes are there (so the search looks at the real bytes), the passwords are not.
        let ha1 = DigestAlgorithm.md5.ha1(username: "6495550201", realm: "sip.busylamp.test", password: "alice-secret")
        #expect(everything.range(of: Data(ha1.utf8)) != nil)
        for password in ["alice-secret", "bob-secret", "bob-new-secret", "globex-secret"] {
            #expect(everything.range(of: Data(password.utf8)) == nil, "\(password) found in the database files")
        }
    }
}
