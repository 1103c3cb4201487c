import Foundation
import Testing

/// Every test here starts the real `busylamp serve` on 127.0.0.1 and talks to it over sockets.
///
/// Serialized: each test owns a server, and several debug servers on a two-core machine at once
/// would turn the time limits (2 s to answer, 30 s to start) into a measure of the machine.
@Suite("End to end (the real busylamp binary)", .serialized, .timeLimit(.minutes(3)))
struct EndToEnd {}

/// Starts a server in a fresh work directory, runs `body`, and always stops it; the stop must be
/// graceful (SIGTERM, exit status 0, INTERFACE.md) unless `body` already ended the process.
func withServer(
    _ label: String,
    extraArguments: [String] = [],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (ServerProcess) async throws -> Void
) async throws {
    let workDirectory = try TestEnvironment.makeTemporaryDirectory(label)
    let server = try await ServerProcess.start(in: workDirectory, extraArguments: extraArguments)
    do {
        try await body(server)
    } catch {
        _ = try? await server.stop()
        throw error
    }
    let status = try await server.stop()
    #expect(
        status == .exited(0),
        "busylamp serve exit status after SIGTERM; output:\n\(server.output)",
        sourceLocation: sourceLocation
    )
    try? FileManager.default.removeItem(at: workDirectory)
}

/// `withServer` serving `directory` (a directory file's text), with `config` (snake_case keys)
/// written to a `--config` file for the server's lifetime.
func withServer(
    _ label: String,
    directory: String,
    config: [String: String] = [:],
    _ body: (ServerProcess) async throws -> Void
) async throws {
    var arguments: [String] = []
    var configFile: URL?
    if !config.isEmpty {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("busylamp-e2e-config-\(UUID().uuidString.prefix(8)).yaml")
        let text = config.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)\n" }.joined()
        try text.write(to: url, atomically: true, encoding: .utf8)
        arguments = ["--config", url.path]
        configFile = url
    }
    defer { if let configFile { try? FileManager.default.removeItem(at: configFile) } }
    try await DirectoryFixture.serving(directory) {
        try await withServer(label, extraArguments: arguments, body)
    }
}

/// Expects a SIPp run to have passed; on failure shows SIPp's report and the server's output.
func expectPass(
    _ run: SIPpRun,
    _ what: String,
    _ transport: Transport,
    _ server: ServerProcess,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(
        run.exitCode == 0,
        "SIPp \(what) over \(transport) exited \(run.exitCode)\n\(run.report)\nserver output:\n\(server.output)",
        sourceLocation: sourceLocation
    )
}
