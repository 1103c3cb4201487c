import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The SIP transports the scenarios run over, with SIPp's `-t` mode for one call on one socket.
enum Transport: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case udp
    case tcp

    var sippMode: String { self == .udp ? "u1" : "t1" }
    var testDescription: String { rawValue.uppercased() }
    func port(of server: ServerProcess) -> Int { self == .udp ? server.udpPort : server.tcpPort }
}

/// Runs one SIPp scenario from `tests/sipp/` as one call (`-m 1`) against a server.
///
/// `outOfCall` names a second scenario (`-oocsf`) for requests with a Call-ID of their own, such
/// as the INVITE a registered callee receives; `name` replaces the scenario's name in the log
/// files' names (`sipp-NAME-TRANSPORT-…`), so that a test can tell two runs of one scenario apart;
/// `localAddress` is SIPp's `-i` (a trunk on another loopback address); `extraArguments` go
/// to SIPp as they are (e.g. `-aa`).
///
/// The scenarios take the line as `-s NUMBER` (the From/To user), the credentials as
/// `-au NUMBER -ap PASSWORD` and the domain as `-set dom DOMAIN` (see each file's comment).
struct SIPpRun {
    /// SIPp's own limit for the whole run, and for each expected message.
    static let scenarioTimeout = "10s"
    static let receiveTimeoutMilliseconds = "5000"
    /// Our limit on the SIPp process, in case SIPp itself hangs.
    static let processTimeout: Duration = .seconds(30)

    var exitCode: Int32
    /// SIPp's screen, error file and message trace, for the failure message.
    var report: String
    /// The whole of SIPp's log file: what the scenario's `<log>` actions wrote.
    var log: String = ""
    /// The whole of SIPp's message trace (`-trace_msg`): every message sent and received,
    /// including those SIPp answered by itself (`-aa`).
    var messages: String = ""

    static func run(
        _ scenario: String,
        against server: ServerProcess,
        over transport: Transport,
        line: DirectoryFixture.Line,
        password: String? = nil,
        localPort: Int? = nil,
        localAddress: String = "127.0.0.1",
        outOfCall: String? = nil,
        name: String? = nil,
        extraArguments: [String] = [],
        keys: [String: String] = [:],
        timeout: String = scenarioTimeout,
        domain: String = DirectoryFixture.domain
    ) async throws -> SIPpRun {
        let sipp = try TestEnvironment.sipp()
        let scenarioURL = TestEnvironment.scenario(scenario)
        let outOfCallURL = outOfCall.map(TestEnvironment.scenario)
        for url in [scenarioURL] + (outOfCallURL.map { [$0] } ?? [])
        where !FileManager.default.fileExists(atPath: url.path) {
            throw EndToEndFailure("missing scenario \(url.path)")
        }
        let stamp = "\(name ?? scenario)-\(transport.rawValue)-\(UUID().uuidString.prefix(8))"
        let directory = server.workDirectory
        let screen = directory.appendingPathComponent("sipp-\(stamp).screen")
        let errors = directory.appendingPathComponent("sipp-\(stamp).errors")
        let messages = directory.appendingPathComponent("sipp-\(stamp).messages")
        let log = directory.appendingPathComponent("sipp-\(stamp).log")
        _ = FileManager.default.createFile(atPath: screen.path, contents: nil)

        var arguments = [
            "127.0.0.1:\(transport.port(of: server))",
            "-sf", scenarioURL.path,
            "-i", localAddress,
            "-t", transport.sippMode,
            "-m", "1",
            "-timeout", timeout, "-timeout_error",
            "-recv_timeout", receiveTimeoutMilliseconds,
            "-nostdin",
            "-set", "dom", domain,
            "-s", line.number,
            "-au", line.number,
            "-ap", password ?? line.password,
            "-trace_err", "-error_file", errors.path,
            "-trace_msg", "-message_file", messages.path,
            "-trace_logs", "-log_file", log.path,
        ]
        if let localPort { arguments += ["-p", String(localPort)] }
        if let outOfCallURL { arguments += ["-oocsf", outOfCallURL.path] }
        arguments += extraArguments
        for (key, value) in keys.sorted(by: { $0.key < $1.key }) { arguments += ["-key", key, value] }

        let process = try ChildProcess(
            executable: sipp,
            arguments: arguments,
            standardOutput: screen,
            standardError: screen
        )
        let termination = try await process.waitForExit(within: processTimeout)
        if termination == nil { process.signal(SIGKILL) }

        func tail(_ url: URL, _ count: Int) -> String {
            String(((try? String(contentsOf: url, encoding: .utf8)) ?? "").suffix(count))
        }
        let report = """
            sipp \(arguments.joined(separator: " "))
            --- errors ---
            \(tail(errors, 3000))
            --- log ---
            \(tail(log, 1000))
            --- messages ---
            \(tail(messages, 4000))
            --- screen ---
            \(tail(screen, 1500))
            """
        let code: Int32
        switch termination {
        case .exited(let status): code = status
        case .signaled(let signal): code = 128 + signal
        case nil: code = -1
        }
        let logText = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        let messageText = (try? String(contentsOf: messages, encoding: .utf8)) ?? ""
        return SIPpRun(exitCode: code, report: report, log: logText, messages: messageText)
    }
}
