import Testing

extension EndToEnd {
    /// The SIPp scenarios of `tests/sipp/`, each over UDP and over TCP, one call each.
    @Suite("SIPp scenarios", .timeLimit(.minutes(3)))
    struct SIPpScenarios {
        struct Scenario: CustomTestStringConvertible, Sendable {
            var file: String
            var line: DirectoryFixture.Line
            var password: String?
            var testDescription: String { file }
        }

        static let scenarios: [Scenario] = [
            // 401 (MD5 first), then 200 listing the binding.
            Scenario(file: "register", line: DirectoryFixture.alice),
            // 401, then 401 or 403: never 200.
            Scenario(file: "register_wrong_password", line: DirectoryFixture.bob, password: "not-bobs-password"),
            // 423 with Min-Expires.
            Scenario(file: "register_interval_too_brief", line: DirectoryFixture.joe),
            // Expires: 0 removes the binding.
            Scenario(file: "unregister", line: DirectoryFixture.leo),
            // 200 with Allow, Accept, Allow-Events, Supported.
            Scenario(file: "options", line: DirectoryFixture.alice),
            // FOO: 501.
            Scenario(file: "unknown_method", line: DirectoryFixture.alice),
        ]

        @Test(arguments: scenarios, Transport.allCases)
        func scenario(_ scenario: Scenario, over transport: Transport) async throws {
            try await withServer("sipp-\(scenario.file)-\(transport)") { server in
                let run = try await SIPpRun.run(
                    scenario.file,
                    against: server,
                    over: transport,
                    line: scenario.line,
                    password: scenario.password
                )
                #expect(
                    run.exitCode == 0,
                    "SIPp \(scenario.file) over \(transport) exited \(run.exitCode)\n\(run.report)\nserver output:\n\(server.output)"
                )
            }
        }
    }
}
