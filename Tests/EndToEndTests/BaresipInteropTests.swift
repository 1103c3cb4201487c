import Foundation
import Testing

extension EndToEnd {
    /// A real user agent interoperates (issue 3, "Done when" 2): baresip, registered as Alice,
    /// watches Bob's presence (RFC 3856) and sees it open and closed as Bob registers and
    /// unregisters.
    @Suite("baresip interop", .timeLimit(.minutes(3)))
    struct BaresipInterop {
        /// baresip REGISTERs at once and SUBSCRIBEs one second after start; each may take a
        /// digest round trip.
        static let startTimeout: Duration = .seconds(10)
        /// RFC 3856 §6.10 lets a notifier hold a presentity's notifications up to 5 s apart;
        /// a change must reach baresip within that plus a margin.
        static let notifyTimeout: Duration = .seconds(8)

        @Test func watchedLinePresenceFollowsItsRegistration() async throws {
            let watcher = DirectoryFixture.alice
            let watched = DirectoryFixture.bob
            // Bob's register and unregister must name the same contact (SIPp's address).
            let bobPort = try LoopbackSocket.freeUDPPort()

            // The server is configured as an operator with baresip 1.0 phones would (README,
            // `digest_algorithms`): its libre fails a request whose 401 names any algorithm but
            // MD5 (BaresipProcess.knownProblems).
            let configFile = FileManager.default.temporaryDirectory
                .appendingPathComponent("busylamp-e2e-baresip-config-\(UUID().uuidString.prefix(8)).yaml")
            try "digest_algorithms: [MD5]\n".write(to: configFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: configFile) }

            try await withServer("baresip", extraArguments: ["--config", configFile.path]) { server in
                let baresip = try BaresipProcess.start(against: server, as: watcher, watching: [watched])
                do {
                    try await run(baresip, server: server, watched: watched, bobPort: bobPort)
                } catch {
                    try? await baresip.stop()
                    throw error
                }
                // 5. On SIGTERM baresip ends its subscription (an in-dialog SUBSCRIBE with Expires: 0,
                // RFC 6665 unsubscribing), which the server accepts.
                try await baresip.stop()
                let unsubscribed = baresip.trace.messages.contains {
                    $0.fromServer && $0.cseqMethod == "SUBSCRIBE" && $0.statusCode == 200 && $0.header("Expires") == "0"
                }
                let report = baresip.report(server: server)
                #expect(unsubscribed, "baresip's un-SUBSCRIBE (Expires: 0) at shutdown got no 200\n\(report)")
            }
        }

        /// The SUBSCRIBE got a 2xx and baresip answered 200 to a presence NOTIFY saying closed.
        private static func subscriptionIsActive(_ trace: BaresipTrace, _ log: [String]) -> Bool {
            let accepted = trace.responses(to: "SUBSCRIBE").contains { (200..<300).contains($0.statusCode ?? 0) }
            let notified = trace.serverRequests("NOTIFY").contains { notify in
                notify.answer?.statusCode == 200
                    && notify.request.header("Event")?.lowercased().hasPrefix("presence") == true
                    && BaresipTrace.basicStatus(in: notify.request.body) == "closed"
            }
            return accepted && notified
        }

        /// How far the subscription got, for the failure message.
        private static func subscriptionDiagnosis(_ trace: BaresipTrace, _ log: [String]) -> String? {
            let answers = trace.responses(to: "SUBSCRIBE").map(\.startLine)
            let notifies = trace.serverRequests("NOTIFY")
            if answers.isEmpty { return BaresipProcess.knownProblems(trace, log) ?? "no final response to SUBSCRIBE" }
            if notifies.isEmpty { return "SUBSCRIBE answered \(answers), but no NOTIFY came" }
            let seen = notifies.map { notify in
                "NOTIFY \(notify.request.header("Event") ?? "(no Event)") "
                    + "basic=\(BaresipTrace.basicStatus(in: notify.request.body) ?? "(none)") "
                    + "answered \(notify.answer?.startLine ?? "(not yet)")"
            }
            let problems = BaresipProcess.knownProblems(trace, log).map { "; \($0)" } ?? ""
            return "SUBSCRIBE answered \(answers); \(seen)\(problems)"
        }

        private func run(
            _ baresip: BaresipProcess,
            server: ServerProcess,
            watched: DirectoryFixture.Line,
            bobPort: Int
        ) async throws {
            // 1. Alice's REGISTER is accepted.
            try await baresip.wait(
                for: "REGISTER of \(baresip.line.number) answered 200",
                within: Self.startTimeout,
                server: server
            ) { trace, _ in
                trace.responses(to: "REGISTER").contains { $0.statusCode == 200 }
            }

            // 2. The presence subscription to Bob is active: the SUBSCRIBE got a 2xx and baresip
            // accepted a NOTIFY whose PIDF says closed (Bob is not registered). Only after such a
            // NOTIFY does baresip log changes, so this is also what makes step 3 observable.
            try await baresip.wait(
                for: "SUBSCRIBE (Event: presence) to \(watched.number) answered 2xx, and a NOTIFY with "
                    + "<basic>closed</basic> answered 200 by baresip",
                within: Self.startTimeout,
                server: server,
                diagnosis: Self.subscriptionDiagnosis,
                until: Self.subscriptionIsActive
            )

            // 3. Bob registers: baresip sees him online.
            let register = try await SIPpRun.run(
                "register",
                against: server,
                over: .udp,
                line: watched,
                localPort: bobPort
            )
            try #require(
                register.exitCode == 0,
                "SIPp register of \(watched.number) exited \(register.exitCode)\n\(register.report)"
            )
            let online = BaresipProcess.statusChange(of: watched, from: "Offline", to: "Online")
            try await baresip.waitForLogLine(containing: online, within: Self.notifyTimeout, server: server)

            // 4. Bob unregisters (the same contact, Expires: 0): baresip sees him offline.
            let unregister = try await SIPpRun.run(
                "unregister",
                against: server,
                over: .udp,
                line: watched,
                localPort: bobPort
            )
            try #require(
                unregister.exitCode == 0,
                "SIPp unregister of \(watched.number) exited \(unregister.exitCode)\n\(unregister.report)"
            )
            let offline = BaresipProcess.statusChange(of: watched, from: "Online", to: "Offline")
            try await baresip.waitForLogLine(containing: offline, within: Self.notifyTimeout, server: server)
        }
    }
}
