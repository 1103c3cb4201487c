import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SIPCore
import TestProcessSupport
import Testing

@testable import SIPTransportNIO

/// SIP over TLS on real sockets: a `tls:127.0.0.1:0` listener with a self-signed certificate
/// made by the `openssl` CLI in a temporary folder, NIOSSL clients and `openssl s_client`.
@Suite("SIPTransport TLS loopback", .timeLimit(.minutes(1)))
struct SIPTransportTLSLoopbackTests {
    typealias Delivery = DeliveryLog.Delivery

    static let reply = SIPTransportLoopbackTests.reply

    typealias Server = SIPTransportLoopbackTests.Server

    /// Runs `body` against a transport with one TLS listener on 127.0.0.1, port 0.
    static func withServer(
        certificate: SIPTLSCertificate,
        _ body: (Server) async throws -> Void
    ) async throws {
        var configuration = SIPTransport.Configuration()
        configuration.tlsCertificate = certificate
        try await SIPTransportLoopbackTests.withServer(configuration, listening: [.tls], body)
    }

    /// One client connection while it is open: what `executeThenClose` hands out.
    struct Client {
        var channel: Channel
        var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
        var outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    }

    /// Runs `body` with a TLS client connected to `server`, closed afterwards.
    static func withClient<Result>(
        of server: Server,
        _ body: (inout Client) async throws -> Result
    ) async throws -> Result {
        let connection = try await connect(to: server)
        return try await connection.executeThenClose { inbound, outbound in
            var client = Client(channel: connection.channel, inbound: inbound.makeAsyncIterator(), outbound: outbound)
            return try await body(&client)
        }
    }

    /// A TLS client that trusts any certificate (the tests compare the one it was shown).
    static func connect(to server: Server) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        let context = try NIOSSLContext(configuration: configuration)
        return try await ClientBootstrap(group: server.group)
            .connect(host: "127.0.0.1", port: server.tls.port!) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLClientHandler(context: context, serverHostname: nil)
                    )
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Sends an OPTIONS over `client`, checks it arrives over a TLS flow, answers it over that
    /// flow and returns the answer the client read and the certificate the server showed it.
    static func exchange(
        _ callID: String,
        over client: inout Client,
        with server: Server,
        deliveries: inout AsyncStream<Delivery>.AsyncIterator
    ) async throws -> (answer: String, flow: SIPFlow, peerCertificate: NIOSSLCertificate?) {
        let message = TestMessages.options(callID: callID)
        try await client.outbound.write(ByteBuffer(string: message))
        let delivery = try #require(await deliveries.next())
        #expect(delivery.text == message)
        try await server.reply(Self.reply, to: delivery.flow)
        var answer = ""
        while answer.utf8.count < Self.reply.utf8.count, let buffer = try await client.inbound.next() {
            answer += String(buffer: buffer)
        }
        let peerCertificate = try await client.channel.nioSSL_peerCertificate().get()
        return (answer, delivery.flow, peerCertificate)
    }

    // MARK: Delivery over the same connection

    @Test func optionsOverTLSIsDeliveredAsTLSAndAnsweredOverTheSameConnection() async throws {
        let folder = try CertificateFolder()
        let certificate = try folder.makeCertificate()
        try await Self.withServer(certificate: certificate) { server in
            var deliveries = server.deliveries.makeAsyncIterator()
            try await Self.withClient(of: server) { client in
                let clientAddress = try #require(client.channel.localAddress)
                let (answer, flow, peerCertificate) = try await Self.exchange(
                    "tls-1@127.0.0.1",
                    over: &client,
                    with: server,
                    deliveries: &deliveries
                )
                #expect(answer == Self.reply)
                #expect(flow.transport == .tls)
                #expect(flow.listenerIndex == 0)
                #expect(flow.remoteAddress == clientAddress)
                let connectionID = try #require(flow.connectionID)
                #expect(
                    try await server.transport.eventLoop.submit { server.transport.isConnected(connectionID) }.get()
                )
                #expect(peerCertificate == (try folder.certificateInFile()))
                let version = try await client.channel.nioSSL_tlsVersion().get()
                #expect(version == .tlsv12 || version == .tlsv13)
            }
        }
    }

    @Test func aTLSFlowWithoutItsConnectionHasNoRoute() async throws {
        let folder = try CertificateFolder()
        try await Self.withServer(certificate: try folder.makeCertificate()) { server in
            // We open no TLS connections ourselves: a TLS flow whose connection is unknown must
            // fail rather than open a plain TCP connection to the peer.
            let flow = SIPFlow(
                transport: .tls,
                remoteAddress: try SocketAddress(ipAddress: "127.0.0.1", port: server.tls.port!),
                listenerIndex: 0,
                connectionID: nil
            )
            await #expect(throws: ChannelError.self) { try await server.reply(Self.reply, to: flow) }
            #expect(try await server.transport.eventLoop.submit { server.transport.connectionCount }.get() == 0)
        }
    }

    // MARK: Protocol versions

    /// RFC 8996: TLS 1.0 and 1.1 are refused at the handshake, TLS 1.2 is accepted.
    @Test func handshakesOlderThanTLS12AreRefused() async throws {
        let folder = try CertificateFolder()
        try await Self.withServer(certificate: try folder.makeCertificate()) { server in
            let connect = "127.0.0.1:\(server.tls.port!)"
            // SECLEVEL=0: OpenSSL 3 itself would not offer TLS 1.0/1.1 otherwise, and the test
            // is about the server refusing them.
            for version in ["-tls1", "-tls1_1"] {
                let old = try await OpenSSL.run(
                    ["s_client", "-connect", connect, version, "-cipher", "DEFAULT@SECLEVEL=0"]
                )
                #expect(old.status != 0, "\(version) was accepted:\n\(old.output)")
                #expect(!old.output.contains("Cipher is ECDHE"), "\(version):\n\(old.output)")
            }
            let current = try await OpenSSL.run(["s_client", "-connect", connect, "-tls1_2"])
            #expect(current.status == 0, "TLS 1.2 refused:\n\(current.output)")
            #expect(current.output.contains("TLSv1.2"), "\(current.output)")
        }
    }

    /// A half-open TLS peer (issue 9: a cut-off for slow or half-open peers): the first bytes of
    /// a ClientHello, then silence. The handshake never completes, so no message ever reaches
    /// the idle timer's side of the TLS handler; the connection is closed after
    /// `streamIdleTimeout` all the same, not held for ever.
    @Test func aHandshakeThatStallsIsClosedAtTheIdleTimeout() async throws {
        let folder = try CertificateFolder()
        var configuration = SIPTransport.Configuration()
        configuration.tlsCertificate = try folder.makeCertificate()
        configuration.streamIdleTimeout = .milliseconds(300)
        try await SIPTransportLoopbackTests.withServer(configuration, listening: [.tls]) { server in
            let raw = try await ClientBootstrap(group: server.group)
                .connect(host: "127.0.0.1", port: server.tls.port!) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            let clock = ContinuousClock()
            let start = clock.now
            let bytesBeforeClose: Int = try await raw.executeThenClose { inbound, outbound in
                // A TLS record header announcing a 512-byte handshake message, and 4 of its bytes.
                do {
                    try await outbound.write(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC]))
                } catch ChannelError.ioOnClosedChannel {}
                var count = 0
                do {
                    for try await buffer in inbound { count += buffer.readableBytes }
                } catch let error as IOError where error.errnoCode == ECONNRESET {}
                return count
            }
            let elapsed = clock.now - start
            #expect(bytesBeforeClose == 0, "the server answered a third of a ClientHello")
            #expect(elapsed >= .milliseconds(250))
            // "Closed, not left open": a bound, not a timing (two cores, parallel tests).
            #expect(elapsed < .seconds(60))
            let remaining = try await server.transport.eventLoop.submit { server.transport.connectionCount }.get()
            #expect(remaining == 0)
        }
    }

    // MARK: Reloading the certificate

    @Test func aReloadedCertificateIsShownToNewConnectionsWhileOldOnesGoOn() async throws {
        let folder = try CertificateFolder()
        let certificate = try folder.makeCertificate()
        let first = try folder.certificateInFile()
        try await Self.withServer(certificate: certificate) { server in
            var deliveries = server.deliveries.makeAsyncIterator()
            try await Self.withClient(of: server) { before in
                let opened = try await Self.exchange("before-1", over: &before, with: server, deliveries: &deliveries)
                #expect(opened.peerCertificate == first)

                _ = try folder.makeCertificate()  // a renewal writes new files in the same place
                let second = try folder.certificateInFile()
                #expect(second != first)
                try certificate.reload()

                try await Self.withClient(of: server) { after in
                    let renewed = try await Self.exchange(
                        "after-1",
                        over: &after,
                        with: server,
                        deliveries: &deliveries
                    )
                    #expect(renewed.answer == Self.reply)
                    #expect(renewed.peerCertificate == second)
                }

                // The connection opened before the reload still delivers and is answered.
                let kept = try await Self.exchange("before-2", over: &before, with: server, deliveries: &deliveries)
                #expect(kept.answer == Self.reply)
                #expect(kept.flow.connectionID == opened.flow.connectionID)
                #expect(kept.peerCertificate == first)
            }
        }
    }

    @Test(arguments: [
        BrokenFile.certificateChainIsNotPEM, .privateKeyIsNotPEM, .privateKeyOfAnotherCertificate, .certificateMissing,
    ])
    func aReloadWithABrokenFileKeepsTheOldCertificate(_ broken: BrokenFile) async throws {
        let folder = try CertificateFolder()
        let certificate = try folder.makeCertificate()
        let served = try folder.certificateInFile()
        try await Self.withServer(certificate: certificate) { server in
            try broken.apply(to: folder)
            let error = #expect(throws: SIPTLSError.self) { try certificate.reload() }
            #expect(error?.code == broken.expectedCode)
            var deliveries = server.deliveries.makeAsyncIterator()
            try await Self.withClient(of: server) { client in
                let exchange = try await Self.exchange("broken-1", over: &client, with: server, deliveries: &deliveries)
                #expect(exchange.answer == Self.reply)
                #expect(exchange.peerCertificate == served)
            }
        }
    }

    enum BrokenFile: String, CustomTestStringConvertible, Sendable {
        case certificateChainIsNotPEM, privateKeyIsNotPEM, privateKeyOfAnotherCertificate, certificateMissing

        var testDescription: String { rawValue }

        var expectedCode: SIPTLSError.Code {
            switch self {
            case .certificateChainIsNotPEM, .certificateMissing: return .unreadableCertificateChain
            case .privateKeyIsNotPEM: return .unreadablePrivateKey
            case .privateKeyOfAnotherCertificate: return .keyDoesNotMatchCertificate
            }
        }

        func apply(to folder: CertificateFolder) throws {
            switch self {
            case .certificateChainIsNotPEM:
                // A renewal caught half-written.
                try Data("-----BEGIN CERTIFICATE-----\nMIIB".utf8).write(to: folder.certificateChain)
            case .privateKeyIsNotPEM:
                try Data("not a key\n".utf8).write(to: folder.privateKey)
            case .privateKeyOfAnotherCertificate:
                let other = try CertificateFolder()
                _ = try other.makeCertificate()
                try FileManager.default.removeItem(at: folder.privateKey)
                try FileManager.default.copyItem(at: other.privateKey, to: folder.privateKey)
            case .certificateMissing:
                try FileManager.default.removeItem(at: folder.certificateChain)
            }
        }
    }

    // MARK: Configuration errors

    @Test func aTLSListenerWithoutCertificateDoesNotStart() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let transport = SIPTransport(eventLoop: group.next(), logger: Logger(label: "test.tls"))
        let error = await #expect(throws: SIPTLSError.self) {
            _ = try await transport.bind([SIPListenAddress(transport: .tls, host: "127.0.0.1", port: 0)])
        }
        #expect(error?.code == .notConfigured)
        #expect(error.map { "\($0)".contains("tls:127.0.0.1:0") } == true)
        await transport.close()
        try await group.shutdownGracefully()
    }

    @Test func aMissingCertificateFileIsNamed() throws {
        let folder = try CertificateFolder()
        let error = #expect(throws: SIPTLSError.self) {
            _ = try SIPTLSCertificate(
                certificateChainPath: folder.certificateChain.path,
                privateKeyPath: folder.privateKey.path
            )
        }
        #expect(error?.code == .unreadableCertificateChain)
        #expect(error.map { "\($0)".contains(folder.certificateChain.path) } == true)
    }
}

/// A temporary folder with `cert.pem` and `key.pem`, written by the `openssl` CLI.
final class CertificateFolder: Sendable {
    let url: URL
    var certificateChain: URL { url.appendingPathComponent("cert.pem") }
    var privateKey: URL { url.appendingPathComponent("key.pem") }

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("busylamp-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// A new self-signed P-256 certificate for `localhost` (a new key and serial each time)
    /// over the folder's files, and the transport's certificate made from them.
    @discardableResult
    func makeCertificate() throws -> SIPTLSCertificate {
        let result = try OpenSSL.runBlocking([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-keyout", privateKey.path, "-out", certificateChain.path,
        ])
        guard result.status == 0 else {
            throw OpenSSL.Failure(description: "openssl req failed (\(result.status)):\n\(result.output)")
        }
        return try SIPTLSCertificate(certificateChainPath: certificateChain.path, privateKeyPath: privateKey.path)
    }

    /// The certificate now in `cert.pem`.
    func certificateInFile() throws -> NIOSSLCertificate {
        try #require(try NIOSSLCertificate.fromPEMFile(certificateChain.path).first)
    }
}

/// The `openssl` command-line tool, run with standard input closed and a time limit.
enum OpenSSL {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Where `openssl` is on `PATH`; the tests fail (not skip) without it: `scripts/test`
    /// installs it.
    static func executable() throws -> URL { try executableOnPath("openssl", debianPackage: "openssl") }

    /// Runs `openssl arguments` and returns its exit status and its standard output and error
    /// together; it is terminated after `timeout`.
    static func runBlocking(_ arguments: [String], timeout: TimeInterval = 30) throws -> (status: Int32, output: String)
    {
        let process = Process()
        process.executableURL = try executable()
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        // A file rather than a pipe: a full pipe would block a chatty process.
        let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("openssl-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outputFile) }
        let output = try FileHandle(forWritingTo: outputFile)
        defer { try? output.close() }
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw Failure(description: "openssl \(arguments.joined(separator: " ")) did not end within \(timeout) s")
        }
        process.waitUntilExit()
        let text = String(decoding: (try? Data(contentsOf: outputFile)) ?? Data(), as: UTF8.self)
        return (process.terminationStatus, text)
    }

    /// ``runBlocking(_:timeout:)`` off the cooperative pool (it waits for a child process).
    static func run(_ arguments: [String], timeout: TimeInterval = 30) async throws -> (status: Int32, output: String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try runBlocking(arguments, timeout: timeout) })
            }
        }
    }
}
