import ArgumentParser
import BusyLampCore
import Foundation

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the server with the seed's demo office (Leo, Alice, Joe, Bob)."
    )

    @OptionGroup var options: ServerOptions

    func run() async throws {
        let resolved = try options.resolve()
        let office = DemoOffice()
        try await ServerLauncher.run(
            resolved,
            seed: resolved.directoryFile == nil ? office.directory : nil,
            extraServices: { server, logger in [DemoCallSimulator(server: server, office: office, logger: logger)] }
        ) { addresses in
            print(office.instructions(addresses: addresses))
        }
    }
}

/// The seed's office: Leo watches Alice, Joe and Bob (Bob is extension 222, as in the snom
/// example). Passwords are demo passwords, printed for the newcomer.
struct DemoOffice {
    static let domain = "sip.busylamp.test"
    static let accountID = "demo"
    let people: [(extensionNumber: String, name: String, password: String)] = [
        ("220", "Leo", "leo-demo"),
        ("221", "Alice", "alice-demo"),
        ("222", "Bob", "bob-demo"),
        ("223", "Joe", "joe-demo"),
    ]

    func number(_ extensionNumber: String) -> String { "6495550" + extensionNumber }

    var directory: Directory {
        let platform = PlatformSettings(domain: Self.domain)
        let account = Account(id: Self.accountID, name: "Demo Office")
        let lines = people.map { person in
            Line(
                accountID: account.id,
                extensionNumber: person.extensionNumber,
                number: number(person.extensionNumber),
                name: person.name,
                credentials: Line.credentials(
                    number: number(person.extensionNumber),
                    realm: Self.domain,
                    password: person.password
                )
            )
        }
        var directory = Directory(platform: platform)
        directory.setAccounts([account], lines: lines)
        return directory
    }

    func instructions(addresses: [String]) -> String {
        var text = "\nBusyLamp demo office (account \"demo\", domain \(Self.domain))\n"
        text += "Point a softphone at \(addresses.first ?? "this machine:5060") and register one of:\n"
        for person in people {
            text +=
                "  \(person.name.padding(toLength: 6, withPad: " ", startingAt: 0)) user \(number(person.extensionNumber))"
            text += "  extension \(person.extensionNumber)  password \(person.password)\n"
        }
        text += "Use \(Self.domain) as the SIP domain and realm.\n"
        text += "BLF keys: on Leo's phone, add keys of type BLF with the values 221, 222 and 223 (Event: dialog);"
        text += " the lamps show idle (green) at once. A buddy list with presence (Event: presence) shows a"
        text += " colleague online while their phone is registered. Until phones call, simulated calls"
        text += " light the lamps: Joe calls Bob, then Alice calls Joe, over and over (a registered line"
        text += " shows only its real calls).\n"
        text += "Calls: dial an extension (221) or a number (6495550221); the callee's lamp blinks on every"
        text += " watching phone. While it rings, *89221 (or the BLF key, with Replaces) picks it up from a"
        text += " phone of the office, and *88 picks up the latest ringing call of the group.\n"
        return text
    }
}
