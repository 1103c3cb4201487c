import ArgumentParser
import BusyLampCore
import Foundation
import NIOCore

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the server with the seed's demo office (Leo, Alice, Joe, Bob)."
    )

    @OptionGroup var options: ServerOptions

    func run() async throws {
        var resolved = try options.resolve()
        // INTERFACE.md: `demo` makes a token (when none is configured) and prints it, so that
        // the console opens at once.
        if resolved.adminToken == nil {
            resolved.adminToken = (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 36) }.joined()
        }
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

    func instructions(addresses: StartedAddresses) -> String {
        var text = "\nBusyLamp demo office (account \"demo\", domain \(Self.domain))\n"
        let console = "http://\(Self.reachable(addresses.http))/#token=\(addresses.adminToken ?? "")"
        text += "Open the console: \(console)\n"
        text += "  (the admin API takes the same token: curl -H 'Authorization: Bearer \(addresses.adminToken ?? "")' "
        text += "http://\(Self.reachable(addresses.http))/api/v1/accounts/demo/lamps)\n"
        let sip = addresses.sip.first.map(Self.reachable) ?? "this machine:5060"
        text += "Point a softphone at \(sip) and register one of:\n"
        for person in people {
            text +=
                "  \(person.name.padding(toLength: 6, withPad: " ", startingAt: 0)) user \(number(person.extensionNumber))"
            text += "  extension \(person.extensionNumber)  password \(person.password)\n"
        }
        text += "Use \(Self.domain) as the SIP domain and realm (the phone's outbound proxy or server: \(sip)).\n"
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

    /// `HOST:PORT` with a wildcard host replaced by an address a phone or browser can reach:
    /// the machine's first non-loopback IPv4 address, else 127.0.0.1.
    static func reachable(_ hostPort: String) -> String {
        guard hostPort.hasPrefix("0.0.0.0:") || hostPort.hasPrefix("[::]:") else { return hostPort }
        let port = hostPort[hostPort.index(after: hostPort.lastIndex(of: ":")!)...]
        let devices = (try? System.enumerateDevices()) ?? []
        let address = devices.compactMap { $0.address?.ipAddress }.first {
            !$0.contains(":") && !$0.hasPrefix("127.")
        }
        return "\(address ?? "127.0.0.1"):\(port)"
    }
}
