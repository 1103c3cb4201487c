import BusyLampStore
import Foundation
import TestProcessSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The command line as INTERFACE.md promises it, against the real `busylamp` binary: bad
/// options or a bad file get a message naming the problem and its place (file, line), exit code
/// 2 and nothing started; `import` loads a directory file and refuses a bad one without
/// touching the store; SIGINT and SIGTERM stop a running server with exit code 0.
@Suite("Command line", .timeLimit(.minutes(1)))
struct CommandLineTests {
    struct Outcome {
        var termination: ChildProcess.Termination
        var output: String
        var errors: String
    }

    /// A fresh folder with `files` written into it.
    static func folder(_ files: [String: String] = [:]) throws -> URL {
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("busylamp-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, text) in files {
            try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return folder
    }

    static func start(_ arguments: [String], in folder: URL) throws -> ChildProcess {
        // Relative paths in the arguments are the folder's: the binary runs with it as its
        // working directory only through the paths we hand it.
        let resolved = arguments.map { $0.hasSuffix(".yaml") ? folder.appendingPathComponent($0).path : $0 }
        return try ChildProcess(
            executable: try BusyLampBinary.locate(),
            arguments: resolved,
            standardOutput: folder.appendingPathComponent("stdout"),
            standardError: folder.appendingPathComponent("stderr")
        )
    }

    static func output(of folder: URL) -> (output: String, errors: String) {
        func read(_ name: String) -> String {
            (try? String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)) ?? ""
        }
        return (read("stdout"), read("stderr"))
    }

    static func run(_ arguments: [String], in folder: URL) async throws -> Outcome {
        let process = try start(arguments, in: folder)
        guard let termination = try await process.waitForExit(within: .seconds(30)) else {
            process.signal(SIGKILL)
            throw TestProcessFailure("busylamp \(arguments.joined(separator: " ")) did not exit within 30 s")
        }
        let (output, errors) = output(of: folder)
        return Outcome(termination: termination, output: output, errors: errors)
    }

    /// Listeners on loopback with OS-chosen ports, so that an option wrongly accepted cannot
    /// take a fixed port.
    static let loopbackListeners = ["--sip", "udp:127.0.0.1:0", "--http", "127.0.0.1:0"]

    static let goodDirectory = """
        domain: cli.busylamp.test
        accounts:
          - id: acme
            lines:
              - extension: "201"
                number: "6495550201"
                password: alice-secret
              - extension: "202"
                number: "6495550202"
                password: bob-secret

        """

    struct BadInput: Sendable, CustomTestStringConvertible {
        var name: String
        var arguments: [String]
        var files: [String: String] = [:]
        /// What the message must say: the problem and its place.
        var message: String
        var testDescription: String { name }
    }

    static let badInputs: [BadInput] = [
        BadInput(name: "a bad --sip", arguments: ["serve", "--sip", "bogus:1"], message: "--sip bogus:1"),
        BadInput(name: "an unknown option", arguments: ["serve", "--no-such-option"], message: "--no-such-option"),
        BadInput(
            name: "an unknown config key",
            arguments: ["serve", "--config", "config.yaml"],
            files: ["config.yaml": "log_level: info\nsip_threads: 1\nnot_a_key: 3\n"],
            message: "config.yaml:3: unknown key \"not_a_key\""
        ),
        BadInput(
            name: "a bad config value",
            arguments: ["serve", "--config", "config.yaml"],
            files: ["config.yaml": "log_level: info\nrequests_per_source: many\n"],
            message: "config.yaml:2: requests_per_source"
        ),
        BadInput(
            name: "a directory file that is not YAML",
            arguments: ["serve", "--directory", "directory.yaml"],
            files: ["directory.yaml": "domain: x.test\naccounts:\n  - id: a\n    lines: [1\n"],
            message: "directory.yaml:"
        ),
        BadInput(
            name: "a duplicate number on import",
            arguments: ["import", "directory.yaml"],
            files: ["directory.yaml": goodDirectory.replacingOccurrences(of: "\"6495550202\"", with: "\"6495550201\"")],
            message: "directory.yaml:9: line 202: duplicate number \"6495550201\""
        ),
    ]

    @Test(arguments: badInputs)
    func badOptionsAndFilesExitWith2NamingThePlace(_ input: BadInput) async throws {
        let folder = try Self.folder(input.files)
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = folder.appendingPathComponent("data")
        let extra = input.arguments.first == "serve" ? Self.loopbackListeners : []
        let outcome = try await Self.run(input.arguments + ["--data", data.path] + extra, in: folder)
        #expect(outcome.termination == .exited(2), "\(outcome.errors)")
        #expect(outcome.errors.contains(input.message), "stderr: \(outcome.errors)")
        // Nothing started: no listener announced, no store created.
        #expect(!outcome.output.contains("ready"))
        #expect(!FileManager.default.fileExists(atPath: data.path), "a data folder was made")
    }

    /// `import` writes the file's directory into the store; a bad file leaves the store as it was.
    @Test func importLoadsAFileAndABadOneLeavesTheStoreAlone() async throws {
        let bad = Self.goodDirectory.replacingOccurrences(of: "password: bob-secret", with: "password: [")
        let folder = try Self.folder(["good.yaml": Self.goodDirectory, "bad.yaml": bad])
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = folder.appendingPathComponent("data")
        let imported = try await Self.run(["import", "good.yaml", "--data", data.path], in: folder)
        #expect(imported.termination == .exited(0), "\(imported.errors)")
        #expect(imported.output.contains("imported 1 accounts, 2 lines"), "stdout: \(imported.output)")

        let refused = try await Self.run(["import", "bad.yaml", "--data", data.path], in: folder)
        #expect(refused.termination == .exited(2))
        #expect(refused.errors.contains("bad.yaml:"), "stderr: \(refused.errors)")

        let store = try SQLiteStore.open(dataDirectory: data)
        let directory = try #require(try store.loadDirectory())
        #expect(directory.platform.domain == "cli.busylamp.test")
        #expect(directory.lines.map(\.extensionNumber).sorted() == ["201", "202"])
        try store.close()
    }

    /// A running server stops on SIGINT (an operator's Ctrl-C) and on SIGTERM (systemd, a
    /// container runtime) with exit code 0, promptly.
    @Test(arguments: [SIGINT, SIGTERM])
    func aSignalStopsTheServerWithExitCode0(_ signal: Int32) async throws {
        let folder = try Self.folder(["directory.yaml": Self.goodDirectory])
        defer { try? FileManager.default.removeItem(at: folder) }
        let arguments =
            ["serve", "--directory", "directory.yaml", "--data", folder.appendingPathComponent("data").path]
            + Self.loopbackListeners
        let server = try Self.start(arguments, in: folder)
        let ready = try await eventually(within: .seconds(30)) {
            Self.output(of: folder).output.split(separator: "\n").contains("ready") || !server.isRunning
        }
        #expect(ready && server.isRunning, "no ready line: \(Self.output(of: folder))")
        server.signal(signal)
        let stoppedAt = ContinuousClock.now
        let termination = try await server.waitForExit(within: .seconds(10))
        #expect(termination == .exited(0), "after signal \(signal): \(Self.output(of: folder).errors)")
        #expect(ContinuousClock.now - stoppedAt < .seconds(5))
        if termination == nil { server.signal(SIGKILL) }
    }
}
