import Foundation
import Testing

extension EndToEnd {
    /// BLF and presence subscriptions against the real server, driven by the `subscribe_*`
    /// scenarios of `tests/sipp/`, each over UDP and over TCP (issue 3, "Done when"): every
    /// admission outcome, the initial NOTIFY, refresh, unsubscribe, expiry, a watcher that answers
    /// 481 or never answers, and presence open/closed as the watched line registers.
    ///
    /// Every server here serves `DirectoryFixture.subscriptionYAML`: one line or account per
    /// admission rule. Alice (201, `acme`) watches Bob (202) unless a case says otherwise.
    @Suite("Subscriptions (SIPp)", .timeLimit(.minutes(3)))
    struct Subscriptions {
        static let domain = DirectoryFixture.domain
        static let alice = DirectoryFixture.alice
        static let bob = DirectoryFixture.bob

        // MARK: Accepted

        struct Accepted: CustomTestStringConvertible, Sendable {
            var label: String
            /// The Request-URI's USER@HOST.
            var target: String
            var expires: Int
            /// The most the 200's Expires may say.
            var limit: Int
            var testDescription: String { label }
        }

        /// RFC 6665 §4.2.1.1: the target by extension or number, at our domain or our address;
        /// an expiry above `max_expires` is shortened to it (issue 3).
        static let acceptedCases: [Accepted] = [
            Accepted(label: "extension@domain", target: "202@\(domain)", expires: 600, limit: 600),
            Accepted(label: "number@domain", target: "6495550202@\(domain)", expires: 600, limit: 600),
            Accepted(label: "extension@127.0.0.1", target: "202@127.0.0.1", expires: 600, limit: 600),
            Accepted(label: "number@127.0.0.1", target: "6495550202@127.0.0.1", expires: 600, limit: 600),
            Accepted(
                label: "Expires above max_expires",
                target: "202@\(domain)",
                expires: 86_400,
                limit: DirectoryFixture.maximumExpires
            ),
        ]

        /// 200 with To tag, Contact and Expires, then the initial NOTIFY: its dialog, headers and
        /// body (version 0, full, entity as the Request-URI wrote it, Bob's idle dialog).
        @Test(arguments: acceptedCases, Transport.allCases)
        func accepted(_ accepted: Accepted, over transport: Transport) async throws {
            try await withSubscriptionServer("subscribe-accepted-\(transport)") { server in
                let run = try await SIPpRun.run(
                    "subscribe_dialog",
                    against: server,
                    over: transport,
                    line: Self.alice,
                    keys: [
                        "target": accepted.target,
                        "entity": "sip:\(accepted.target)",
                        "dialog_id": Self.bob.extensionNumber,
                        "expires": String(accepted.expires),
                        "expires_limit": String(accepted.limit),
                    ]
                )
                expectPass(run, "subscribe_dialog (\(accepted.label))", transport, server)
            }
        }

        // MARK: Refused

        struct Refusal: CustomTestStringConvertible, Sendable {
            var label: String
            var watcher: DirectoryFixture.Line = DirectoryFixture.alice
            var target: String
            /// `nil`: the SUBSCRIBE has no Event header (`subscribe_no_event.xml`).
            var event: String? = "dialog"
            var accept = "application/dialog-info+xml"
            var expires = 600
            var status: Int
            /// The reason phrase must say why: it contains one of these (case-insensitive).
            var reasonWords: [String]
            var presenceDefault = true
            var testDescription: String { "\(status) \(label)" }
        }

        /// Issue 3's admission order, one case per refusal (and per cause of a 403).
        static let refusalCases: [Refusal] = [
            Refusal(
                label: "Event: message-summary",
                target: "202@\(domain)",
                event: "message-summary",
                accept: "application/simple-message-summary",
                status: 489,
                reasonWords: ["event"]
            ),
            Refusal(
                label: "Event: ua-profile",
                target: "202@\(domain)",
                event: "ua-profile",
                accept: "*/*",
                status: 489,
                reasonWords: ["event"]
            ),
            Refusal(label: "no Event header", target: "202@\(domain)", event: nil, status: 489, reasonWords: ["event"]),
            Refusal(
                label: "dialog, Accept without dialog-info",
                target: "202@\(domain)",
                accept: "application/pidf+xml",
                status: 406,
                reasonWords: ["accept", "type"]
            ),
            Refusal(
                label: "presence, Accept without pidf",
                target: "202@\(domain)",
                event: "presence",
                accept: "application/dialog-info+xml",
                status: 406,
                reasonWords: ["accept", "type"]
            ),
            Refusal(
                label: "another account's extension",
                target: "\(DirectoryFixture.gus.extensionNumber)@\(domain)",
                status: 404,
                reasonWords: ["unknown", "target", "not found"]
            ),
            Refusal(
                label: "no such number",
                target: "6495559999@\(domain)",
                status: 404,
                reasonWords: ["unknown", "target", "not found"]
            ),
            Refusal(
                label: "host not ours",
                target: "202@example.com",
                status: 404,
                reasonWords: ["domain", "host", "served"]
            ),
            Refusal(
                label: "another account's number",
                target: "\(DirectoryFixture.gus.number)@\(domain)",
                status: 403,
                reasonWords: ["account"]
            ),
            Refusal(
                label: "another group",
                target: "\(DirectoryFixture.sam.extensionNumber)@\(domain)",
                status: 403,
                reasonWords: ["group"]
            ),
            Refusal(
                label: "presence off on the line",
                target: "\(DirectoryFixture.mia.extensionNumber)@\(domain)",
                status: 403,
                reasonWords: ["presence"]
            ),
            Refusal(
                label: "presence off for the account",
                watcher: DirectoryFixture.gus,
                target: "\(DirectoryFixture.hal.extensionNumber)@\(domain)",
                status: 403,
                reasonWords: ["presence"]
            ),
            Refusal(
                label: "presence_default false",
                watcher: DirectoryFixture.kim,
                target: "\(DirectoryFixture.lou.extensionNumber)@\(domain)",
                status: 403,
                reasonWords: ["presence"],
                presenceDefault: false
            ),
            Refusal(
                label: "same_network_only, target not registered",
                watcher: DirectoryFixture.ian,
                target: "\(DirectoryFixture.jan.extensionNumber)@\(domain)",
                status: 403,
                reasonWords: ["network"]
            ),
            Refusal(
                label: "Expires below min_expires",
                target: "202@\(domain)",
                expires: 10,
                status: 423,
                reasonWords: ["brief", "interval"]
            ),
        ]

        /// 401, then the refusal's status with a reason phrase that says why (and Allow-Events on
        /// 489, Min-Expires on 423, checked by the scenario).
        @Test(arguments: refusalCases, Transport.allCases)
        func refused(_ refusal: Refusal, over transport: Transport) async throws {
            let directory = DirectoryFixture.subscriptionYAML(presenceDefault: refusal.presenceDefault)
            try await withSubscriptionServer("subscribe-refused-\(transport)", directory: directory) { server in
                var keys = ["target": refusal.target]
                let scenario: String
                if let event = refusal.event {
                    scenario = "subscribe_refused"
                    keys["event"] = event
                    keys["accept"] = refusal.accept
                    keys["expires"] = String(refusal.expires)
                    keys["status"] = String(refusal.status)
                    keys["min_expires"] = String(DirectoryFixture.minimumExpires)
                } else {
                    scenario = "subscribe_no_event"
                }
                let run = try await SIPpRun.run(
                    scenario,
                    against: server,
                    over: transport,
                    line: refusal.watcher,
                    keys: keys
                )
                expectPass(run, "\(scenario) (\(refusal.label))", transport, server)
                let phrase = Self.reasonPhrase(in: run.log, status: refusal.status)
                #expect(
                    phrase.map { phrase in refusal.reasonWords.contains { phrase.lowercased().contains($0) } } == true,
                    "the \(refusal.status) for \(refusal.label) over \(transport) should say why (one of \(refusal.reasonWords)); its reason phrase: \(phrase ?? "none logged")\n\(run.report)"
                )
            }
        }

        /// `same_network_only` lets a watcher in once the target registered from the watcher's
        /// address (everything here is 127.0.0.1): Jan registers, then Ian's SUBSCRIBE gets 200.
        @Test(arguments: Transport.allCases)
        func sameNetworkOnlyAdmitsOnceTheTargetRegistered(over transport: Transport) async throws {
            try await withSubscriptionServer("subscribe-same-network-\(transport)") { server in
                let jan = DirectoryFixture.jan
                let register = try await SIPpRun.run("register", against: server, over: transport, line: jan)
                expectPass(register, "register (Jan, the target)", transport, server)
                let run = try await SIPpRun.run(
                    "subscribe_dialog",
                    against: server,
                    over: transport,
                    line: DirectoryFixture.ian,
                    keys: [
                        "target": "\(jan.extensionNumber)@\(Self.domain)",
                        "entity": "sip:\(jan.extensionNumber)@\(Self.domain)",
                        "dialog_id": jan.extensionNumber,
                        "expires": "600",
                        "expires_limit": "600",
                    ]
                )
                expectPass(run, "subscribe_dialog (same_network_only, Jan registered)", transport, server)
            }
        }

        // MARK: Lifecycle

        /// In-dialog refresh: 200 and a NOTIFY with version 1 and a higher CSeq; a refresh naming
        /// an unknown dialog: 481.
        @Test(arguments: Transport.allCases)
        func refresh(over transport: Transport) async throws {
            try await runLifecycle("subscribe_refresh", over: transport, keys: ["expires": "600"])
        }

        /// Expires: 0: 200, a final NOTIFY terminated;reason=timeout, then the dialog is unknown (481).
        @Test(arguments: Transport.allCases)
        func unsubscribe(over transport: Transport) async throws {
            try await runLifecycle("subscribe_unsubscribe", over: transport, keys: ["expires": "600"])
        }

        /// With min_expires 2, a two-second subscription ends by itself with a NOTIFY
        /// terminated;reason=timeout (the expiry sweep runs every second).
        @Test(arguments: Transport.allCases)
        func expiry(over transport: Transport) async throws {
            try await runLifecycle(
                "subscribe_expiry",
                over: transport,
                directory: DirectoryFixture.subscriptionYAML(minimumExpires: 2),
                keys: ["expires": "2"]
            )
        }

        /// A NOTIFY answered 481 ends the subscription at once: no more NOTIFYs, a refresh gets 481.
        @Test(arguments: Transport.allCases)
        func watcherAnswering481(over transport: Transport) async throws {
            try await runLifecycle("subscribe_notify_481", over: transport, keys: ["expires": "600"])
        }

        /// RFC 3261 T1 of 50 ms makes Timer F 3.2 s; the limit of two NOTIFY timeouts in a row.
        static let shortTimers = ["sip_timer_t1_ms": "50", "notify_failure_limit": "2"]

        /// A watcher that never answers: after `notify_failure_limit` NOTIFY timeouts in a row
        /// (the server retransmitting over UDP meanwhile), the subscription is gone (481).
        @Test(arguments: Transport.allCases)
        func watcherNeverAnswering(over transport: Transport) async throws {
            try await runLifecycle(
                "subscribe_no_answer",
                over: transport,
                config: Self.shortTimers,
                keys: ["expires": "600", "unanswered": "2", "timer_f_ms": "4000"],
                timeout: "20s"
            )
        }

        // MARK: Presence

        /// PIDF closed while Bob is unregistered, open when he registers, closed again when he
        /// unregisters (Bob is a second SIPp running `unregister.xml` while Alice's waits).
        @Test(arguments: Transport.allCases)
        func presenceFollowsRegistration(over transport: Transport) async throws {
            try await withSubscriptionServer("subscribe-presence-\(transport)") { server in
                let target = "\(Self.bob.extensionNumber)@\(Self.domain)"
                async let watching = SIPpRun.run(
                    "subscribe_presence",
                    against: server,
                    over: transport,
                    line: Self.alice,
                    keys: ["target": target, "entity": "sip:\(target)", "expires": "600"],
                    timeout: "30s"
                )
                // Bob registers only once Alice holds the first NOTIFY (closed).
                let closedSeen = try await eventually(within: .seconds(10)) {
                    Self.sippLogs(of: "subscribe_presence", over: transport, in: server.workDirectory)
                        .contains("closed")
                }
                let bobRegistering = try await SIPpRun.run(
                    "unregister",
                    against: server,
                    over: transport,
                    line: Self.bob
                )
                let watcher = try await watching
                #expect(closedSeen, "Alice's first NOTIFY (closed) did not arrive within 10 s\n\(watcher.report)")
                expectPass(bobRegistering, "unregister (Bob registers, then unregisters)", transport, server)
                expectPass(watcher, "subscribe_presence", transport, server)
            }
        }

        // MARK: Helpers

        /// Alice watches Bob's dialog state through `scenario`.
        func runLifecycle(
            _ scenario: String,
            over transport: Transport,
            directory: String = DirectoryFixture.subscriptionYAML(),
            config: [String: String] = [:],
            keys: [String: String],
            timeout: String = SIPpRun.scenarioTimeout,
            sourceLocation: SourceLocation = #_sourceLocation
        ) async throws {
            try await withSubscriptionServer("\(scenario)-\(transport)", directory: directory, config: config) {
                server in
                let run = try await SIPpRun.run(
                    scenario,
                    against: server,
                    over: transport,
                    line: Self.alice,
                    keys: keys.merging(["target": "\(Self.bob.extensionNumber)@\(Self.domain)"]) { mine, _ in mine },
                    timeout: timeout
                )
                expectPass(run, scenario, transport, server, sourceLocation: sourceLocation)
            }
        }

        /// `withServer` serving `directory`, with `config` (snake_case keys) as a `--config` file.
        func withSubscriptionServer(
            _ label: String,
            directory: String = DirectoryFixture.subscriptionYAML(),
            config: [String: String] = [:],
            _ body: (ServerProcess) async throws -> Void
        ) async throws {
            try await withServer(label, directory: directory, config: config, body)
        }

        /// The reason phrase the refusal scenarios log as "refused CODE PHRASE".
        static func reasonPhrase(in log: String, status: Int) -> String? {
            for line in log.split(separator: "\n") {
                guard let range = line.range(of: "refused \(status) ") else { continue }
                return String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
            }
            return nil
        }

        /// What the running SIPp processes for `scenario` over `transport` logged so far.
        static func sippLogs(of scenario: String, over transport: Transport, in directory: URL) -> String {
            let prefix = "sipp-\(scenario)-\(transport.rawValue)-"
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".log") }
                .compactMap { try? String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8) }
                .joined(separator: "\n")
        }
    }
}
