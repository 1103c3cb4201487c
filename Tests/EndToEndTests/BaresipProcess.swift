import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension TestEnvironment {
    /// The `baresip` executable on PATH. Its absence is a failure, not a skip.
    static func baresip() throws -> URL { try executableOnPath("baresip", debianPackage: "baresip-core") }

    /// The folder holding baresip's modules (`presence.so` and the others), where the
    /// distribution puts it.
    static func baresipModules() throws -> URL {
        let candidates = [
            "/usr/lib/baresip/modules", "/usr/lib/x86_64-linux-gnu/baresip/modules",
            "/usr/lib/aarch64-linux-gnu/baresip/modules", "/usr/local/lib/baresip/modules",
            "/opt/homebrew/lib/baresip/modules",
        ]
        for directory in candidates
        where FileManager.default.fileExists(atPath: directory + "/presence.so") {
            return URL(fileURLWithPath: directory)
        }
        throw EndToEndFailure(
            "baresip's presence.so was not found in \(candidates); install Debian's baresip-core"
        )
    }
}

/// baresip, a real SIP user agent, registered as one line of the fixture and watching the
/// presence (RFC 3856, `Event: presence`) of others, with its SIP trace on its output.
///
/// Its configuration folder (`-f`) holds:
/// - `config`: SIP on 127.0.0.1 only (OS-chosen port), no audio or video modules (it starts
///   without devices), only `account`, `contact` and `presence`;
/// - `accounts`: the line's AOR with its password and the server as outbound proxy;
/// - `contacts`: each watched line with `;presence=p2p`, which makes the presence module send
///   `SUBSCRIBE … Event: presence` for it one second after start (and, after a failure, again
///   only 30 s later).
///
/// What baresip reports: a REGISTER's 200 shows in the trace; a watched line's status change is
/// the log line `<sip:NUMBER@DOMAIN> changed status from Offline to Online` (baresip's
/// `contact_set_presence`), printed only when the previous status was known, i.e. after a first
/// NOTIFY with a PIDF body.
final class BaresipProcess {
    /// baresip ends itself after this long (`-t`), should the test runner die before stopping it.
    static let lifetimeSeconds = 180
    /// How long a graceful stop (SIGTERM: un-SUBSCRIBE, un-REGISTER) may take.
    static let stopTimeout: Duration = .seconds(5)

    let process: ChildProcess
    let configDirectory: URL
    let serverPort: Int
    let line: DirectoryFixture.Line
    private let outputURL: URL

    private init(
        process: ChildProcess,
        configDirectory: URL,
        serverPort: Int,
        line: DirectoryFixture.Line,
        outputURL: URL
    ) {
        self.process = process
        self.configDirectory = configDirectory
        self.serverPort = serverPort
        self.line = line
        self.outputURL = outputURL
    }

    /// The AOR a line has on the platform, as baresip writes it in its log.
    static func addressOfRecord(_ line: DirectoryFixture.Line) -> String {
        "sip:\(line.number)@\(DirectoryFixture.domain)"
    }

    /// Writes the configuration folder under the server's work directory and starts
    /// `baresip -f DIR -s -t SECONDS` (output and error to one file there).
    ///
    /// With `trustingTLSCertificate` (the server's self-signed certificate, a PEM file) baresip
    /// reaches the server over its `tls:` listener (outbound proxy `;transport=tls`), else over UDP.
    static func start(
        against server: ServerProcess,
        as line: DirectoryFixture.Line,
        watching watched: [DirectoryFixture.Line],
        trustingTLSCertificate tlsCertificate: URL? = nil
    ) throws -> BaresipProcess {
        let executable = try TestEnvironment.baresip()
        let modules = try TestEnvironment.baresipModules()
        let directory = server.workDirectory.appendingPathComponent("baresip-\(line.number)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

        let serverPort: Int
        let outbound: String
        if tlsCertificate != nil {
            guard let tlsPort = server.tlsPort else {
                throw EndToEndFailure("baresip over TLS: the server has no tls: listener")
            }
            serverPort = tlsPort
            outbound = "sip:127.0.0.1:\(tlsPort);transport=tls"
        } else {
            serverPort = server.udpPort
            outbound = "sip:127.0.0.1:\(server.udpPort);transport=udp"
        }
        // libre 1.1 checks no server certificate of its own accord; the CA file is what an
        // operator with a private CA would give a phone.
        let caFile = tlsCertificate.map { "sip_cafile\t\t\($0.path)\n" } ?? ""
        let config = """
            # baresip for BusyLamp's end-to-end tests: SIP on 127.0.0.1 only, no media.
            poll_method\t\tepoll
            sip_listen\t\t127.0.0.1:0
            # Nothing here needs DNS (the server is an IP outbound proxy); keep any lookup local.
            dns_server\t\t127.0.0.1:53
            module_path\t\t\(modules.path)
            module_tmp\t\taccount.so
            module_app\t\tcontact.so
            module_app\t\tpresence.so
            \(caFile)
            """
        // regint within the fixture's min/max expires; pubint=0: no PUBLISH of our own status;
        // mwi=no: no message-summary SUBSCRIBE.
        let account =
            "\"\(line.name)\" <\(addressOfRecord(line))>;auth_pass=\(line.password)"
            + ";outbound=\"\(outbound)\""
            + ";regint=600;pubint=0;mwi=no;answermode=manual\n"
        let contacts = watched.map { "\"\($0.name)\" <\(addressOfRecord($0))>;presence=p2p\n" }.joined()
        try config.write(to: directory.appendingPathComponent("config"), atomically: true, encoding: .utf8)
        try account.write(to: directory.appendingPathComponent("accounts"), atomically: true, encoding: .utf8)
        try contacts.write(to: directory.appendingPathComponent("contacts"), atomically: true, encoding: .utf8)

        let outputURL = directory.appendingPathComponent("baresip.out")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        let process = try ChildProcess(
            executable: executable,
            arguments: ["-f", directory.path, "-s", "-t", String(lifetimeSeconds)],
            standardOutput: outputURL,
            standardError: outputURL
        )
        return BaresipProcess(
            process: process,
            configDirectory: directory,
            serverPort: serverPort,
            line: line,
            outputURL: outputURL
        )
    }

    /// Everything baresip printed so far, raw (trace blocks and log lines, with colour codes).
    var rawOutput: String {
        (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
    }

    /// The SIP messages traced so far.
    var trace: BaresipTrace { BaresipTrace(rawOutput, serverPort: serverPort) }

    /// baresip's log lines (the trace blocks left out), without colour codes.
    var logLines: [String] {
        var text = rawOutput
        // Drop complete trace blocks; keep the log between them.
        while let start = text.range(of: BaresipTrace.blockStart),
            let end = text.range(of: BaresipTrace.blockEnd, range: start.upperBound..<text.endIndex)
        {
            text.removeSubrange(start.lowerBound..<end.upperBound)
        }
        return Self.withoutColours(text).split(separator: "\n").map(String.init)
            .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    }

    static func withoutColours(_ text: String) -> String {
        text.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression)
    }

    /// The log line baresip prints when a watched line's presence changes, from → to being
    /// `Unknown`, `Online`, `Offline` or `Busy`.
    static func statusChange(of watched: DirectoryFixture.Line, from: String, to: String) -> String {
        "<\(addressOfRecord(watched))> changed status from \(from) to \(to)"
    }

    /// What a failure message shows: the trace, one line per message, then the log and the tail
    /// of the raw output, plus the server's output.
    func report(server: ServerProcess) -> String {
        """
        --- baresip SIP trace (\(configDirectory.path)/baresip.out) ---
        \(trace.summary)
        --- baresip log ---
        \(logLines.suffix(60).joined(separator: "\n"))
        --- baresip raw output (tail) ---
        \(Self.withoutColours(String(rawOutput.suffix(6000))))
        --- busylamp output ---
        \(server.output)
        """
    }

    /// Polls until `condition` holds; on timeout, or when baresip ends first, throws with what
    /// was awaited, `diagnosis` (what the trace says went wrong, if it knows) and the report.
    func wait(
        for what: String,
        within timeout: Duration,
        server: ServerProcess,
        diagnosis: (BaresipTrace, [String]) -> String? = { _, _ in nil },
        until condition: (BaresipTrace, [String]) -> Bool
    ) async throws {
        var exited = false
        let held = try await eventually(within: timeout) {
            if condition(trace, logLines) { return true }
            if !process.isRunning {
                exited = true
                return true
            }
            return false
        }
        if held && !exited { return }
        let why = exited ? "baresip ended (\(process.termination.map(\.description) ?? "?"))" : "timed out"
        var message = "baresip: \(what): \(why) after at most \(timeout)"
        if let diagnosis = diagnosis(trace, logLines) ?? Self.knownProblems(trace, logLines) {
            message += "\nDiagnosis: \(diagnosis)"
        }
        throw EndToEndFailure(message + "\n" + report(server: server))
    }

    /// Waits for a log line that contains `text`.
    func waitForLogLine(containing text: String, within timeout: Duration, server: ServerProcess) async throws {
        try await wait(for: "log line \"\(text)\"", within: timeout, server: server) { _, log in
            log.contains { $0.contains(text) }
        }
    }

    /// Known reasons for baresip 1.0 (libre 1.1) to give up, recognised from its trace and log.
    static func knownProblems(_ trace: BaresipTrace, _ log: [String]) -> String? {
        var problems: [String] = []
        let challenges = trace.messages.filter { $0.fromServer && ($0.statusCode == 401 || $0.statusCode == 407) }
        let algorithms = Set(
            challenges.flatMap { $0.allHeaders("WWW-Authenticate") + $0.allHeaders("Proxy-Authenticate") }
                .compactMap { BaresipTrace.Message.algorithm(of: $0)?.uppercased() }
        )
        if log.contains(where: { $0.contains("Function not implemented") }), algorithms.contains(where: { $0 != "MD5" })
        {
            problems.append(
                "the server's 401 offered algorithms \(algorithms.sorted()); libre 1.x (baresip 1.0) knows only "
                    + "MD5 and fails the whole request with ENOSYS (\"Function not implemented\") when ANY "
                    + "challenge header in the 401 names another algorithm (sip/auth.c auth_handler)"
            )
        }
        for notify in trace.serverRequests("NOTIFY") {
            if let answer = notify.answer, answer.statusCode != 200 {
                problems.append(
                    "baresip answered a NOTIFY with \(answer.startLine) (it accepts only Content-Type exactly "
                        + "\"application/pidf+xml\", or no body with Content-Length: 0); the NOTIFY had "
                        + "Content-Type: \(notify.request.header("Content-Type") ?? "(none)")"
                )
            }
        }
        if let closed = log.first(where: { $0.contains("presence: subscriber closed") }) {
            problems.append("baresip's presence subscription ended: \"\(closed)\" (it retries only 30 s later)")
        }
        return problems.isEmpty ? nil : problems.joined(separator: "\n  ")
    }

    /// SIGTERM (baresip un-SUBSCRIBEs and un-REGISTERs), then SIGKILL if it lingers.
    func stop() async throws {
        process.signal(SIGTERM)
        if try await process.waitForExit(within: Self.stopTimeout) == nil {
            process.signal(SIGKILL)
            _ = try await process.waitForExit(within: Self.stopTimeout)
        }
    }
}
