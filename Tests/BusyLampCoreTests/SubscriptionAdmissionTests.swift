import Foundation
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampCore

/// The admission decision of issue 3 for an authenticated SUBSCRIBE, with parsed requests, a
/// fixed directory and fixed registrations and jitter: every outcome, in the order it is checked.
@Suite("Subscription admission", .timeLimit(.minutes(1)))
struct SubscriptionAdmissionTests {
    static let domain = "sip.busylamp.test"
    static let serverIP = "192.0.2.10"
    static let phoneIP = "198.51.100.7"

    static func line(
        _ accountID: String,
        _ extensionNumber: String,
        _ number: String,
        group: String = Line.defaultGroup,
        presence: Bool? = nil
    ) -> Line {
        Line(
            accountID: accountID,
            extensionNumber: extensionNumber,
            number: number,
            group: group,
            presence: presence,
            credentials: [:]
        )
    }

    static let alice = line("acme", "201", "6495550201")
    static let bob = line("acme", "202", "6495550202")
    static let carol = line("acme", "203", "6495550203", group: "SALES")
    static let dave = line("acme", "204", "6495550204", presence: false)
    static let globexAlice = line("globex", "201", "6495550301")
    static let netWatcher = line("lan", "301", "6495550401")
    static let netTarget = line("lan", "302", "6495550402")

    static let directory = Directory(
        platform: PlatformSettings(domain: domain, minimumExpires: 60, maximumExpires: 3600),
        accounts: [Account(id: "acme"), Account(id: "globex"), Account(id: "lan", sameNetworkOnly: true)],
        lines: [alice, bob, carol, dave, globexAlice, netWatcher, netTarget]
    )
    static let admission = SubscriptionAdmission(directory: directory)

    struct NotARequest: Error {}

    /// A SUBSCRIBE as a phone sends it, parsed from text. `nil` header values are left out.
    static func subscribe(
        uri: String = "sip:202@\(domain)",
        event: String? = "dialog",
        accept: String? = nil,
        expires: String? = "600",
        callID: String = "sub-1@198.51.100.7",
        toTag: String? = nil
    ) throws -> SIPRequest {
        var lines = [
            "SUBSCRIBE \(uri) SIP/2.0",
            "Via: SIP/2.0/UDP \(phoneIP):5062;branch=z9hG4bK-sub;rport",
            "Max-Forwards: 70",
            "From: <sip:6495550201@\(domain)>;tag=ph0ne",
            "To: <\(uri)>" + (toTag.map { ";tag=\($0)" } ?? ""),
            "Call-ID: \(callID)",
            "CSeq: 1 SUBSCRIBE",
            "Contact: <sip:6495550201@\(phoneIP):5062>",
        ]
        if let event { lines.append("Event: \(event)") }
        if let accept { lines.append("Accept: \(accept)") }
        lines.append("Content-Length: 0")
        let text = lines.joined(separator: "\r\n") + "\r\n\r\n"
        guard case .request(var request) = try SIPParser().parse(Array(text.utf8)) else { throw NotARequest() }
        // Added after parsing: the parser itself refuses an unreadable Expires with 400, and
        // admission must still be safe with a request built another way.
        if let expires { request.headers.add(.expires, expires) }
        return request
    }

    static func isLocal(_ host: String) -> Bool {
        host.lowercased() == domain || host == serverIP
    }

    static func admit(
        _ request: SIPRequest,
        watcher: Line = alice,
        sourceHost: String = phoneIP,
        registered: [String: [String]] = [:],
        jitter: Int = 0
    ) -> Result<SubscriptionAdmission.Accepted, SubscriptionAdmission.Refusal> {
        admission.admit(
            request,
            watcher: watcher,
            source: SIPPeer(transport: .udp, host: sourceHost, port: 5062),
            isLocalHost: isLocal,
            registeredSourceHosts: { registered[$0] ?? [] },
            jitter: { _ in jitter }
        )
    }

    /// One row of the outcome table: a SUBSCRIBE's variations and what it must get.
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var uri = "sip:202@\(SubscriptionAdmissionTests.domain)"
        var event: String? = "dialog"
        var accept: String?
        var expires: String? = "600"
        var watcher = SubscriptionAdmissionTests.alice
        /// `.success`: event, target number, granted seconds; `.failure`: code and status.
        var expected: Expected

        enum Expected: Sendable, Hashable {
            case accepted(EventPackage, target: String, granted: Int)
            case refused(SubscriptionAdmission.Refusal.Code, status: Int)
        }

        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "dialog by extension", expected: .accepted(.dialog, target: "6495550202", granted: 600)),
        Case(name: "presence", event: "presence", expected: .accepted(.presence, target: "6495550202", granted: 600)),
        Case(
            name: "Event with id, any case",
            event: "Dialog;id=7",
            expected: .accepted(.dialog, target: "6495550202", granted: 600)
        ),
        Case(name: "no Event", event: nil, expected: .refused(.badEvent, status: 489)),
        Case(name: "MWI", event: "message-summary", expected: .refused(.badEvent, status: 489)),
        Case(name: "ua-profile", event: "ua-profile;profile-type=device", expected: .refused(.badEvent, status: 489)),
        Case(
            name: "Accept of the package",
            accept: "application/dialog-info+xml",
            expected: .accepted(.dialog, target: "6495550202", granted: 600)
        ),
        Case(
            name: "Accept list with q",
            accept: "multipart/related, application/dialog-info+xml;q=0.5",
            expected: .accepted(.dialog, target: "6495550202", granted: 600)
        ),
        Case(name: "Accept */*", accept: "*/*", expected: .accepted(.dialog, target: "6495550202", granted: 600)),
        Case(
            name: "Accept application/*",
            event: "presence",
            accept: "application/*",
            expected: .accepted(.presence, target: "6495550202", granted: 600)
        ),
        Case(
            name: "Accept without the type",
            accept: "application/pidf+xml",
            expected: .refused(.notAcceptable, status: 406)
        ),
        Case(
            name: "presence Accepting dialog-info",
            event: "presence",
            accept: "application/dialog-info+xml",
            expected: .refused(.notAcceptable, status: 406)
        ),
        Case(name: "unknown extension", uri: "sip:299@\(domain)", expected: .refused(.unknownTarget, status: 404)),
        Case(name: "no user part", uri: "sip:\(domain)", expected: .refused(.unknownTarget, status: 404)),
        Case(name: "foreign host", uri: "sip:202@other.example", expected: .refused(.unknownTarget, status: 404)),
        Case(
            name: "full number",
            uri: "sip:6495550202@\(domain)",
            expected: .accepted(.dialog, target: "6495550202", granted: 600)
        ),
        Case(
            name: "E.164 with plus",
            uri: "sip:+6495550202@\(domain)",
            expected: .accepted(.dialog, target: "6495550202", granted: 600)
        ),
        Case(
            name: "extension at our IP",
            uri: "sip:202@\(serverIP)",
            expected: .accepted(.dialog, target: "6495550202", granted: 600)
        ),
        Case(
            name: "number at our IP with port",
            uri: "sip:6495550202@\(serverIP):5060;user=phone",
            expected: .accepted(.dialog, target: "6495550202", granted: 600)
        ),
        Case(
            name: "another account's number",
            uri: "sip:6495550301@\(domain)",
            expected: .refused(.otherAccount, status: 403)
        ),
        Case(name: "another group", uri: "sip:203@\(domain)", expected: .refused(.otherGroup, status: 403)),
        Case(
            name: "presence off for the target",
            uri: "sip:204@\(domain)",
            expected: .refused(.presenceOff, status: 403)
        ),
        Case(name: "Expires below min_expires", expires: "30", expected: .refused(.intervalTooBrief, status: 423)),
        Case(
            name: "Expires at min_expires",
            expires: "60",
            expected: .accepted(.dialog, target: "6495550202", granted: 60)
        ),
        Case(
            name: "Expires above max_expires",
            expires: "7200",
            expected: .accepted(.dialog, target: "6495550202", granted: 3600)
        ),
        Case(
            name: "Expires huge",
            expires: "99999999999999999999",
            expected: .accepted(.dialog, target: "6495550202", granted: 3600)
        ),
        Case(
            name: "no Expires: RFC 4235 default",
            expires: nil,
            expected: .accepted(.dialog, target: "6495550202", granted: 3600)
        ),
        Case(name: "Expires 0 (fetch)", expires: "0", expected: .accepted(.dialog, target: "6495550202", granted: 0)),
        Case(name: "Expires malformed", expires: "soon", expected: .refused(.badExpires, status: 400)),
        Case(name: "Expires negative", expires: "-5", expected: .refused(.badExpires, status: 400)),
        // The event is checked before the target, the target before the expiry.
        Case(
            name: "bad event before unknown target",
            uri: "sip:299@\(domain)",
            event: "message-summary",
            expected: .refused(.badEvent, status: 489)
        ),
        Case(
            name: "unknown target before bad expiry",
            uri: "sip:299@\(domain)",
            expires: "30",
            expected: .refused(.unknownTarget, status: 404)
        ),
    ]

    @Test("Every admission outcome", arguments: cases)
    func outcome(_ row: Case) throws {
        let request = try Self.subscribe(uri: row.uri, event: row.event, accept: row.accept, expires: row.expires)
        switch (Self.admit(request, watcher: row.watcher), row.expected) {
        case (.success(let accepted), .accepted(let event, let target, let granted)):
            #expect(accepted.event == event)
            #expect(accepted.target.number == target)
            #expect(accepted.grantedExpires == granted)
        case (.failure(let refusal), .refused(let code, let status)):
            #expect(refusal.code == code)
            #expect(refusal.statusCode == status)
            #expect(!refusal.reasonPhrase.isEmpty)
        case (let result, let expected):
            Issue.record("got \(result), expected \(expected)")
        }
    }

    @Test(
        "Refusals say why",
        arguments: [
            ("sip:6495550301@\(domain)", "Target In Another Account"),
            ("sip:203@\(domain)", "Target In Another Group"),
            ("sip:204@\(domain)", "Presence Disabled For Target"),
            ("sip:299@\(domain)", "Unknown Target"),
        ]
    )
    func reasonPhrase(uri: String, phrase: String) throws {
        #expect(try Self.failure(Self.admit(Self.subscribe(uri: uri))).reasonPhrase == phrase)
    }

    static func failure(
        _ result: Result<SubscriptionAdmission.Accepted, SubscriptionAdmission.Refusal>
    ) throws -> SubscriptionAdmission.Refusal {
        guard case .failure(let refusal) = result else { throw NotARequest() }
        return refusal
    }

    /// Issue 9: past a limit, a new subscription is refused with a 403 that names the limit.
    @Test func capacityLimitsRefuseWithTheirReason() {
        var limits = SubscriptionAdmission.Limits()
        limits.watchersPerLine = 3
        limits.subscriptionsPerSource = 5
        #expect(SubscriptionAdmission.capacityRefusal(watchersOfTarget: 2, fromSource: 4, limits: limits) == nil)
        let line = SubscriptionAdmission.capacityRefusal(watchersOfTarget: 3, fromSource: 0, limits: limits)
        #expect(line?.code == .tooManyWatchers)
        #expect(line?.statusCode == 403)
        #expect(line?.reasonPhrase == "Too Many Watchers Of This Line")
        let source = SubscriptionAdmission.capacityRefusal(watchersOfTarget: 0, fromSource: 5, limits: limits)
        #expect(source?.code == .tooManyFromSource)
        #expect(source?.reasonPhrase == "Too Many Subscriptions From This Address")
        #expect(source?.code.snakeCase == "too_many_from_source")
        // The defaults hold the fan-out of 10,000 watchers of one line and an office's NAT.
        #expect(SubscriptionAdmission.Limits().watchersPerLine >= 10_000)
        #expect(SubscriptionAdmission.Limits().subscriptionsPerSource >= 10_000)
    }

    @Test func badEventCarriesAllowEvents() throws {
        let refusal = try Self.failure(Self.admit(Self.subscribe(event: "message-summary")))
        #expect(refusal.reasonPhrase == "Bad Event")
        #expect(refusal.headers == [SIPHeaders.Field(name: .allowEvents, value: "dialog, presence")])
        #expect(SubscriptionAdmission.eventPackages == ["dialog", "presence"])
    }

    @Test func intervalTooBriefCarriesMinExpires() throws {
        let refusal = try Self.failure(Self.admit(Self.subscribe(expires: "59")))
        #expect(refusal.statusCode == 423)
        #expect(refusal.headers == [SIPHeaders.Field(name: .minExpires, value: "60")])
    }

    @Test func notAcceptableCarriesAccept() throws {
        let refusal = try Self.failure(Self.admit(Self.subscribe(event: "presence", accept: "text/plain")))
        #expect(refusal.headers == [SIPHeaders.Field(name: .accept, value: "application/pidf+xml")])
    }

    @Test func extensionResolvesInTheWatchersAccountFirst() throws {
        // Extension 201 exists in acme and in globex: each account's watcher gets its own.
        let request = try Self.subscribe(uri: "sip:201@\(Self.domain)")
        #expect(try Self.admit(request, watcher: Self.globexAlice).get().target == Self.globexAlice)
        #expect(try Self.admit(request, watcher: Self.alice).get().target == Self.alice)
    }

    @Test(
        "The entity is the Request-URI's user and host as written",
        arguments: [
            ("sip:202@\(domain)", "sip:202@\(domain)"),
            ("sip:202@SIP.BusyLamp.test", "sip:202@SIP.BusyLamp.test"),
            ("sip:6495550202@\(serverIP):5060;user=phone", "sip:6495550202@\(serverIP)"),
        ]
    )
    func entity(uri: String, expected: String) throws {
        #expect(try Self.admit(Self.subscribe(uri: uri)).get().entity == expected)
    }

    @Test(
        "Jitter never goes below min_expires nor above the request",
        arguments: [
            (600, 100, 500),
            (600, 0, 600),
            (600, 10_000, 60),  // clamped to min_expires
            (600, -50, 600),  // a negative jitter never lengthens the request
            (60, 5, 60),
            (7200, 100, 3500),  // taken off the shortened expiry
        ]
    )
    func jitter(requested: Int, jitter: Int, granted: Int) throws {
        let request = try Self.subscribe(expires: String(requested))
        #expect(try Self.admit(request, jitter: jitter).get().grantedExpires == granted)
    }

    @Test func jitterIsNotAppliedToExpiresZero() throws {
        var asked: [Int] = []
        let result = try Self.admission.admit(
            Self.subscribe(expires: "0"),
            watcher: Self.alice,
            source: SIPPeer(transport: .udp, host: Self.phoneIP, port: 5062),
            isLocalHost: Self.isLocal,
            registeredSourceHosts: { _ in [] },
            jitter: {
                asked.append($0)
                return 30
            }
        )
        #expect(try result.get().grantedExpires == 0)
        #expect(asked.isEmpty)
    }

    @Test(
        "same_network_only: the watcher's source must be one of the target's registered sources",
        arguments: [
            ("203.0.113.5", ["203.0.113.5"], true),
            ("203.0.113.5", ["198.51.100.9", "203.0.113.5"], true),
            ("::ffff:203.0.113.5", ["203.0.113.5"], true),
            ("2001:DB8::1", ["[2001:db8::1]"], true),
            ("198.51.100.1", ["203.0.113.5"], false),
            ("203.0.113.5", [], false),  // the target is not registered: nothing to match
        ]
    )
    func sameNetworkOnly(source: String, targetSources: [String], allowed: Bool) throws {
        let request = try Self.subscribe(uri: "sip:302@\(Self.domain)")
        let result = Self.admit(
            request,
            watcher: Self.netWatcher,
            sourceHost: source,
            registered: [Self.netTarget.number: targetSources]
        )
        switch result {
        case .success(let accepted):
            #expect(allowed)
            #expect(accepted.target == Self.netTarget)
        case .failure(let refusal):
            #expect(!allowed)
            #expect(refusal.code == .otherNetwork)
            #expect(refusal.statusCode == 403)
        }
    }

    @Test func sameNetworkOnlyDoesNotApplyToOtherAccounts() throws {
        // acme has no same_network_only: an unregistered target is still watchable.
        #expect(try Self.admit(Self.subscribe(), sourceHost: "203.0.113.99").get().target == Self.bob)
    }

    // MARK: Refresh

    static func subscription(event: EventPackage = .dialog, target: Line = bob) throws -> Subscription {
        let request = try subscribe()
        let response = SIPResponse(statusCode: 200, headers: SIPHeaders([(.to, "<sip:202@\(domain)>;tag=srv1")]))
        guard let dialog = Dialog(uasRequest: request, response: response, receivedOverTLS: false) else {
            throw NotARequest()
        }
        return Subscription(
            event: event,
            accountID: target.accountID,
            watcherNumber: alice.number,
            targetNumber: target.number,
            entity: "sip:202@\(domain)",
            dialog: dialog,
            source: SIPPeer(transport: .udp, host: phoneIP, port: 5062),
            expiresAt: Date(timeIntervalSince1970: 1_700_000_600),
            createdAt: Date(timeIntervalSince1970: 1_700_000_000)
        )
    }

    static func refresh(
        _ request: SIPRequest,
        subscription: Subscription,
        admission: SubscriptionAdmission = admission,
        jitter: Int = 0
    ) -> Result<SubscriptionAdmission.Accepted, SubscriptionAdmission.Refusal> {
        admission.admitRefresh(
            request,
            subscription: subscription,
            watcher: alice,
            source: SIPPeer(transport: .udp, host: phoneIP, port: 5062),
            registeredSourceHosts: { _ in [] },
            jitter: { _ in jitter }
        )
    }

    @Test func refreshKeepsTheStoredTargetAndEntity() throws {
        // The Request-URI of a refresh is our Contact, which names no line.
        let request = try Self.subscribe(uri: "sip:busylamp@\(Self.serverIP):5060", expires: "300", toTag: "srv1")
        let accepted = try Self.refresh(request, subscription: Self.subscription(), jitter: 20).get()
        #expect(accepted.target == Self.bob)
        #expect(accepted.entity == "sip:202@\(Self.domain)")
        #expect(accepted.grantedExpires == 280)
        #expect(accepted.event == .dialog)
    }

    @Test func refreshWithExpiresZeroIsAccepted() throws {
        let request = try Self.subscribe(uri: "sip:busylamp@\(Self.serverIP)", expires: "0", toTag: "srv1")
        #expect(try Self.refresh(request, subscription: Self.subscription()).get().grantedExpires == 0)
    }

    @Test(
        "Refresh refusals",
        arguments: [
            ("presence", "300", SubscriptionAdmission.Refusal.Code.badEvent, 489),
            ("message-summary", "300", .badEvent, 489),
            ("dialog", "10", .intervalTooBrief, 423),
            ("dialog", "x", .badExpires, 400),
        ]
    )
    func refreshRefused(event: String, expires: String, code: SubscriptionAdmission.Refusal.Code, status: Int) throws {
        let request = try Self.subscribe(uri: "sip:busylamp@\(Self.serverIP)", event: event, expires: expires)
        let refusal = try Self.failure(Self.refresh(request, subscription: Self.subscription()))
        #expect(refusal.code == code)
        #expect(refusal.statusCode == status)
    }

    @Test func refreshRechecksTheRulesAgainstTheCurrentDirectory() throws {
        let request = try Self.subscribe(uri: "sip:busylamp@\(Self.serverIP)", expires: "300", toTag: "srv1")
        let subscription = try Self.subscription()
        var bob = Self.bob

        bob.presence = false
        var changed = Self.directory
        changed.setAccounts(changed.accounts, lines: changed.lines.map { $0.number == bob.number ? bob : $0 })
        #expect(
            try Self.failure(Self.refresh(request, subscription: subscription, admission: .init(directory: changed)))
                .code
                == .presenceOff
        )

        bob.presence = nil
        bob.group = "SALES"
        changed.setAccounts(changed.accounts, lines: changed.lines.map { $0.number == bob.number ? bob : $0 })
        #expect(
            try Self.failure(Self.refresh(request, subscription: subscription, admission: .init(directory: changed)))
                .code
                == .otherGroup
        )

        changed.setAccounts(changed.accounts, lines: changed.lines.filter { $0.number != bob.number })
        let gone = try Self.failure(
            Self.refresh(request, subscription: subscription, admission: .init(directory: changed))
        )
        #expect(gone.code == .unknownTarget)
        #expect(gone.statusCode == 404)
    }
}
