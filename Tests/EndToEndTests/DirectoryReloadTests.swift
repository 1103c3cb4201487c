import Foundation
import Testing

extension EndToEnd {
    /// Rule changes reach live subscriptions (issue 3): the operator edits the directory file and
    /// sends SIGHUP; a watcher whose target may no longer be watched gets its final NOTIFY with
    /// the reason RFC 6665 gives (`rejected` for a scope or presence change, `noresource` for a
    /// deleted line), without waiting for its subscription to expire.
    @Suite("Directory reload", .timeLimit(.minutes(3)))
    struct DirectoryReload {
        struct Change: CustomTestStringConvertible, Sendable {
            var label: String
            var reason: String
            /// The new directory file, from the fixture's.
            var edit: @Sendable (String) -> String
            var testDescription: String { label }
        }

        static let bob = DirectoryFixture.bob

        /// The fixture's file with `body` applied to its lines and the index of Bob's `number:`
        /// line (his entry is `- extension:`, `number:`, `name:`, `password:`).
        static func editingBob(_ yaml: String, _ body: (inout [String], Int) -> Void) -> String {
            var lines = yaml.components(separatedBy: "\n")
            guard let number = lines.firstIndex(where: { $0.contains("number: \"\(bob.number)\"") }) else {
                return yaml
            }
            body(&lines, number)
            return lines.joined(separator: "\n")
        }

        /// Adds `key: value` to Bob's entry, indented like its other keys.
        static func addingToBob(_ field: String) -> @Sendable (String) -> String {
            { yaml in
                editingBob(yaml) { lines, number in
                    let indentation = lines[number].prefix { $0 == " " }
                    lines.insert(indentation + field, at: number + 3)
                }
            }
        }

        static let changes: [Change] = [
            Change(label: "presence turned off for the line", reason: "rejected", edit: addingToBob("presence: false")),
            Change(label: "line moved to another group", reason: "rejected", edit: addingToBob("group: SALES")),
            Change(label: "line deleted", reason: "noresource") { yaml in
                editingBob(yaml) { lines, number in lines.removeSubrange((number - 1)...(number + 2)) }
            },
        ]

        @Test(arguments: changes, Transport.allCases)
        func watcherGetsAFinalNotify(_ change: Change, over transport: Transport) async throws {
            let original = DirectoryFixture.yaml
            let edited = change.edit(original)
            try #require(edited != original, "the edit of \(change.label) did not apply to the fixture's file")

            try await withServer("reload-\(change.reason)-\(transport)") { server in
                let watcher = Task {
                    try await SIPpRun.run(
                        "watcher_until_rules_end_it",
                        against: server,
                        over: transport,
                        line: DirectoryFixture.alice,
                        keys: ["target": Self.bob.extensionNumber, "reason": change.reason]
                    )
                }
                // SUBSCRIBE, 401, SUBSCRIBE, 200, NOTIFY, 200 first.
                try await Task.sleep(for: .seconds(1.5))
                let file = server.workDirectory.appendingPathComponent("directory.yaml")
                try edited.write(to: file, atomically: true, encoding: .utf8)
                server.process.signal(SIGHUP)

                let run = try await watcher.value
                #expect(
                    run.exitCode == 0,
                    "after \(change.label) and SIGHUP, no NOTIFY terminated;reason=\(change.reason)\n\(run.report)\nserver output:\n\(server.output)"
                )
            }
        }

        /// A new platform domain reaches what was derived from it at start (issue 8): the host
        /// names that mean this server and the digest realm. A phone of the new domain registers.
        @Test func domainChangeReachesTheRealmAndHostNames() async throws {
            try await withServer("reload-domain") { server in
                let newDomain = "sip.renamed.test"
                let edited = DirectoryFixture.yaml.replacingOccurrences(
                    of: "domain: \(DirectoryFixture.domain)",
                    with: "domain: \(newDomain)"
                )
                try #require(edited != DirectoryFixture.yaml)
                let file = server.workDirectory.appendingPathComponent("directory.yaml")
                try edited.write(to: file, atomically: true, encoding: .utf8)
                server.process.signal(SIGHUP)
                let reloaded = try await eventually(within: .seconds(5)) {
                    server.output.contains("Directory reloaded")
                }
                #expect(reloaded, "\(server.output)")
                let run = try await SIPpRun.run(
                    "register",
                    against: server,
                    over: .udp,
                    line: DirectoryFixture.alice,
                    domain: newDomain
                )
                expectPass(run, "register at the new domain \(newDomain)", .udp, server)
            }
        }
    }
}
