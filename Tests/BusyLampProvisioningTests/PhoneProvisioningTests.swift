import BusyLampCore
import BusyLampProvisioning
import Foundation
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

// MARK: - The directory the tests provision from

/// Acme: Alice (201) is provisioned. Bob and O'Neil are the colleagues she may watch; Carol is in
/// another group, Dave has presence off, and Zed has the same group in another account.
/// Beta: presence off for the account, so only Bea (presence on for her line) may be watched.
private enum Fixture {
    static let domain = "sip.busylamp.test"

    static let alice = line("acme", "201", "6495550201", "Alice")
    static let bob = line("acme", "202", "6495550202", "Bob")
    static let oNeil = line("acme", "203", "6495550203", "O'Neil & <Co>")
    static let carol = line("acme", "204", "6495550204", "Carol", group: "SALES")
    static let dave = line("acme", "205", "6495550205", "Dave", presence: false)
    static let zed = line("zeta", "901", "6495550901", "Zed")
    static let bella = line("beta", "301", "6495550301", "Bella")
    static let ben = line("beta", "302", "6495550302", "Ben")
    static let bea = line("beta", "303", "6495550303", "Bea", presence: true)

    static func line(
        _ account: String,
        _ extensionNumber: String,
        _ number: String,
        _ name: String,
        group: String = Line.defaultGroup,
        presence: Bool? = nil
    ) -> Line {
        Line(
            accountID: account,
            extensionNumber: extensionNumber,
            number: number,
            name: name,
            group: group,
            presence: presence,
            credentials: [:]
        )
    }

    static func directory(platform: PlatformSettings = PlatformSettings(domain: domain)) -> Directory {
        var directory = Directory(platform: platform)
        directory.setAccounts(
            [
                Account(id: "acme", name: "Acme Ltd"),
                Account(id: "zeta", name: "Zeta"),
                Account(id: "beta", name: "Beta", presence: false, pickup: PickupCodes(directed: "*97", group: "*8")),
            ],
            lines: [alice, bob, oNeil, carol, dave, zed, bella, ben, bea]
        )
        return directory
    }

    /// An account with Alice and `count` colleagues (numbers 6495551001, 6495551002, …), to fill every key.
    static func crowdedDirectory(colleagues count: Int) -> Directory {
        var directory = Directory(platform: PlatformSettings(domain: domain))
        let colleagues = (1...count).map { index in
            line("acme", String(300 + index), "649555\(1000 + index)", "Colleague \(index)")
        }
        directory.setAccounts([Account(id: "acme")], lines: [alice] + colleagues)
        return directory
    }
}

// MARK: - Reading what we wrote

/// `key = value` settings of a Yealink .cfg, and the raw lines (to check what is not there).
private struct YealinkConfig {
    var lines: [String]
    var settings: [String: String]

    init(_ body: String) {
        lines = body.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        settings = [:]
        for line in lines where !line.hasPrefix("#") && !line.isEmpty {
            guard let equals = line.range(of: " = ") else { continue }
            settings[String(line[..<equals.lowerBound])] = String(line[equals.upperBound...])
        }
    }
}

private func parseXML(_ body: String) throws -> XMLElement {
    let document = try XMLDocument(xmlString: body, options: [])
    return try #require(document.rootElement())
}

private func childText(_ element: XMLElement, _ name: String) -> String? {
    element.elements(forName: name).first?.stringValue
}

// MARK: - Who gets a key

@Suite(.timeLimit(.minutes(1))) struct ColleagueTests {
    @Test func onlySameAccountSameGroupPresenceOnColleaguesInDirectoryOrder() {
        let directory = Fixture.directory()
        #expect(PhoneProvisioning.colleagues(of: Fixture.alice, in: directory) == [Fixture.bob, Fixture.oNeil])
    }

    @Test func lineAloneInItsGroupWatchesNobody() {
        #expect(PhoneProvisioning.colleagues(of: Fixture.carol, in: Fixture.directory()).isEmpty)
    }

    @Test func accountPresenceOffLeavesOnlyLinesThatTurnItOn() {
        // Ben inherits the account's "off"; Bea turns presence on for her line.
        #expect(PhoneProvisioning.colleagues(of: Fixture.bella, in: Fixture.directory()) == [Fixture.bea])
    }

    @Test func platformPresenceOffLeavesNobody() {
        let directory = Fixture.directory(platform: PlatformSettings(domain: Fixture.domain, presenceDefault: false))
        #expect(PhoneProvisioning.colleagues(of: Fixture.alice, in: directory).isEmpty)
    }

    @Test(arguments: PhoneVendor.allCases)
    func refusedTargetsAppearInNoDocument(vendor: PhoneVendor) {
        let directory = Fixture.directory()
        let body = PhoneProvisioning.render(vendor, for: Fixture.alice, in: directory).body
        #expect(body.contains(Fixture.bob.number))
        #expect(body.contains(Fixture.oNeil.number))
        for refused in [Fixture.alice, Fixture.carol, Fixture.dave, Fixture.zed] {
            #expect(!body.contains(refused.number), "\(vendor) has a key for \(refused)")
        }
        let beta = PhoneProvisioning.render(vendor, for: Fixture.bella, in: directory).body
        #expect(beta.contains(Fixture.bea.number))
        #expect(!beta.contains(Fixture.ben.number), "\(vendor) has a key for \(Fixture.ben)")
    }
}

// MARK: - Yealink

@Suite(.timeLimit(.minutes(1))) struct YealinkProvisioningTests {
    @Test func dssKeysAreBLFWithNumberAndDirectedPickupCodeAsTheSeedSays() throws {
        let document = PhoneProvisioning.render(.yealink, for: Fixture.alice, in: Fixture.directory())
        let config = YealinkConfig(document.body)

        #expect(config.lines.first == "#!version:1.0.0.1")
        #expect(document.contentType == "text/plain; charset=utf-8")
        #expect(document.fileName == "yealink-acme-201.cfg")

        // Line key 1 stays Alice's own line.
        #expect(config.settings["linekey.1.type"] == nil)
        #expect(config.settings["linekey.2.type"] == "16")
        #expect(config.settings["linekey.2.line"] == "1")
        #expect(config.settings["linekey.2.value"] == "6495550202")
        #expect(config.settings["linekey.2.extension"] == "*89")
        #expect(config.settings["linekey.2.pickup_value"] == "*89")
        #expect(config.settings["linekey.2.label"] == "Bob")
        #expect(config.settings["linekey.3.type"] == "16")
        #expect(config.settings["linekey.3.value"] == "6495550203")
        #expect(config.settings["linekey.3.label"] == "O'Neil & <Co>")
        #expect(config.settings["linekey.4.type"] == nil)

        #expect(config.settings["account.1.blf.subscribe_period"] == "600")
        #expect(config.settings["account.1.blf.subscribe_event"] == "0")
        #expect(config.settings["account.1.dialoginfo_callpickup"] == "0")
        #expect(config.settings["account.1.direct_pickup_code"] == "*89")
        #expect(config.settings["features.pickup.direct_pickup_code"] == "*89")
        #expect(config.settings["features.pickup.group_pickup_code"] == "*88")
    }

    @Test func usesTheAccountsOwnPickupCodes() {
        let config = YealinkConfig(PhoneProvisioning.render(.yealink, for: Fixture.bella, in: Fixture.directory()).body)
        #expect(config.settings["linekey.2.value"] == "6495550303")
        #expect(config.settings["linekey.2.extension"] == "*97")
        #expect(config.settings["features.pickup.direct_pickup_code"] == "*97")
        #expect(config.settings["features.pickup.group_pickup_code"] == "*8")
        #expect(config.settings["linekey.3.type"] == nil)
    }

    @Test func aNameCannotAddSettings() {
        var directory = Fixture.directory()
        let sneaky = Fixture.line("acme", "209", "6495550209", "Eve\nlinekey.9.type = 16\r\u{7}\u{2028}x")
        directory.setAccounts(directory.accounts, lines: [Fixture.alice, sneaky])
        let config = YealinkConfig(PhoneProvisioning.render(.yealink, for: Fixture.alice, in: directory).body)
        #expect(config.settings["linekey.9.type"] == nil)
        #expect(config.settings["linekey.2.label"] == "Eve linekey.9.type = 16 x")
        #expect(!config.lines.contains { $0.hasPrefix("linekey.9") })
    }

    @Test func overflowGoesToExpansionModules() {
        let directory = Fixture.crowdedDirectory(colleagues: 30)
        let config = YealinkConfig(PhoneProvisioning.render(.yealink, for: Fixture.alice, in: directory).body)
        #expect(config.settings["linekey.27.label"] == "Colleague 26")
        #expect(config.settings["linekey.28.type"] == nil)
        #expect(config.settings["expansion_module.1.key.1.type"] == "16")
        #expect(config.settings["expansion_module.1.key.1.value"] == "6495551027")
        #expect(config.settings["expansion_module.1.key.4.label"] == "Colleague 30")
        #expect(config.settings["expansion_module.1.key.5.type"] == nil)
    }
}

// MARK: - Polycom

@Suite(.timeLimit(.minutes(1))) struct PolycomProvisioningTests {
    @Test func contactDirectoryWatchesEveryColleague() throws {
        let document = PhoneProvisioning.render(.polycom, for: Fixture.alice, in: Fixture.directory())
        #expect(document.contentType == "application/xml; charset=utf-8")
        #expect(document.fileName == "polycom-acme-201-directory.xml")

        let root = try parseXML(document.body)
        #expect(root.name == "directory")
        let items = try #require(root.elements(forName: "item_list").first).elements(forName: "item")
        #expect(items.count == 2)

        #expect(childText(items[0], "ct") == "6495550202")
        #expect(childText(items[0], "fn") == "Bob")
        #expect(childText(items[0], "lb") == "Bob")
        #expect(childText(items[0], "sd") == "1")
        #expect(childText(items[0], "pt") == "SIP")
        #expect(childText(items[0], "bw") == "1")
        #expect(childText(items[0], "bb") == "0")

        #expect(childText(items[1], "ct") == "6495550203")
        #expect(childText(items[1], "lb") == "O'Neil & <Co>")
        #expect(childText(items[1], "fn") == "O'Neil")
        #expect(childText(items[1], "ln") == "& <Co>")
        #expect(childText(items[1], "sd") == "2")
        #expect(childText(items[1], "bw") == "1")
        #expect(document.body.contains("O&apos;Neil &amp; &lt;Co&gt;"))
    }

    @Test func namesAreCutToFortyBytesOnACharacterBoundary() throws {
        var directory = Fixture.directory()
        let long = Fixture.line("acme", "209", "6495550209", String(repeating: "é", count: 30))
        directory.setAccounts(directory.accounts, lines: [Fixture.alice, long])
        let root = try parseXML(PhoneProvisioning.render(.polycom, for: Fixture.alice, in: directory).body)
        let item = try #require(root.elements(forName: "item_list").first?.elements(forName: "item").first)
        let label = try #require(childText(item, "lb"))
        #expect(label == String(repeating: "é", count: 20))
        #expect(label.utf8.count == 40)
    }
}

// MARK: - Cisco SPA

@Suite(.timeLimit(.minutes(1))) struct CiscoProvisioningTests {
    @Test func extendedFunctionsAndAttendantConsoleAsTheSeedsSay() throws {
        let document = PhoneProvisioning.render(.cisco, for: Fixture.alice, in: Fixture.directory())
        #expect(document.contentType == "application/xml; charset=utf-8")
        #expect(document.fileName == "cisco-acme-201.xml")

        let root = try parseXML(document.body)
        #expect(root.name == "flat-profile")
        #expect(childText(root, "Server_Type") == "Asterisk")
        #expect(childText(root, "Subscribe_Expires") == "600")
        #expect(childText(root, "Subscribe_Retry_Interval") == "30")
        #expect(childText(root, "Attendant_Console_Call_Pickup_Code") == "*88")

        #expect(childText(root, "Extension_2_") == "Disabled")
        #expect(childText(root, "Short_Name_2_") == "Bob")
        #expect(
            childText(root, "Extended_Function_2_")
                == "fnc=blf+sd+cp;sub=6495550202@sip.busylamp.test;usr=6495550202;nme=Bob"
        )
        #expect(childText(root, "Short_Name_3_") == "O'Neil & <Co>")
        #expect(
            childText(root, "Extended_Function_3_")
                == "fnc=blf+sd+cp;sub=6495550203@sip.busylamp.test;usr=6495550203;nme=O'Neil & <Co>"
        )
        #expect(root.elements(forName: "Extended_Function_4_").isEmpty)
        #expect(root.elements(forName: "Extension_1_").isEmpty)
        #expect(root.elements(forName: "Unit_1_Enable").isEmpty)
    }

    @Test func groupPickupCodeIsTheAccounts() throws {
        let root = try parseXML(PhoneProvisioning.render(.cisco, for: Fixture.bella, in: Fixture.directory()).body)
        #expect(childText(root, "Attendant_Console_Call_Pickup_Code") == "*8")
    }

    @Test func subscriptionsGoToTheServerPhonesRegisterTo() throws {
        let document = PhoneProvisioning.render(
            .cisco,
            for: Fixture.alice,
            in: Fixture.directory(),
            server: "203.0.113.10:5060"
        )
        let root = try parseXML(document.body)
        #expect(
            childText(root, "Extended_Function_2_")
                == "fnc=blf+sd+cp;sub=6495550202@203.0.113.10:5060;usr=6495550202;nme=Bob"
        )
    }

    @Test(arguments: ["evil;nme=x", "host name", "a\nb", "", "  "])
    func aServerThatIsNotAHostFallsBackToTheDomain(server: String) throws {
        let document = PhoneProvisioning.render(.cisco, for: Fixture.alice, in: Fixture.directory(), server: server)
        let root = try parseXML(document.body)
        #expect(
            childText(root, "Extended_Function_2_")
                == "fnc=blf+sd+cp;sub=6495550202@sip.busylamp.test;usr=6495550202;nme=Bob"
        )
    }

    @Test func aNameCannotAddExtendedFunctionFields() throws {
        var directory = Fixture.directory()
        let sneaky = Fixture.line("acme", "209", "6495550209", "Eve;sub=1@evil=x")
        directory.setAccounts(directory.accounts, lines: [Fixture.alice, sneaky])
        let root = try parseXML(PhoneProvisioning.render(.cisco, for: Fixture.alice, in: directory).body)
        #expect(
            childText(root, "Extended_Function_2_")
                == "fnc=blf+sd+cp;sub=6495550209@sip.busylamp.test;usr=6495550209;nme=Evesub1@evilx"
        )
    }

    @Test func overflowGoesToTheAttendantConsoles() throws {
        let directory = Fixture.crowdedDirectory(colleagues: 70)
        let document = PhoneProvisioning.render(.cisco, for: Fixture.alice, in: directory)
        let root = try parseXML(document.body)
        #expect(childText(root, "Extended_Function_4_")?.hasPrefix("fnc=blf+sd+cp;sub=6495551003@") == true)
        #expect(childText(root, "Unit_1_Enable") == "Yes")
        #expect(childText(root, "Unit_1_Key_1")?.hasPrefix("fnc=blf+sd+cp;sub=6495551004@") == true)
        #expect(childText(root, "Unit_1_Key_32")?.hasSuffix(";nme=Colleague 35") == true)
        #expect(childText(root, "Unit_2_Enable") == "Yes")
        #expect(childText(root, "Unit_2_Key_32")?.hasSuffix(";nme=Colleague 67") == true)
        // Colleagues 68 to 70 have no position left: the file says so instead of hiding it.
        #expect(!document.body.contains("6495551068"))
        #expect(document.body.contains("3 more colleagues did not fit"))
    }
}

// MARK: - snom

@Suite(.timeLimit(.minutes(1))) struct SnomProvisioningTests {
    @Test func functionKeysAreBLFWithPickupPrefix() throws {
        let document = PhoneProvisioning.render(.snom, for: Fixture.alice, in: Fixture.directory())
        #expect(document.contentType == "application/xml; charset=utf-8")
        #expect(document.fileName == "snom-acme-201.xml")

        let root = try parseXML(document.body)
        #expect(root.name == "settings")
        let keys = try #require(root.elements(forName: "functionKeys").first).elements(forName: "fkey")
        #expect(keys.count == 2)

        #expect(keys[0].attribute(forName: "idx")?.stringValue == "1")
        #expect(keys[0].attribute(forName: "context")?.stringValue == "active")
        #expect(keys[0].attribute(forName: "perm")?.stringValue == "")
        #expect(keys[0].attribute(forName: "label")?.stringValue == "Bob")
        #expect(keys[0].stringValue == "blf <sip:6495550202@sip.busylamp.test>|*89")

        #expect(keys[1].attribute(forName: "idx")?.stringValue == "2")
        #expect(keys[1].attribute(forName: "label")?.stringValue == "O'Neil & <Co>")
        #expect(keys[1].stringValue == "blf <sip:6495550203@sip.busylamp.test>|*89")
        #expect(document.body.contains("blf &lt;sip:6495550202@sip.busylamp.test&gt;|*89"))
    }

    @Test func keysSubscribeAtTheServerWithTheAccountsCode() throws {
        let document = PhoneProvisioning.render(.snom, for: Fixture.bella, in: Fixture.directory(), server: "192.0.2.7")
        let root = try parseXML(document.body)
        let key = try #require(root.elements(forName: "functionKeys").first?.elements(forName: "fkey").first)
        #expect(key.stringValue == "blf <sip:6495550303@192.0.2.7>|*97")
    }
}

// MARK: - Every vendor

@Suite(.timeLimit(.minutes(1))) struct EveryVendorTests {
    @Test(arguments: [PhoneVendor.polycom, .cisco, .snom])
    func hostileNamesStillGiveWellFormedXMLWithTheirText(vendor: PhoneVendor) throws {
        var directory = Fixture.directory()
        let hostile = Fixture.line("acme", "209", "6495550209", "A & B <x> \"q\" 'a' ]]> -- \u{0}\u{7}\u{1B}\nZ")
        directory.setAccounts(directory.accounts, lines: [Fixture.alice, hostile])
        let body = PhoneProvisioning.render(vendor, for: Fixture.alice, in: directory).body
        let root = try parseXML(body)
        let label = "A & B <x> \"q\" 'a' ]]> -- Z"
        let texts: [String?]
        switch vendor {
        case .polycom:
            texts = [
                root.elements(forName: "item_list").first?.elements(forName: "item").first.flatMap {
                    childText($0, "lb")
                }
            ]
        case .cisco:
            texts = [childText(root, "Short_Name_2_")]
        case .snom:
            texts = [
                root.elements(forName: "functionKeys").first?.elements(forName: "fkey").first?.attribute(
                    forName: "label"
                )?.stringValue
            ]
        case .yealink:
            texts = []
        }
        #expect(texts == [label])
        #expect(!body.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" })
    }

    @Test(arguments: PhoneVendor.allCases)
    func anEmptyNameIsLabelledWithTheExtension(vendor: PhoneVendor) {
        var directory = Fixture.directory()
        let nameless = Fixture.line("acme", "209", "6495550209", " \n ")
        directory.setAccounts(directory.accounts, lines: [Fixture.alice, nameless])
        let body = PhoneProvisioning.render(vendor, for: Fixture.alice, in: directory).body
        let expected: String
        switch vendor {
        case .yealink: expected = "linekey.2.label = 209"
        case .polycom: expected = "<lb>209</lb>"
        case .cisco: expected = "<Short_Name_2_>209</Short_Name_2_>"
        case .snom: expected = "label=\"209\""
        }
        #expect(body.contains(expected))
    }

    @Test func subscriptionPeriodStaysWithinThePlatformsLimits() throws {
        let longMinimum = Fixture.directory(platform: PlatformSettings(domain: Fixture.domain, minimumExpires: 900))
        let shortMaximum = Fixture.directory(platform: PlatformSettings(domain: Fixture.domain, maximumExpires: 300))
        for (directory, expected) in [(longMinimum, "900"), (shortMaximum, "300")] {
            let yealink = YealinkConfig(PhoneProvisioning.render(.yealink, for: Fixture.alice, in: directory).body)
            #expect(yealink.settings["account.1.blf.subscribe_period"] == expected)
            let cisco = try parseXML(PhoneProvisioning.render(.cisco, for: Fixture.alice, in: directory).body)
            #expect(childText(cisco, "Subscribe_Expires") == expected)
        }
    }

    @Test func fileNamesAreSafeInAHeader() {
        var directory = Fixture.directory()
        let odd = Fixture.line("we\"ird/acct", "2 0\n1", "6495550299", "Odd")
        directory.setAccounts(directory.accounts + [Account(id: "we\"ird/acct")], lines: directory.lines + [odd])
        let name = PhoneProvisioning.render(.yealink, for: odd, in: directory).fileName
        #expect(name == "yealink-we_ird_acct-2_0_1.cfg")
    }

    @Test func vendorNamesAreThePathSegments() {
        #expect(PhoneVendor.allCases.map(\.rawValue) == ["yealink", "polycom", "cisco", "snom"])
        #expect(PhoneVendor(rawValue: "cisco") == .cisco)
    }

    @Test(arguments: PhoneVendor.allCases)
    func aLineWithNoColleaguesGetsAValidEmptyDocument(vendor: PhoneVendor) throws {
        let document = PhoneProvisioning.render(vendor, for: Fixture.carol, in: Fixture.directory())
        #expect(!document.body.contains("6495550"))
        if vendor == .yealink {
            #expect(document.body.hasPrefix("#!version:1.0.0.1\n"))
        } else {
            _ = try parseXML(document.body)
        }
    }
}
