import Foundation
import Testing

extension EndToEnd {
    /// A TCP connection that carries nothing for `--tcp-idle-timeout` seconds is closed by the
    /// server (issue 2: "idle and half-open connections closed after a timeout").
    @Suite("TCP idle timeout", .timeLimit(.minutes(3)))
    struct TCPIdleTimeout {
        static let idleTimeoutSeconds = 2
        /// Scheduling slack on top of the timeout before the test calls the server late.
        static let grace: Duration = .seconds(4)

        enum Peer: String, CaseIterable, CustomTestStringConvertible, Sendable {
            /// Connects and never sends a byte.
            case silent
            /// Sends one OPTIONS, reads the 200, then falls silent.
            case afterOneRequest
            var testDescription: String { rawValue }
        }

        @Test(arguments: Peer.allCases)
        func idlePeerIsDisconnected(_ peer: Peer) async throws {
            try await withServer(
                "tcp-idle-\(peer)",
                extraArguments: ["--tcp-idle-timeout", String(Self.idleTimeoutSeconds)]
            ) {
                server in
                let socket = try LoopbackSocket(.tcp, to: server.tcpPort)
                if peer == .afterOneRequest {
                    try await socket.send(SIPRequests.options(.tcp, localPort: socket.localPort))
                    let response = try await socket.receiveResponse(within: Liveness.probeTimeout)
                    #expect(
                        response?.statusCode == 200,
                        "OPTIONS before idling: \(String(describing: response?.statusCode))"
                    )
                }
                let clock = ContinuousClock()
                let idleSince = clock.now
                let timeout = Duration.seconds(Self.idleTimeoutSeconds)
                let received = try await socket.receive(within: timeout + Self.grace)
                let elapsed = clock.now - idleSince
                guard case .closed = received else {
                    Issue.record(
                        "\(peer) TCP peer still connected \(elapsed) after \(timeout) of idleness (\(received))"
                    )
                    return
                }
                #expect(
                    elapsed >= timeout / 2,
                    "\(peer) TCP peer closed after only \(elapsed), before the idle timeout \(timeout)"
                )
                // The listener itself is unaffected.
                try await Liveness.expectAnswersOptions(server, over: .tcp, after: "closing an idle connection")
            }
        }
    }
}
