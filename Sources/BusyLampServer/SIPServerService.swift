import ServiceLifecycle

/// Runs a started `SIPServer` until graceful shutdown (SIGTERM, SIGINT), then stops it.
public struct SIPServerService: Service {
    private let server: SIPServer

    public init(server: SIPServer) { self.server = server }

    public func run() async throws {
        try? await gracefulShutdown()
        await server.stop()
    }
}
