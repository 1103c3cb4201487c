import ArgumentParser
import BusyLampCore
import Foundation
import NIOCore
import ServiceLifecycle

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the server with the seed's demo office (Leo, Alice, Joe, Bob, and Zoe in the warehouse)."
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
            extraServices: { server, listeners, logger in
                var services: [any Service] = [DemoCallSimulator(server: server, office: office, logger: logger)]
                // The simulated phones sign in with the demo office's passwords: only when it is
                // the directory (a `--directory` file has lines of its own).
                if resolved.directoryFile == nil {
                    services.append(DemoPhones(office: office, listeners: listeners, logger: logger))
                }
                return services
            },
            afterStart: { addresses in print(office.instructions(addresses: addresses)) }
        )
    }
}

/// The seed's office: Leo watches Alice, Joe and Bob (Bob is extension 222, as in the snom
/// example); Zoe works in the warehouse (another group), so her key on Bob is refused: the
/// demo's orange lamp. Passwords are demo passwords, printed for the newcomer.
struct DemoOffice {
    static let domain = "sip.busylamp.test"
    static let accountID = "demo"

    /// A line of the office and the BLF keys its simulated phone has (``DemoPhones``).
    struct Person: Sendable {
        var extensionNumber: String
        var name: String
        var password: String
        var group: String = Line.defaultGroup
        /// The extensions its phone subscribes to (`Event: dialog`).
        var keys: [String] = []
    }

    let people: [Person] = [
        Person(extensionNumber: "220", name: "Leo", password: "leo-demo", keys: ["221", "222", "223"]),
        Person(extensionNumber: "221", name: "Alice", password: "alice-demo"),
        Person(extensionNumber: "222", name: "Bob", password: "bob-demo"),
        Person(extensionNumber: "223", name: "Joe", password: "joe-demo"),
        Person(extensionNumber: "224", name: "Zoe", password: "zoe-demo", group: "WAREHOUSE", keys: ["222"]),
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
                group: person.group,
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
        text += "What the console shows: every line has a simulated phone on this machine (User-Agent"
        text += " \"\(DemoPhones.userAgent)\") that registers, so the lamps are green. Leo's phone has BLF keys on"
        text += " Alice, Bob and Joe (select a lamp to see who watches it). Every few seconds a simulated call lights"
        text += " the lamps: Joe calls Bob (blinking red, then red), Alice calls Joe, then Joe calls Bob again and Leo"
        text += " picks it up with *89222. Every 40 s one phone unregisters for 8 s: its lamp goes grey.\n"
        text += "The orange lamp: Zoe (224) works in the WAREHOUSE group and her phone's key on Bob is refused"
        text += " every 30 s (403 Target In Another Group). In \"Why is this lamp orange?\" choose Zoe as the watcher"
        text += " and Bob as the target; \"Recent refusals\" lists her attempts.\n"
        let sip = addresses.sip.first.map(Self.reachable) ?? "this machine:5060"
        text += "Point a softphone at \(sip) and register one of:\n"
        for person in people {
            text +=
                "  \(person.name.padding(toLength: 6, withPad: " ", startingAt: 0)) user \(number(person.extensionNumber))"
            text += "  extension \(person.extensionNumber)  password \(person.password)"
            text += person.group == Line.defaultGroup ? "\n" : "  (group \(person.group))\n"
        }
        text += "Use \(Self.domain) as the SIP domain and realm (the phone's outbound proxy or server: \(sip)).\n"
        text += "BLF keys: on Leo's phone, add keys of type BLF with the values 221, 222 and 223 (Event: dialog);"
        text += " the lamps show idle (green) at once. A buddy list with presence (Event: presence) shows a"
        text += " colleague online while their phone is registered. Once your phone is registered on a line, that"
        text += " line shows only its real calls (the simulated calls keep to lines with only simulated phones).\n"
        text += "Calls: dial an extension (221) or a number (6495550221); the callee's lamp blinks on every"
        text += " watching phone (a simulated phone answers busy). While it rings, *89221 (or the BLF key, with"
        text += " Replaces) picks it up from a phone of the office, and *88 picks up the latest ringing call of the"
        text += " group.\n"
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
