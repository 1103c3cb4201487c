import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A running `busylamp serve` on 127.0.0.1 with OS-chosen ports, as INTERFACE.md starts it.
///
/// `start` returns only after the server printed its `sip udp`, `sip tcp` and `http` lines and
/// then `ready` (or throws after `readyTimeout`, with what the server printed). Standard output
/// and error go to files in the work directory, so a failing test can show them.
///
/// `@unchecked Sendable`: its ports and paths never change after `start`; a test may hand it to
/// concurrent SIPp runs, which only read them, while the test itself stops or kills it.
final class ServerProcess: @unchecked Sendable {
    /// How long a server may take from exec to `ready` (a debug build opening its store).
    static let readyTimeout: Duration = .seconds(30)
    /// How long a graceful stop (SIGTERM) may take.
    static let stopTimeout: Duration = .seconds(10)

    let process: ChildProcess
    let arguments: [String]
    let workDirectory: URL
    let dataDirectory: URL
    let udpPort: Int
    let tcpPort: Int
    /// The `tls:` listener's port, when `extraArguments` asked for one (`--sip tls:127.0.0.1:0`).
    let tlsPort: Int?
    let httpPort: Int?
    private let stdoutURL: URL
    private let stderrURL: URL

    var pid: pid_t { process.pid }
    var isRunning: Bool { process.isRunning }

    private init(
        process: ChildProcess,
        arguments: [String],
        workDirectory: URL,
        dataDirectory: URL,
        udpPort: Int,
        tcpPort: Int,
        tlsPort: Int?,
        httpPort: Int?,
        stdoutURL: URL,
        stderrURL: URL
    ) {
        self.process = process
        self.arguments = arguments
        self.workDirectory = workDirectory
        self.dataDirectory = dataDirectory
        self.udpPort = udpPort
        self.tcpPort = tcpPort
        self.tlsPort = tlsPort
        self.httpPort = httpPort
        self.stdoutURL = stdoutURL
        self.stderrURL = stderrURL
    }

    /// Starts `busylamp serve --directory FILE --data DIR --sip udp:127.0.0.1:0
    /// --sip tcp:127.0.0.1:0 --http 127.0.0.1:0` plus `extraArguments`, in `workDirectory`.
    /// A second start on the same `workDirectory` reuses its directory file and data.
    /// Starts `busylamp serve` with the directory fixture, or `busylamp demo` (its own demo
    /// office, no directory file) when `demo` is set.
    /// `samePortsAs`: listen on that (stopped) server's SIP ports, so that phones which know
    /// the old address reach the new process (a restart in place).
    static func start(
        in workDirectory: URL,
        demo: Bool = false,
        samePortsAs previous: ServerProcess? = nil,
        extraArguments: [String] = []
    ) async throws
        -> ServerProcess
    {
        let binary = try TestEnvironment.busylampBinary()
        let directoryFile = try DirectoryFixture.write(into: workDirectory)
        let dataDirectory = workDirectory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)

        let stamp = UUID().uuidString.prefix(8)
        let stdoutURL = workDirectory.appendingPathComponent("server-\(stamp).out")
        let stderrURL = workDirectory.appendingPathComponent("server-\(stamp).err")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)

        let command = demo ? ["demo"] : ["serve", "--directory", directoryFile.path]
        let arguments =
            command + [
                "--data", dataDirectory.path,
                "--sip", "udp:127.0.0.1:\(previous?.udpPort ?? 0)",
                "--sip", "tcp:127.0.0.1:\(previous?.tcpPort ?? 0)",
                "--http", "127.0.0.1:0",
            ] + extraArguments
        // The child process is killed when dropped: a failed test leaves no server behind.
        let process = try ChildProcess(
            executable: binary,
            arguments: arguments,
            standardOutput: stdoutURL,
            standardError: stderrURL
        )

        var ports: (udp: Int?, tcp: Int?, tls: Int?, http: Int?) = (nil, nil, nil, nil)
        var ready = false
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: readyTimeout)
        while clock.now < deadline, process.isRunning {
            let lines = (try? String(contentsOf: stdoutURL, encoding: .utf8))?.split(separator: "\n") ?? []
            for line in lines {
                let words = line.split(separator: " ")
                if words.count == 3, words[0] == "sip", let port = Self.port(words[2]) {
                    if words[1] == "udp" { ports.udp = port }
                    if words[1] == "tcp" { ports.tcp = port }
                    if words[1] == "tls" { ports.tls = port }
                } else if words.count == 2, words[0] == "http", let port = Self.port(words[1]) {
                    ports.http = port
                } else if line.trimmingCharacters(in: .whitespaces) == "ready" {
                    ready = true
                }
            }
            if ready { break }
            try await Task.sleep(for: .milliseconds(50))
        }

        let output = Self.read(stdoutURL) + Self.read(stderrURL)
        guard ready, let udp = ports.udp, let tcp = ports.tcp else {
            let running = process.isRunning
            process.signal(SIGKILL)
            let why =
                !ready
                ? (running
                    ? "did not print `ready` within \(readyTimeout)"
                    : "ended (\(process.termination!)) before `ready`")
                : "printed `ready` without both `sip udp` and `sip tcp` lines"
            throw EndToEndFailure(
                "busylamp serve \(why) (\(binary.path) \(arguments.joined(separator: " "))); output:\n\(output)"
            )
        }
        return ServerProcess(
            process: process,
            arguments: arguments,
            workDirectory: workDirectory,
            dataDirectory: dataDirectory,
            udpPort: udp,
            tcpPort: tcp,
            tlsPort: ports.tls,
            httpPort: ports.http,
            stdoutURL: stdoutURL,
            stderrURL: stderrURL
        )
    }

    private static func port(_ address: Substring) -> Int? {
        guard address.hasPrefix("127.0.0.1:"), let port = Int(address.dropFirst("127.0.0.1:".count)), port > 0
        else { return nil }
        return port
    }

    private static func read(_ url: URL) -> String {
        (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }

    /// What the server printed so far, standard output then standard error (the last 4 KB).
    var output: String {
        String((Self.read(stdoutURL) + Self.read(stderrURL)).suffix(4096))
    }

    /// SIGTERM, then waits for the end; INTERFACE.md promises exit status 0.
    func stop() async throws -> ChildProcess.Termination {
        process.signal(SIGTERM)
        guard let termination = try await process.waitForExit(within: Self.stopTimeout) else {
            process.signal(SIGKILL)
            throw EndToEndFailure(
                "busylamp serve did not exit within \(Self.stopTimeout) of SIGTERM; output:\n\(output)"
            )
        }
        return termination
    }

    /// `kill -9`: no chance to flush or close anything.
    func killHard() async throws -> ChildProcess.Termination {
        process.signal(SIGKILL)
        guard let termination = try await process.waitForExit(within: .seconds(10)) else {
            throw EndToEndFailure("busylamp serve survived SIGKILL for 10 s")
        }
        return termination
    }

    /// The resident set size from `/proc/PID/status` (`VmRSS`), in bytes.
    func residentMemory() throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "")
        else { throw EndToEndFailure("no VmRSS line in /proc/\(pid)/status") }
        return kilobytes * 1024
    }
}
