import Foundation
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampCore

/// The registrar decision of RFC 3261 §10.3, exercised with parsed REGISTERs, bindings as
/// values and a fixed `now`: no store, no sockets, no clock.
@Suite("Registrar", .timeLimit(.minutes(1)))
struct RegistrarTests {
    static let aor = "6495550201"
    static let callID = "a3f7c1@192.0.2.4"
    static let now = Date(timeIntervalSince1970: 1_700_000_000)  // Tue, 14 Nov 2023 22:13:20 GMT
    static let source = SIPPeer(transport: .udp, host: "192.0.2.4", port: 5062)
    static let settings = Registrar.Settings(minimumExpires: 60, maximumExpires: 7200, defaultExpires: 3600)
    static let registrar = Registrar(settings: settings)

    struct NotARequest: Error {}

    /// A REGISTER for `aor` as a phone sends it, parsed from text.
    static func register(
        contacts: [String],
        expires: Int? = nil,
        callID: String = callID,
        cseq: UInt32 = 10,
        extraHeaders: [String] = []
    ) throws -> SIPRequest {
        var lines = [
            "REGISTER sip:sip.busylamp.test SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bK-\(cseq)-reg;rport",
            "Max-Forwards: 70",
            "From: <sip:\(aor)@sip.busylamp.test>;tag=fr0m",
            "To: <sip:\(aor)@sip.busylamp.test>",
            "Call-ID: \(callID)",
            "CSeq: \(cseq) REGISTER",
        ]
        lines += contacts.map { "Contact: \($0)" }
        if let expires { lines.append("Expires: \(expires)") }
        lines += extraHeaders
        lines.append("Content-Length: 0")
        let text = lines.joined(separator: "\r\n") + "\r\n\r\n"
        guard case .request(let request) = try SIPParser().parse(Array(text.utf8)) else { throw NotARequest() }
        return request
    }

    /// A binding already stored for `aor`.
    static func binding(
        _ contact: String,
        expiresIn seconds: TimeInterval = 1800,
        callID: String = callID,
        cseq: UInt32 = 5
    ) -> Binding {
        Binding(
            aor: aor,
            contact: contact,
            expiresAt: now.addingTimeInterval(seconds),
            callID: callID,
            cseq: cseq,
            source: source,
            updatedAt: now.addingTimeInterval(-60)
        )
    }

    static func decide(_ register: SIPRequest, existing: [Binding] = []) -> Registrar.Decision {
        registrar.decide(register: register, aor: aor, existing: existing, source: source, now: now)
    }

    /// The three parts of an `.apply`, or a recorded failure.
    static func applied(
        _ decision: Registrar.Decision,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> (upserts: [Binding], removals: [String], result: [Binding])? {
        guard case .apply(let upserts, let removals, let result) = decision else {
            Issue.record("expected .apply, got \(decision)", sourceLocation: sourceLocation)
            return nil
        }
        return (upserts, removals, result)
    }

    /// The status and headers of a `.reject`, or a recorded failure.
    static func rejected(
        _ decision: Registrar.Decision,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> (status: Int, headers: [SIPHeaders.Field])? {
        guard case .reject(let status, _, let headers) = decision else {
            Issue.record("expected .reject, got \(decision)", sourceLocation: sourceLocation)
            return nil
        }
        return (status, headers)
    }

    // MARK: New bindings and their expiry

    struct ExpiryCase: Sendable, CustomTestStringConvertible {
        var contact: String
        var expiresHeader: Int?
        var granted: Int
        var testDescription: String { "Contact: \(contact), Expires: \(expiresHeader.map(String.init) ?? "none")" }
    }

    /// RFC 3261 §10.3 step 7: the contact's `expires` parameter, else the Expires header, else
    /// the registrar's default; above the maximum the expiry is shortened to it.
    static let expiryCases: [ExpiryCase] = [
        ExpiryCase(contact: "<sip:201@192.0.2.4:5062>", expiresHeader: 600, granted: 600),
        ExpiryCase(contact: "<sip:201@192.0.2.4:5062>;expires=300", expiresHeader: 600, granted: 300),
        ExpiryCase(contact: "<sip:201@192.0.2.4:5062>;expires=900", expiresHeader: nil, granted: 900),
        ExpiryCase(contact: "<sip:201@192.0.2.4:5062>", expiresHeader: nil, granted: settings.defaultExpires),
        ExpiryCase(contact: "<sip:201@192.0.2.4:5062>", expiresHeader: 60, granted: settings.minimumExpires),
        ExpiryCase(contact: "<sip:201@192.0.2.4:5062>", expiresHeader: 86_400, granted: settings.maximumExpires),
        ExpiryCase(contact: "<sip:201@192.0.2.4:5062>;expires=86400", expiresHeader: 600, granted: 7200),
    ]

    @Test(arguments: expiryCases)
    func newBindingGetsTheRequestedExpiry(_ testCase: ExpiryCase) throws {
        let register = try Self.register(contacts: [testCase.contact], expires: testCase.expiresHeader)
        let (upserts, removals, result) = try #require(Self.applied(Self.decide(register)))
        #expect(removals.isEmpty)
        #expect(result == upserts)
        let binding = try #require(upserts.first)
        #expect(upserts.count == 1)
        #expect(binding.aor == Self.aor)
        #expect(binding.contact == "sip:201@192.0.2.4:5062")
        #expect(binding.expiresAt == Self.now.addingTimeInterval(TimeInterval(testCase.granted)))
        #expect(binding.callID == Self.callID)
        #expect(binding.cseq == 10)
        #expect(binding.source == Self.source)
        #expect(binding.updatedAt == Self.now)
    }

    @Test func severalContactsInOneRegisterEachGetABinding() throws {
        let register = try Self.register(
            contacts: ["<sip:201@192.0.2.4:5062>;expires=120, <sip:201@198.51.100.7:5060>", "<sip:201@[2001:db8::7]>"],
            expires: 600
        )
        let (upserts, removals, result) = try #require(Self.applied(Self.decide(register)))
        #expect(removals.isEmpty)
        #expect(
            upserts.map(\.contact) == ["sip:201@192.0.2.4:5062", "sip:201@198.51.100.7:5060", "sip:201@[2001:db8::7]"]
        )
        #expect(upserts.map(\.expiresAt) == [120, 600, 600].map { Self.now.addingTimeInterval($0) })
        #expect(result == upserts)
    }

    @Test func aContactNamedTwiceInOneRegisterGetsOneBindingFromItsLastMention() throws {
        let register = try Self.register(
            contacts: ["<sip:201@192.0.2.4:5062>;expires=120", "<sip:201@192.0.2.4:5062>;expires=900"],
            expires: 600
        )
        let (upserts, removals, result) = try #require(Self.applied(Self.decide(register)))
        #expect(removals.isEmpty)
        #expect(upserts.map(\.expiresAt) == [Self.now.addingTimeInterval(900)])
        #expect(result == upserts)

        let removedAgain = try Self.register(
            contacts: ["<sip:201@192.0.2.4:5062>", "<sip:201@192.0.2.4:5062>;expires=0"],
            expires: 600
        )
        let existing = [Self.binding("sip:201@192.0.2.4:5062", callID: "old@192.0.2.4")]
        let (upsertsAfter, removalsAfter, resultAfter) = try #require(
            Self.applied(Self.decide(removedAgain, existing: existing))
        )
        #expect(upsertsAfter.isEmpty)
        #expect(removalsAfter == ["sip:201@192.0.2.4:5062"])
        #expect(resultAfter.isEmpty)
    }

    // MARK: Refreshes and ordering (§10.3 step 7)

    @Test func refreshWithAHigherCSeqReplacesTheBinding() throws {
        let existing = [
            Self.binding("sip:201@192.0.2.4:5062", expiresIn: 30, cseq: 5),
            Self.binding("sip:201@198.51.100.7", callID: "other@198.51.100.7"),
        ]
        let register = try Self.register(contacts: ["<sip:201@192.0.2.4:5062>"], expires: 600, cseq: 6)
        let (upserts, removals, result) = try #require(Self.applied(Self.decide(register, existing: existing)))
        #expect(removals.isEmpty)
        let refreshed = try #require(upserts.first)
        #expect(upserts.count == 1)
        #expect(refreshed.cseq == 6)
        #expect(refreshed.expiresAt == Self.now.addingTimeInterval(600))
        #expect(result.count == 2)
        #expect(result.contains(existing[1]))
        #expect(result.contains(refreshed))
    }

    @Test(arguments: [UInt32(5), 4, 1])
    func sameCallIDWithoutAHigherCSeqIsOutOfOrder(cseq: UInt32) throws {
        let existing = [Self.binding("sip:201@192.0.2.4:5062", cseq: 5)]
        let register = try Self.register(contacts: ["<sip:201@192.0.2.4:5062>"], expires: 600, cseq: cseq)
        let (status, _) = try #require(Self.rejected(Self.decide(register, existing: existing)))
        #expect(status == 500)
    }

    @Test func anotherCallIDUpdatesWhateverItsCSeq() throws {
        // A phone that rebooted starts a new Call-ID with a low CSeq: that is a new registration.
        let existing = [Self.binding("sip:201@192.0.2.4:5062", cseq: 500)]
        let register = try Self.register(
            contacts: ["<sip:201@192.0.2.4:5062>"],
            expires: 600,
            callID: "rebooted@192.0.2.4",
            cseq: 1
        )
        let (upserts, _, result) = try #require(Self.applied(Self.decide(register, existing: existing)))
        #expect(upserts.map(\.callID) == ["rebooted@192.0.2.4"])
        #expect(upserts.map(\.cseq) == [1])
        #expect(result == upserts)
    }

    // MARK: Removals

    @Test func expiresZeroRemovesThatContactOnly() throws {
        let existing = [Self.binding("sip:201@192.0.2.4:5062"), Self.binding("sip:201@198.51.100.7")]
        let register = try Self.register(contacts: ["<sip:201@192.0.2.4:5062>;expires=0"], expires: 600, cseq: 6)
        let (upserts, removals, result) = try #require(Self.applied(Self.decide(register, existing: existing)))
        #expect(upserts.isEmpty)
        #expect(removals == ["sip:201@192.0.2.4:5062"])
        #expect(result == [existing[1]])
    }

    @Test func wildcardWithExpiresZeroRemovesEveryBinding() throws {
        let existing = [
            Self.binding("sip:201@192.0.2.4:5062"),
            Self.binding("sip:201@198.51.100.7", callID: "other@198.51.100.7", cseq: 900),
        ]
        let register = try Self.register(contacts: ["*"], expires: 0, cseq: 6)
        let (upserts, removals, result) = try #require(Self.applied(Self.decide(register, existing: existing)))
        #expect(upserts.isEmpty)
        #expect(Set(removals) == ["sip:201@192.0.2.4:5062", "sip:201@198.51.100.7"])
        #expect(result.isEmpty)
    }

    @Test func wildcardIsOutOfOrderWhenABindingOfTheSameCallIDHasTheSameCSeq() throws {
        // §10.3 step 6: such a binding "MUST only be removed if the CSeq in the request is higher".
        let existing = [Self.binding("sip:201@192.0.2.4:5062", cseq: 6)]
        let register = try Self.register(contacts: ["*"], expires: 0, cseq: 6)
        let (status, _) = try #require(Self.rejected(Self.decide(register, existing: existing)))
        #expect(status == 500)
    }

    struct InvalidWildcard: Sendable, CustomTestStringConvertible {
        var contacts: [String]
        var expires: Int?
        var testDescription: String {
            "Contact: \(contacts.joined(separator: ", ")), Expires: \(expires.map(String.init) ?? "none")"
        }
    }

    /// RFC 3261 §10.3 step 6: `*` with another Contact or an expiry other than zero is a 400.
    @Test(arguments: [
        InvalidWildcard(contacts: ["*", "<sip:201@192.0.2.4:5062>"], expires: 0),
        InvalidWildcard(contacts: ["*, <sip:201@192.0.2.4:5062>"], expires: 0),
        InvalidWildcard(contacts: ["*"], expires: 3600),
        InvalidWildcard(contacts: ["*"], expires: nil),
    ])
    func invalidWildcardIsABadRequest(_ testCase: InvalidWildcard) throws {
        let register = try Self.register(contacts: testCase.contacts, expires: testCase.expires)
        let existing = [Self.binding("sip:201@192.0.2.4:5062")]
        let (status, _) = try #require(Self.rejected(Self.decide(register, existing: existing)))
        #expect(status == 400)
    }

    // MARK: Limits

    @Test(arguments: [
        (contact: "<sip:201@192.0.2.4:5062>", expires: 59),
        (contact: "<sip:201@192.0.2.4:5062>", expires: 1),
        (contact: "<sip:201@192.0.2.4:5062>;expires=30", expires: 3600),
    ])
    func expiryBelowTheMinimumIsIntervalTooBrief(contact: String, expires: Int) throws {
        let register = try Self.register(contacts: [contact], expires: expires)
        let (status, headers) = try #require(Self.rejected(Self.decide(register)))
        #expect(status == 423)
        #expect(headers == [SIPHeaders.Field(name: .minExpires, value: String(Self.settings.minimumExpires))])
    }

    @Test func defaultExpiryIsKeptInsideTheLimits() {
        #expect(Registrar.Settings(minimumExpires: 600, maximumExpires: 7200, defaultExpires: 60).defaultExpires == 600)
        #expect(Registrar.Settings(minimumExpires: 60, maximumExpires: 300).defaultExpires == 300)
    }

    @Test func tooManyContactsAreRefused() throws {
        let limit = Registrar.maximumBindingsPerAOR
        let existing = (1..<limit).map { Self.binding("sip:201@192.0.2.\($0)") }
        let one = try Self.register(contacts: ["<sip:201@198.51.100.1>"], expires: 600)
        let atLimit = try #require(Self.applied(Self.decide(one, existing: existing)))
        #expect(atLimit.result.count == limit)

        let two = try Self.register(contacts: ["<sip:201@198.51.100.1>", "<sip:201@198.51.100.2>"], expires: 600)
        let (status, _) = try #require(Self.rejected(Self.decide(two, existing: existing)))
        #expect(status == 403)

        let manyAtOnce = try Self.register(contacts: (0...limit).map { "<sip:201@203.0.113.\($0)>" }, expires: 600)
        let (statusAtOnce, _) = try #require(Self.rejected(Self.decide(manyAtOnce)))
        #expect(statusAtOnce == 403)
    }

    @Test func expiredBindingsDoNotCountTowardsTheLimit() throws {
        let limit = Registrar.maximumBindingsPerAOR
        let existing = (0..<limit).map { Self.binding("sip:201@192.0.2.\($0)", expiresIn: -1) }
        let register = try Self.register(contacts: ["<sip:201@198.51.100.1>"], expires: 600)
        let (upserts, _, result) = try #require(Self.applied(Self.decide(register, existing: existing)))
        #expect(result == upserts)
    }

    @Test(arguments: ["<sip:201@192.0.2.4:5062", "sip:201@192.0.2.4;expires=60>", "<>"])
    func malformedContactIsABadRequest(contact: String) throws {
        let register = try Self.register(contacts: [contact], expires: 600)
        let (status, _) = try #require(Self.rejected(Self.decide(register)))
        #expect(status == 400)
    }

    // MARK: Queries and expiry

    @Test func registerWithoutContactIsAQueryForLiveBindings() throws {
        let live = [Self.binding("sip:201@192.0.2.4:5062"), Self.binding("sip:201@198.51.100.7", expiresIn: 1)]
        let expired = [
            Self.binding("sip:201@203.0.113.9", expiresIn: -30), Self.binding("sip:201@203.0.113.8", expiresIn: 0),
        ]
        let register = try Self.register(contacts: [])
        let (upserts, removals, result) = try #require(Self.applied(Self.decide(register, existing: live + expired)))
        #expect(upserts.isEmpty)
        #expect(removals.isEmpty)
        #expect(result == live)
    }

    @Test func expiredBindingsAreNotListedAndDoNotBlockANewRegistration() throws {
        // The expired binding of the same contact has the same Call-ID and a higher CSeq: it is
        // gone, so it neither makes the REGISTER out of order nor shows in the result.
        let existing = [
            Self.binding("sip:201@192.0.2.4:5062", expiresIn: -1, cseq: 50),
            Self.binding("sip:201@203.0.113.9", expiresIn: -30),
        ]
        let register = try Self.register(contacts: ["<sip:201@192.0.2.4:5062>"], expires: 600, cseq: 7)
        let (upserts, _, result) = try #require(Self.applied(Self.decide(register, existing: existing)))
        #expect(upserts.map(\.cseq) == [7])
        #expect(result == upserts)
    }

    // MARK: What a binding keeps

    @Test func bindingKeepsInstanceRegIDQAndUserAgent() throws {
        let register = try Self.register(
            contacts: [
                "<sip:201@192.0.2.4:5062;transport=tcp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";reg-id=2;q=0.7"
            ],
            expires: 600,
            extraHeaders: ["User-Agent: Yealink SIP-T46U 66.86.0.15"]
        )
        let (upserts, _, _) = try #require(Self.applied(Self.decide(register)))
        let binding = try #require(upserts.first)
        #expect(binding.contact == "sip:201@192.0.2.4:5062;transport=tcp")
        #expect(binding.instanceID == "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>")
        #expect(binding.regID == 2)
        #expect(binding.q == 0.7)
        #expect(binding.userAgent == "Yealink SIP-T46U 66.86.0.15")
    }

    @Test func bindingWithoutOptionalParametersLeavesThemEmpty() throws {
        let register = try Self.register(contacts: ["<sip:201@192.0.2.4:5062>"], expires: 600)
        let binding = try #require(Self.applied(Self.decide(register))?.upserts.first)
        #expect(binding.instanceID == nil)
        #expect(binding.regID == nil)
        #expect(binding.q == nil)
        #expect(binding.userAgent == nil)
    }

    // MARK: The 200 (§10.3 step 8)

    @Test func okResponseListsEveryBindingWithItsRemainingTimeAndADate() throws {
        let register = try Self.register(contacts: ["<sip:201@192.0.2.4:5062>"], expires: 600, cseq: 11)
        let bindings = [
            Self.binding("sip:201@198.51.100.7", expiresIn: 299.6),
            Self.binding("sip:201@192.0.2.4:5062", expiresIn: 600),
            Self.binding("sip:201@203.0.113.9", expiresIn: -5),
        ]
        let response = Self.registrar.okResponse(to: register, bindings: bindings, now: Self.now, toTag: "reg-tag")
        #expect(response.statusCode == 200)
        #expect(
            response.headers.values(.contact) == [
                "<sip:201@192.0.2.4:5062>;expires=600",
                "<sip:201@198.51.100.7>;expires=300",
                "<sip:201@203.0.113.9>;expires=0",
            ]
        )
        #expect(response.headers[.date] == "Tue, 14 Nov 2023 22:13:20 GMT")
        #expect(response.headers[.callID] == Self.callID)
        #expect(response.headers[.cseq] == "11 REGISTER")
        #expect(response.to?.tag == "reg-tag")
        #expect(response.headers.values(.via) == register.headers.values(.via))
    }

    @Test func okResponseToAQueryWithNoBindingsHasNoContact() throws {
        let register = try Self.register(contacts: [])
        let response = Self.registrar.okResponse(to: register, bindings: [], now: Self.now, toTag: "t")
        #expect(response.statusCode == 200)
        #expect(!response.headers.contains(.contact))
        #expect(response.headers.contains(.date))
    }

    @Test(arguments: [
        (seconds: 0.0, text: "Thu, 01 Jan 1970 00:00:00 GMT"),
        (seconds: 1_289_690_940, text: "Sat, 13 Nov 2010 23:29:00 GMT"),
        (seconds: 951_782_400, text: "Tue, 29 Feb 2000 00:00:00 GMT"),
    ])
    func dateIsRFC1123InGMT(seconds: Double, text: String) {
        #expect(Registrar.httpDate(Date(timeIntervalSince1970: seconds)) == text)
    }
}
