import Foundation
import Testing

extension EndToEnd {
    /// Bindings are persisted before the 200 and survive `kill -9` (issue 2, "Done when").
    @Suite("Restart", .timeLimit(.minutes(3)))
    struct Restart {
        @Test func bindingSurvivesKillDashNineAndRestart() async throws {
            let workDirectory = try TestEnvironment.makeTemporaryDirectory("restart")
            let line = DirectoryFixture.joe
            // SIPp's address must be known to ask for it after the restart.
            let sippPort = try LoopbackSocket.freeUDPPort()
            let binding = "\(line.number)@127.0.0.1:\(sippPort)"

            let first = try await ServerProcess.start(in: workDirectory)
            let register = try await SIPpRun.run(
                "register",
                against: first,
                over: .udp,
                line: line,
                localPort: sippPort
            )
            #expect(
                register.exitCode == 0,
                "REGISTER before the kill failed\n\(register.report)\nserver:\n\(first.output)"
            )
            let killed = try await first.killHard()
            #expect(killed == .signaled(SIGKILL))

            // The same --data, the same directory file: a new process.
            let second = try await ServerProcess.start(in: workDirectory)
            for transport in Transport.allCases {
                // A REGISTER without Contact is a query (RFC 3261 §10.2.3): its 200 lists the bindings.
                let query = try await SIPpRun.run(
                    "query_bindings",
                    against: second,
                    over: transport,
                    line: line,
                    keys: ["binding": binding]
                )
                #expect(
                    query.exitCode == 0,
                    "after kill -9 and restart, the query over \(transport) did not list \(binding)\n\(query.report)\nserver:\n\(second.output)"
                )
            }
            let status = try await second.stop()
            #expect(status == .exited(0), "busylamp serve exit status after SIGTERM; output:\n\(second.output)")
            try? FileManager.default.removeItem(at: workDirectory)
        }

        /// Subscriptions are persisted before their 200 and survive `kill -9` and a graceful
        /// stop alike: after the restart each watcher gets a NOTIFY in its old dialog, with a
        /// higher CSeq and version, without resubscribing (issue 3, "Done when"; issue 9: SIGTERM
        /// keeps the subscriptions and exits 0 within a few seconds). Over UDP: a TCP watcher's
        /// connection dies with the process, and BusyLamp never opens connections towards phones.
        @Test(arguments: [true, false])
        func watchersGetANotifyAfterTheServerStopsAndRestarts(killedHard: Bool) async throws {
            let workDirectory = try TestEnvironment.makeTemporaryDirectory("restart-watchers")
            let target = DirectoryFixture.bob
            let watchers = [DirectoryFixture.alice, DirectoryFixture.joe]
            let first = try await ServerProcess.start(in: workDirectory)

            // Both watchers run to the end of their scenario: the NOTIFY after the restart.
            let runs = watchers.map { watcher in
                Task {
                    try await SIPpRun.run(
                        "watcher_across_restart",
                        against: first,
                        over: .udp,
                        line: watcher,
                        keys: ["target": target.extensionNumber]
                    )
                }
            }
            // Long enough for SUBSCRIBE, 401, SUBSCRIBE, 200, NOTIFY, 200 on a loaded machine.
            try await Task.sleep(for: .seconds(2))
            if killedHard {
                let killed = try await first.killHard()
                #expect(killed == .signaled(SIGKILL))
            } else {
                let stopBegan = ContinuousClock.now
                let stopped = try await first.stop()
                #expect(stopped == .exited(0), "busylamp serve after SIGTERM:\n\(first.output)")
                #expect(ContinuousClock.now - stopBegan < .seconds(5))
            }
            let second = try await ServerProcess.start(in: workDirectory)

            for (watcher, run) in zip(watchers, runs) {
                let result = try await run.value
                #expect(
                    result.exitCode == 0,
                    "watcher \(watcher.name) got no NOTIFY after the restart\n\(result.report)\nbefore:\n\(first.output)\nafter:\n\(second.output)"
                )
            }
            let status = try await second.stop()
            #expect(status == .exited(0), "busylamp serve exit status after SIGTERM; output:\n\(second.output)")
            try? FileManager.default.removeItem(at: workDirectory)
        }
    }
}
