import Foundation
import Testing

extension EndToEnd.Calls {
    /// Issue 9, "Crash and restart": calls that were ringing or answered when the server was
    /// killed end cleanly at the next start, "never a lamp stuck red nor a phone left talking to
    /// nobody". Both phones are SIPp scenarios that fail unless they get their ending (a BYE in
    /// their dialog; a 480 and a CANCEL for the INVITE's transaction, then the ACK of the 487),
    /// and the admin API shows both lines idle. Over UDP, the server restarted on its old ports:
    /// the phones keep talking to the address they know (a TCP phone's connection dies with the
    /// process, and BusyLamp never opens connections towards phones).
    @Suite("Calls interrupted by a crash", .timeLimit(.minutes(3)))
    struct InterruptedCalls {
        typealias Calls = EndToEnd.Calls
        static let token = "e2e-restart-token-0123456789"

        @Test("answered, then kill -9: after the restart both phones get a BYE, the lines are idle")
        func answeredCallEndsAfterACrash() async throws {
            try await Self.withRestart("restart-answered") { calls, first, restart in
                let callee = calls.startCallee(.answer, name: "callee-bob", first, .udp)
                try await calls.waitForLogs(["callee-bob": "registered"], first, .udp)
                let caller = Task {
                    try await calls.aliceRuns(
                        "call_caller_hung_up",
                        calling: Calls.bob.extensionNumber,
                        first,
                        .udp,
                        name: "caller-alice",
                        keys: ["answer_port": String(CallFixture.calleeMediaPort)]
                    )
                }
                try await calls.waitForLogs(["caller-alice": "answered", "callee-bob": "answered"], first, .udp)
                let second = try await restart()
                expectPass(try await caller.value, "call_caller_hung_up (Alice, BYE after the restart)", .udp, second)
                expectPass(try await callee.value, "call_callee_answer (Bob, BYE after the restart)", .udp, second)
                return second
            }
        }

        @Test("ringing, then kill -9: after the restart the caller gets 480, the ringing phone CANCEL")
        func ringingCallEndsAfterACrash() async throws {
            try await Self.withRestart("restart-ringing") { calls, first, restart in
                let callee = calls.startCallee(.cancelled, name: "callee-bob", first, .udp)
                try await calls.waitForLogs(["callee-bob": "registered"], first, .udp)
                let caller = Task {
                    try await calls.aliceRuns(
                        "call_refused",
                        calling: Calls.bob.extensionNumber,
                        first,
                        .udp,
                        name: "caller-alice",
                        keys: ["status": "480", "extra_header": "X-Busylamp-Test: restart"]
                    )
                }
                try await calls.waitForLogs(["caller-alice": "ringing", "callee-bob": "ringing"], first, .udp)
                let second = try await restart()
                let refused = try await caller.value
                expectPass(refused, "call_refused 480 (Alice, after the restart)", .udp, second)
                #expect(
                    refused.log.contains("refused 480 \(Self.abandonedReason)"),
                    "the caller is told why: \(refused.log)"
                )
                let cancelled = try await callee.value
                expectPass(cancelled, "call_callee_cancelled (Bob, CANCEL after the restart)", .udp, second)
                #expect(cancelled.log.contains("487 acknowledged"), "\(cancelled.log)")
                return second
            }
        }

        /// The reason phrase of the 480 a restart sends (`CallTeardown.abandonedReason`).
        static let abandonedReason = "Call Lost In A Server Restart"

        /// Serves `CallFixture`'s directory with an admin token; `body` starts phones on the first
        /// process and calls `restart` mid-call, which kills it (`kill -9`, after the call's
        /// record has had time to be written) and starts a second one on the same ports and
        /// data. After `body`, both lines must be idle in the admin API.
        static func withRestart(
            _ label: String,
            _ body: (Calls, ServerProcess, () async throws -> ServerProcess) async throws -> ServerProcess
        ) async throws {
            let workDirectory = try TestEnvironment.makeTemporaryDirectory(label)
            let configFile = workDirectory.appendingPathComponent("config.yaml")
            try "admin_token: \(token)\n".write(to: configFile, atomically: true, encoding: .utf8)
            let arguments = ["--config", configFile.path]
            let yaml = CallFixture.yaml(
                trunkHost: CallFixture.trunkHost(over: .udp),
                trunkPort: try LoopbackSocket.freeUDPPort(),
                over: .udp
            )
            try await DirectoryFixture.serving(yaml) {
                let first = try await ServerProcess.start(in: workDirectory, extraArguments: arguments)
                let restart = {
                    // The call's teardown is written within 50 ms of its last change.
                    try await Task.sleep(for: .milliseconds(500))
                    let killed = try await first.killHard()
                    #expect(killed == .signaled(SIGKILL))
                    return try await ServerProcess.start(
                        in: workDirectory,
                        samePortsAs: first,
                        extraArguments: arguments
                    )
                }
                let second = try await body(Calls(), first, restart)
                let api = HTTPTestClient(port: try #require(second.httpPort), token: token)
                for line in [Calls.alice, Calls.bob] {
                    let state = try await api.get("/api/v1/accounts/acme/lines/\(line.extensionNumber)/state")
                    #expect(
                        state.status == 200 && state.json["state"] as? String == "idle",
                        "\(line.name)'s lamp after the restart: \(state)"
                    )
                }
                #expect(
                    second.output.contains("Calls interrupted by the last stop were ended"),
                    "\(second.output)"
                )
                #expect(try await second.stop() == .exited(0))
            }
            try? FileManager.default.removeItem(at: workDirectory)
        }
    }
}
