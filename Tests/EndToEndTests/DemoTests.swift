import Foundation
import Testing

extension EndToEnd {
    /// `busylamp demo`, the README's first command: the demo office's lamps change at once,
    /// because simulated calls run while no phone is registered (PRODUCT.md).
    @Suite("busylamp demo", .timeLimit(.minutes(3)))
    struct DemoTests {
        /// The demo office's Leo, watching Bob (222), whom the simulation's first call rings.
        static let leo = DirectoryFixture.Line(
            extensionNumber: "220",
            number: "6495550220",
            name: "Leo",
            password: "leo-demo"
        )

        @Test("a BLF key on the demo office sees Bob's lamp ring, go busy and go idle, with Joe calling")
        func simulatedCallLightsTheLamps() async throws {
            let workDirectory = try TestEnvironment.makeTemporaryDirectory("demo")
            let server = try await ServerProcess.start(in: workDirectory, demo: true)
            let run = try await SIPpRun.run(
                "watch_dialog",
                against: server,
                over: .udp,
                line: Self.leo,
                extraArguments: ["-aa"],
                keys: ["target": "222"],
                timeout: "40s"
            )
            let status = try await server.stop()
            expectPass(run, "watch_dialog (Leo watching Bob in the demo)", .udp, server)
            let notifies = Calls.notifies(in: run.messages)
            let states = notifies.map(\.state)
            // The first call rings Bob for 4 s from the start, then talks for 6 s.
            #expect(states.contains("early") && states.contains("confirmed"), "NOTIFYs: \(notifies)")
            #expect(states.last == "idle", "NOTIFYs: \(notifies)")
            #expect(
                notifies.contains { $0.identity.contains("6495550223") },
                "Joe (6495550223) is the remote party: \(notifies)"
            )
            #expect(status == .exited(0), "busylamp demo after SIGTERM:\n\(server.output)")
            try? FileManager.default.removeItem(at: workDirectory)
        }
    }
}
