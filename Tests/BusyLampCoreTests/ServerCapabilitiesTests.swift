import BusyLampCore
import SIPCore
import Testing

@Suite("ServerCapabilities", .timeLimit(.minutes(1)))
struct ServerCapabilitiesTests {
    static let presenceServer = ServerCapabilities(
        allowedMethods: [.options, .register, .subscribe, .notify],
        acceptedContentTypes: ["application/dialog-info+xml", "application/pidf+xml"],
        eventPackages: ["dialog", "presence"],
        supportedExtensions: ["replaces", "gruu"]
    )

    struct NotARequest: Error {}

    static func options(extraHeaders: [String]) throws -> SIPRequest {
        let lines =
            [
                "OPTIONS sip:sip.busylamp.test SIP/2.0",
                "Via: SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bK-opt",
                "Max-Forwards: 70",
                "From: <sip:201@sip.busylamp.test>;tag=a1",
                "To: <sip:sip.busylamp.test>",
                "Call-ID: opt-1@192.0.2.4",
                "CSeq: 1 OPTIONS",
            ] + extraHeaders + ["Content-Length: 0"]
        let text = lines.joined(separator: "\r\n") + "\r\n\r\n"
        guard case .request(let request) = try SIPParser().parse(Array(text.utf8)) else { throw NotARequest() }
        return request
    }

    @Test func registrarDescribesItselfWithoutAllowEvents() {
        var headers = SIPHeaders()
        ServerCapabilities.registrar.describe(into: &headers)
        #expect(headers[.allow] == "OPTIONS, REGISTER")
        // RFC 3261 §20.1: an empty Accept says no body is accepted, so it is present and empty.
        #expect(headers[.accept] == "")
        #expect(headers[.supported] == "")
        // RFC 6665 §8.2.2: Allow-Events lists at least one package; with none it is left out.
        #expect(!headers.contains(.allowEvents))
    }

    /// What the server answers with since issue 3: SUBSCRIBE served, for the two BLF packages.
    @Test func blfServerAllowsSubscribeForDialogAndPresence() {
        var headers = SIPHeaders()
        ServerCapabilities.blf.describe(into: &headers)
        #expect(headers[.allow] == "OPTIONS, REGISTER, SUBSCRIBE")
        #expect(headers[.allowEvents] == "dialog, presence")
        #expect(headers[.accept] == "")
    }

    @Test func describeListsMethodsTypesPackagesAndExtensions() {
        var headers = SIPHeaders([(.callID, "kept")])
        Self.presenceServer.describe(into: &headers)
        #expect(headers[.callID] == "kept")
        #expect(headers.listElements(.allow) == ["OPTIONS", "REGISTER", "SUBSCRIBE", "NOTIFY"])
        #expect(headers.listElements(.accept) == ["application/dialog-info+xml", "application/pidf+xml"])
        #expect(headers.listElements(.allowEvents) == ["dialog", "presence"])
        #expect(headers.listElements(.supported) == ["replaces", "gruu"])
        #expect(headers.values(.allowEvents).count == 1)
    }

    struct RequireCase: Sendable, CustomTestStringConvertible {
        var require: [String]
        var unsupported: [String]
        var testDescription: String { require.isEmpty ? "no Require" : require.joined(separator: " / ") }
    }

    /// RFC 3261 §8.2.2.3: the option tags we do not know are answered with 420 and Unsupported;
    /// option tags compare case-insensitively.
    @Test(arguments: [
        RequireCase(require: [], unsupported: []),
        RequireCase(require: ["Require: replaces"], unsupported: []),
        RequireCase(require: ["Require: REPLACES, Gruu"], unsupported: []),
        RequireCase(require: ["Require: 100rel, replaces"], unsupported: ["100rel"]),
        RequireCase(require: ["Require: 100rel", "Require: timer, gruu"], unsupported: ["100rel", "timer"]),
    ])
    func unsupportedRequirementsAreTheUnknownTags(_ testCase: RequireCase) throws {
        let request = try Self.options(extraHeaders: testCase.require)
        #expect(Self.presenceServer.unsupportedRequirements(of: request) == testCase.unsupported)
    }

    @Test func registrarSupportsNoExtensionYet() throws {
        let request = try Self.options(extraHeaders: ["Require: replaces, 100rel"])
        #expect(ServerCapabilities.registrar.unsupportedRequirements(of: request) == ["replaces", "100rel"])
    }
}
