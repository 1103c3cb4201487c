import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension EndToEnd {
    /// SIP over TLS (issue 9): `--sip tls:HOST:PORT` with `tls_certificate` and
    /// `tls_private_key` (INTERFACE.md), a real phone (baresip) over it, and SIGHUP's reload.
    @Suite("SIP over TLS", .timeLimit(.minutes(3)))
    struct TLS {
        static let startTimeout: Duration = .seconds(10)
        static let notifyTimeout: Duration = .seconds(8)

        /// A self-signed certificate for the server, written by the `openssl` CLI.
        struct Certificate {
            var chain: URL
            var key: URL

            /// Writes a new certificate and key (a new serial each time) at `folder`'s cert.pem
            /// and key.pem, over what is there.
            static func make(in folder: URL) async throws -> Certificate {
                let certificate = Certificate(
                    chain: folder.appendingPathComponent("cert.pem"),
                    key: folder.appendingPathComponent("key.pem")
                )
                let output = folder.appendingPathComponent("openssl.out")
                let process = try ChildProcess(
                    executable: try TestEnvironment.openssl(),
                    arguments: [
                        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", certificate.key.path,
                        "-out", certificate.chain.path,
                    ],
                    standardOutput: output,
                    standardError: output
                )
                let status = try await process.waitForExit(within: .seconds(30))
                guard status == .exited(0) else {
                    let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
                    throw EndToEndFailure("openssl req: \(status.map(\.description) ?? "timed out")\n\(text)")
                }
                return certificate
            }
        }

        /// `busylamp serve --sip tls:…` without one of the keys, or with a file that is no
        /// certificate: exit code 2 and a message naming the key or the file, nothing started.
        @Test func aTLSListenerWithoutAUsableCertificateStopsTheStart() async throws {
            let folder = try TestEnvironment.makeTemporaryDirectory("tls-config")
            defer { try? FileManager.default.removeItem(at: folder) }
            let certificate = try await Certificate.make(in: folder)
            let directoryFile = try DirectoryFixture.write(into: folder)
            let notACertificate = folder.appendingPathComponent("not-a-certificate.pem")
            try "hello\n".write(to: notACertificate, atomically: true, encoding: .utf8)
            let cases: [(config: String, named: String)] = [
                ("log_level: info\n", "tls_certificate"),
                ("tls_certificate: \(certificate.chain.path)\n", "tls_private_key"),
                ("tls_private_key: \(certificate.key.path)\n", "tls_certificate"),
                (
                    "tls_certificate: \(notACertificate.path)\ntls_private_key: \(certificate.key.path)\n",
                    notACertificate.path
                ),
            ]
            for (index, (config, named)) in cases.enumerated() {
                let configFile = folder.appendingPathComponent("config-\(index).yaml")
                try config.write(to: configFile, atomically: true, encoding: .utf8)
                let run = try await AdminAPI.busylamp(
                    [
                        "serve", "--directory", directoryFile.path, "--data",
                        folder.appendingPathComponent("data-\(index)").path, "--config", configFile.path,
                        "--sip", "tls:127.0.0.1:0", "--http", "127.0.0.1:0",
                    ],
                    in: folder
                )
                #expect(run.status == .exited(2), "config \(config): \(run.output)")
                #expect(run.output.contains(named), "config \(config) should name \(named): \(run.output)")
                #expect(!run.output.contains("ready"), "\(run.output)")
            }
        }

        /// baresip registers and subscribes over TLS and gets its NOTIFYs over its TLS
        /// connection, with our Via and Contact saying TLS; after a SIGHUP with a renewed
        /// certificate the server goes on notifying over that connection.
        @Test func baresipRegistersSubscribesAndIsNotifiedOverTLS() async throws {
            let watcher = DirectoryFixture.alice
            let watched = DirectoryFixture.bob
            let bobPort = try LoopbackSocket.freeUDPPort()
            let folder = try TestEnvironment.makeTemporaryDirectory("tls-certificate")
            defer { try? FileManager.default.removeItem(at: folder) }
            let certificate = try await Certificate.make(in: folder)
            let configFile = folder.appendingPathComponent("config.yaml")
            // MD5 only: baresip 1.0 (BaresipProcess.knownProblems).
            try """
            digest_algorithms: [MD5]
            tls_certificate: \(certificate.chain.path)
            tls_private_key: \(certificate.key.path)

            """.write(to: configFile, atomically: true, encoding: .utf8)

            try await withServer(
                "baresip-tls",
                extraArguments: ["--config", configFile.path, "--sip", "tls:127.0.0.1:0"]
            ) { server in
                let tlsPort = try #require(server.tlsPort, "no `sip tls` line:\n\(server.output)")
                let baresip = try BaresipProcess.start(
                    against: server,
                    as: watcher,
                    watching: [watched],
                    trustingTLSCertificate: certificate.chain
                )
                do {
                    try await Self.run(baresip, server: server, watched: watched, bobPort: bobPort, folder: folder)
                } catch {
                    try? await baresip.stop()
                    throw error
                }
                try await baresip.stop()
                // Everything between baresip and the server went over TLS, to the TLS port.
                let report = baresip.report(server: server)
                #expect(!baresip.trace.messages.isEmpty, "\(report)")
                #expect(baresip.trace.messages.allSatisfy { $0.transport == "TLS" }, "\(report)")
                #expect(tlsPort > 0)
            }
        }

        private static func run(
            _ baresip: BaresipProcess,
            server: ServerProcess,
            watched: DirectoryFixture.Line,
            bobPort: Int,
            folder: URL
        ) async throws {
            try await baresip.wait(
                for: "REGISTER over TLS answered 200",
                within: startTimeout,
                server: server
            ) { trace, _ in
                trace.responses(to: "REGISTER").contains { $0.statusCode == 200 && $0.transport == "TLS" }
            }
            // The first NOTIFY (Bob not registered: closed), over TLS, answered 200 by baresip.
            try await baresip.wait(
                for: "a presence NOTIFY over TLS saying closed, answered 200",
                within: startTimeout,
                server: server
            ) { trace, _ in
                trace.serverRequests("NOTIFY").contains { notify in
                    notify.request.transport == "TLS" && notify.answer?.statusCode == 200
                        && BaresipTrace.basicStatus(in: notify.request.body) == "closed"
                }
            }
            let notify = try #require(baresip.trace.serverRequests("NOTIFY").first?.request)
            let report = baresip.report(server: server)
            #expect(notify.header("Via")?.hasPrefix("SIP/2.0/TLS ") == true, "our Via says TLS\n\(report)")
            #expect(notify.header("Contact")?.contains(";transport=tls") == true, "our Contact says TLS\n\(report)")
            let subscribed = try #require(
                baresip.trace.responses(to: "SUBSCRIBE").first { (200..<300).contains($0.statusCode ?? 0) }
            )
            #expect(subscribed.header("Contact")?.contains(";transport=tls") == true, "\(report)")

            // A renewed certificate, then SIGHUP: logged at notice, and baresip's connection,
            // made before, still carries the next NOTIFY.
            _ = try await Certificate.make(in: folder)
            kill(server.pid, SIGHUP)
            let reloaded = try await eventually(within: .seconds(10)) {
                server.output.contains("TLS certificate reloaded")
            }
            #expect(reloaded, "no reload logged after SIGHUP:\n\(server.output)")

            let register = try await SIPpRun.run(
                "register",
                against: server,
                over: .udp,
                line: watched,
                localPort: bobPort
            )
            try #require(register.exitCode == 0, "SIPp register of \(watched.number)\n\(register.report)")
            let online = BaresipProcess.statusChange(of: watched, from: "Offline", to: "Online")
            try await baresip.waitForLogLine(containing: online, within: notifyTimeout, server: server)
        }
    }
}

extension TestEnvironment {
    /// The `openssl` executable on PATH. Its absence is a failure, not a skip.
    static func openssl() throws -> URL { try executableOnPath("openssl", debianPackage: "openssl") }
}
