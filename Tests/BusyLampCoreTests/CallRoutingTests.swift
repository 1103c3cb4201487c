import SIPCore
import Testing

@testable import BusyLampCore

/// The routing decision of issue 4 for an incoming INVITE, over a fixed directory: every route
/// and every refusal, with Request-URIs parsed as a phone or a carrier writes them.
@Suite("Call routing", .timeLimit(.minutes(1)))
struct CallRoutingTests {
    static let domain = "sip.busylamp.test"
    static let serverIP = "192.0.2.10"

    static func line(
        _ accountID: String,
        _ extensionNumber: String,
        _ number: String,
        group: String = Line.defaultGroup
    )
        -> Line
    {
        Line(accountID: accountID, extensionNumber: extensionNumber, number: number, group: group, credentials: [:])
    }

    static let alice = line("acme", "201", "6495550201")
    static let bob = line("acme", "202", "6495550202")
    static let carol = line("acme", "203", "6495550203", group: "SALES")
    /// Same extension as Alice in another account.
    static let globexAlice = line("globex", "201", "6495550301")
    static let globexZed = line("globex", "301", "6495550302")
    /// An account with its own codes, one with a '#' (which a URI must escape as `%23`).
    static let voxOne = line("vox", "201", "6495550501")
    static let voxTwo = line("vox", "202", "6495550502")

    static let carrier = Trunk(name: "carrier", host: "203.0.113.5", port: 5060, transport: .udp)
    static let backup = Trunk(name: "backup", host: "203.0.113.6", port: 5060, transport: .udp)

    static let accounts = [
        Account(id: "acme"),
        Account(id: "globex"),
        Account(id: "vox", pickup: PickupCodes(directed: "#89", group: "**8")),
    ]
    static let lines = [alice, bob, carol, globexAlice, globexZed, voxOne, voxTwo]
    static let withTrunks = Directory(
        platform: PlatformSettings(domain: domain),
        accounts: accounts,
        lines: lines,
        trunks: [carrier, backup]
    )
    static let withoutTrunks = Directory(platform: PlatformSettings(domain: domain), accounts: accounts, lines: lines)

    static func isLocal(_ host: String) -> Bool {
        host.lowercased() == domain || host == serverIP
    }

    /// One row of the outcome table.
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var uri: String
        var caller: CallRouting.Caller = .line(CallRoutingTests.alice)
        var trunks = true
        var expected: Expected

        enum Expected: Sendable, Hashable {
            case routed(CallRouting.Route)
            case refused(CallRouting.Refusal.Code, status: Int, phrase: String)
        }

        var testDescription: String { name }
    }

    static func uri(_ user: String, host: String = domain) -> String { "sip:\(user)@\(host)" }

    static let cases: [Case] = [
        // Lines calling lines: extensions in the caller's account, platform numbers anywhere.
        Case(name: "extension (speed dial)", uri: uri("202"), expected: .routed(.line(bob))),
        Case(name: "number", uri: uri("6495550202"), expected: .routed(.line(bob))),
        Case(name: "number with plus", uri: uri("+6495550202"), expected: .routed(.line(bob))),
        Case(
            name: "number at our IP with port and user=phone",
            uri: "sip:6495550202@\(serverIP):5060;user=phone",
            expected: .routed(.line(bob))
        ),
        Case(name: "sips", uri: "sips:202@\(domain)", expected: .routed(.line(bob))),
        Case(
            name: "same extension, caller's account decides",
            uri: uri("201"),
            caller: .line(globexZed),
            expected: .routed(.line(globexAlice))
        ),
        Case(name: "another account's number", uri: uri("6495550302"), expected: .routed(.line(globexZed))),
        Case(
            name: "another account's extension, no trunk",
            uri: uri("301"),
            trunks: false,
            expected: .refused(.noTrunk, status: 404, phrase: "No Trunk For Outside Numbers")
        ),
        Case(
            name: "another account's extension goes out like any number",
            uri: uri("301"),
            expected: .routed(.trunk(carrier, number: "301"))
        ),
        Case(
            name: "not a number nor an extension",
            uri: uri("reception"),
            expected: .refused(.unknownDestination, status: 404, phrase: "No Such Extension Or Number")
        ),
        Case(
            name: "digits with a letter",
            uri: uri("20x"),
            expected: .refused(.unknownDestination, status: 404, phrase: "No Such Extension Or Number")
        ),
        // Lines calling out.
        Case(
            name: "outside number to the first trunk",
            uri: uri("0800123456"),
            expected: .routed(.trunk(carrier, number: "0800123456"))
        ),
        Case(
            name: "outside E.164 number keeps its plus",
            uri: uri("+4930123456"),
            expected: .routed(.trunk(carrier, number: "+4930123456"))
        ),
        Case(
            name: "outside number without a trunk",
            uri: uri("0800123456"),
            trunks: false,
            expected: .refused(.noTrunk, status: 404, phrase: "No Trunk For Outside Numbers")
        ),
        Case(
            name: "a lone plus is no number",
            uri: uri("+"),
            expected: .refused(.unknownDestination, status: 404, phrase: "No Such Extension Or Number")
        ),
        // Directed pickup.
        Case(name: "directed pickup by extension", uri: uri("*89202"), expected: .routed(.directedPickup(target: bob))),
        Case(
            name: "directed pickup, '*' escaped",
            uri: uri("%2A89202"),
            expected: .routed(.directedPickup(target: bob))
        ),
        Case(
            name: "directed pickup by number",
            uri: uri("*896495550202"),
            expected: .routed(.directedPickup(target: bob))
        ),
        Case(
            name: "directed pickup by number with plus",
            uri: uri("*89+6495550202"),
            expected: .routed(.directedPickup(target: bob))
        ),
        Case(
            name: "directed pickup across groups",
            uri: uri("*89203"),
            expected: .refused(.pickupTargetInAnotherGroup, status: 403, phrase: "Pickup Target In Another Group")
        ),
        Case(
            name: "directed pickup of another account's number",
            uri: uri("*896495550302"),
            expected: .refused(.pickupTargetInAnotherAccount, status: 403, phrase: "Pickup Target In Another Account")
        ),
        Case(
            name: "directed pickup of another account's extension",
            uri: uri("*89301"),
            expected: .refused(.unknownPickupTarget, status: 404, phrase: "No Such Pickup Target")
        ),
        Case(
            name: "directed pickup of an unknown extension",
            uri: uri("*89299"),
            expected: .refused(.unknownPickupTarget, status: 404, phrase: "No Such Pickup Target")
        ),
        Case(
            name: "directed pickup code alone",
            uri: uri("*89"),
            expected: .refused(.addressIncomplete, status: 484, phrase: "Address Incomplete")
        ),
        Case(
            name: "account's own directed code with '#' escaped",
            uri: uri("%2389202"),
            caller: .line(voxOne),
            expected: .routed(.directedPickup(target: voxTwo))
        ),
        Case(
            name: "another account's code is not this account's",
            uri: uri("*89202"),
            caller: .line(voxOne),
            expected: .refused(.unknownDestination, status: 404, phrase: "No Such Extension Or Number")
        ),
        // Group pickup.
        Case(
            name: "group pickup",
            uri: uri("*88"),
            expected: .routed(.groupPickup(accountID: "acme", group: "DEFAULT"))
        ),
        Case(
            name: "group pickup, '*' escaped",
            uri: uri("%2A88"),
            expected: .routed(.groupPickup(accountID: "acme", group: "DEFAULT"))
        ),
        Case(
            name: "group pickup in the caller's group",
            uri: uri("*88"),
            caller: .line(carol),
            expected: .routed(.groupPickup(accountID: "acme", group: "SALES"))
        ),
        Case(
            name: "account's own group code",
            uri: uri("**8"),
            caller: .line(voxTwo),
            expected: .routed(.groupPickup(accountID: "vox", group: "DEFAULT"))
        ),
        Case(
            name: "group code with more after it",
            uri: uri("*88202"),
            expected: .refused(.unknownDestination, status: 404, phrase: "No Such Extension Or Number")
        ),
        // Trunks reach platform numbers only.
        Case(name: "trunk to a number", uri: uri("6495550202"), caller: .trunk(carrier), expected: .routed(.line(bob))),
        Case(
            name: "trunk to an E.164 number at our IP",
            uri: "sip:+6495550302@\(serverIP);user=phone",
            caller: .trunk(carrier),
            expected: .routed(.line(globexZed))
        ),
        Case(
            name: "trunk to a telephone-subscriber with separators and parameters",
            uri: "sip:+64-9-555-0202;npdi;rn=+6495550000@\(serverIP);user=phone",
            caller: .trunk(carrier),
            expected: .routed(.line(bob))
        ),
        Case(
            name: "parameters in the user part without user=phone are not a number",
            uri: "sip:6495550202;npdi@\(domain)",
            caller: .trunk(carrier),
            expected: .refused(.notANumberFromTrunk, status: 403, phrase: "Trunk May Only Call Platform Numbers")
        ),
        Case(
            name: "user=phone with nothing before its parameters",
            uri: "sip:;npdi@\(domain);user=phone",
            expected: .refused(.addressIncomplete, status: 484, phrase: "Address Incomplete")
        ),
        Case(
            name: "trunk to an extension",
            uri: uri("202"),
            caller: .trunk(carrier),
            expected: .refused(.unknownNumberFromTrunk, status: 404, phrase: "No Such Number")
        ),
        Case(
            name: "trunk to an outside number is never hairpinned",
            uri: uri("0800123456"),
            caller: .trunk(carrier),
            expected: .refused(.unknownNumberFromTrunk, status: 404, phrase: "No Such Number")
        ),
        Case(
            name: "trunk to a pickup code",
            uri: uri("*89202"),
            caller: .trunk(carrier),
            expected: .refused(.notANumberFromTrunk, status: 403, phrase: "Trunk May Only Call Platform Numbers")
        ),
        // The checks before the user part, in order.
        Case(
            name: "unknown caller",
            uri: uri("202"),
            caller: .unknown,
            expected: .refused(.unknownCaller, status: 403, phrase: "Caller Not Identified")
        ),
        Case(
            name: "unknown caller before a foreign host",
            uri: uri("202", host: "other.example"),
            caller: .unknown,
            expected: .refused(.unknownCaller, status: 403, phrase: "Caller Not Identified")
        ),
        Case(
            name: "tel URI",
            uri: "tel:+6495550202",
            expected: .refused(.unsupportedScheme, status: 416, phrase: "Unsupported URI Scheme")
        ),
        Case(
            name: "foreign host",
            uri: uri("202", host: "other.example"),
            expected: .refused(.foreignDomain, status: 404, phrase: "Domain Not Served Here")
        ),
        Case(
            name: "foreign host from a trunk",
            uri: uri("6495550202", host: "carrier.example"),
            caller: .trunk(carrier),
            expected: .refused(.foreignDomain, status: 404, phrase: "Domain Not Served Here")
        ),
        Case(
            name: "no user part",
            uri: "sip:\(domain)",
            expected: .refused(.addressIncomplete, status: 484, phrase: "Address Incomplete")
        ),
    ]

    static func route(_ row: Case) throws -> Result<CallRouting.Route, CallRouting.Refusal> {
        let uri = try #require(SIPURI(row.uri), "unparsable \(row.uri)")
        let routing = CallRouting(directory: row.trunks ? withTrunks : withoutTrunks)
        return routing.route(uri, from: row.caller, isLocalHost: isLocal)
    }

    @Test("Every routing outcome", arguments: cases)
    func outcome(_ row: Case) throws {
        switch (try Self.route(row), row.expected) {
        case (.success(let route), .routed(let expected)):
            #expect(route == expected)
        case (.failure(let refusal), .refused(let code, let status, let phrase)):
            #expect(refusal.code == code)
            #expect(refusal.statusCode == status)
            #expect(refusal.reasonPhrase == phrase)
        case (let result, let expected):
            Issue.record("got \(result), expected \(expected)")
        }
    }

    /// The table exercises every refusal the router can give.
    @Test func tableCoversEveryRefusal() {
        var codes = Set<CallRouting.Refusal.Code>()
        for row in Self.cases {
            if case .refused(let code, _, _) = row.expected { codes.insert(code) }
        }
        #expect(codes == Set(CallRouting.Refusal.Code.allCases))
    }

    /// A URI built in code rather than parsed may carry an empty user, which the parser refuses.
    @Test func emptyUserIsIncomplete() {
        let routing = CallRouting(directory: Self.withTrunks)
        let result = routing.route(
            SIPURI(user: "", host: Self.domain),
            from: .line(Self.alice),
            isLocalHost: Self.isLocal
        )
        #expect(result == .failure(CallRouting.addressIncomplete))
    }

    /// Outside calls use the first trunk in directory order, whichever trunk the others came from.
    @Test func outsideCallsUseTheFirstTrunk() {
        var directory = Self.withTrunks
        directory.trunks = [Self.backup, Self.carrier]
        let result = CallRouting(directory: directory).route(
            SIPURI(user: "0800123456", host: Self.domain),
            from: .line(Self.bob),
            isLocalHost: Self.isLocal
        )
        #expect(result == .success(.trunk(Self.backup, number: "0800123456")))
    }

    /// A line whose account is missing from the directory still gets the default pickup codes.
    @Test func missingAccountUsesDefaultCodes() {
        let orphan = Self.line("gone", "201", "6495550901")
        let directory = Directory(
            platform: PlatformSettings(domain: Self.domain),
            accounts: [],
            lines: [orphan, Self.line("gone", "202", "6495550902")]
        )
        let routing = CallRouting(directory: directory)
        let group = routing.route(
            SIPURI(user: "*88", host: Self.domain),
            from: .line(orphan),
            isLocalHost: Self.isLocal
        )
        #expect(group == .success(.groupPickup(accountID: "gone", group: Line.defaultGroup)))
        let directed = routing.route(
            SIPURI(user: "*89202", host: Self.domain),
            from: .line(orphan),
            isLocalHost: Self.isLocal
        )
        #expect(directed == .success(.directedPickup(target: Self.line("gone", "202", "6495550902"))))
    }
}
