import BusyLampCore
import BusyLampStore
import Foundation
import Logging
import NIOCore
import NIOPosix
import SIPAuth
import SIPCore
import SIPTransportNIO
import Synchronization
import Testing

@testable import BusyLampServer

/// One ``SIPServer`` in this process, on real loopback sockets and a real SQLite file, so that a
/// test can send it datagrams and then look at its shards' state on their event loops: what
/// the end-to-end suites, which see only the wire, cannot check.
final class DriverHarness: Sendable {
    static let domain = "sip.busylamp.test"
    static let password = "driver-secret"

    static let directory = Directory(
        platform: PlatformSettings(domain: domain),
        accounts: [Account(id: "acme")],
        lines: ["201", "202", "203"].map { extensionNumber in
            let number = "64955550" + extensionNumber
            return Line(
                accountID: "acme",
                extensionNumber: extensionNumber,
                number: number,
                credentials: Line.credentials(number: number, realm: domain, password: password)
            )
        }
    )

    let group: MultiThreadedEventLoopGroup
    let server: SIPServer
    let listeners: [SIPTransport.BoundListener]
    let folder: URL

    private init(
        group: MultiThreadedEventLoopGroup,
        server: SIPServer,
        listeners: [SIPTransport.BoundListener],
        folder: URL
    ) {
        self.group = group
        self.server = server
        self.listeners = listeners
        self.folder = folder
    }

    /// A data folder of its own for one server (``start(listenAddresses:folder:configure:)``).
    static func makeFolder() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("busylamp-driver-\(UUID().uuidString)")
    }

    /// Starts a server with `shards` shards (one by default) on `listenAddresses` (UDP on
    /// 127.0.0.1, port 0 by default), on the store in `folder` (a new one by default; `stop`
    /// removes it).
    static func start(
        shards: Int = 1,
        listenAddresses: [SIPListenAddress] = [SIPListenAddress(transport: .udp, host: "127.0.0.1", port: 0)],
        folder: URL = makeFolder(),
        configure: (inout SIPServer.Configuration) -> Void = { _ in }
    ) async throws -> DriverHarness {
        let store = try SQLiteStore.open(dataDirectory: folder)
        try store.replaceDirectory(with: directory)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: shards)
        var configuration = SIPServer.Configuration()
        configuration.listenAddresses = listenAddresses
        configure(&configuration)
        var logger = Logger(label: "driver-test")
        logger.logLevel = .critical
        let server = SIPServer(
            eventLoops: Array(group.makeIterator()),
            directory: directory,
            stores: SIPServer.Stores(directory: store, registrations: store, subscriptions: store, calls: store),
            configuration: configuration,
            logger: logger
        )
        let listeners = try await server.start()
        return DriverHarness(group: group, server: server, listeners: listeners, folder: folder)
    }

    func port(ofListener index: Int) -> Int { listeners[index].localAddress.port ?? 0 }

    /// Reads the first shard's state on its event loop.
    func onShard<T: Sendable>(_ read: @escaping @Sendable (SIPShard) -> T) async throws -> T {
        let shard = server.shards[0]
        return try await shard.eventLoop.submit { read(shard) }.get()
    }

    func stop() async throws {
        await server.stop()
        try await group.shutdownGracefully()
        try? FileManager.default.removeItem(at: folder)
    }
}

/// A phone's UDP socket on 127.0.0.1: sends datagrams to a port and keeps what comes back, with
/// the port each came from (which of the server's sockets sent it).
final class UDPPhone: Sendable {
    struct Received: Sendable {
        var message: SIPMessage
        var sourcePort: Int
        var receivedAt: ContinuousClock.Instant
    }

    private final class Inbox: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        let received = Mutex<[Received]>([])
        /// A live watcher answers every NOTIFY 200 at once; a vanished one answers nothing.
        let answersNotifies: Bool

        init(answersNotifies: Bool) { self.answersNotifies = answersNotifies }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            let now = ContinuousClock.now
            guard let message = try? SIPParser().parse(Array(envelope.data.readableBytesView), framing: .datagram)
            else { return }
            received.withLock {
                $0.append(Received(message: message, sourcePort: envelope.remoteAddress.port ?? 0, receivedAt: now))
            }
            if answersNotifies, let request = message.request, request.method == .notify {
                let ok = SIPResponse(replyingTo: request, statusCode: 200, toTag: nil)
                let answer = context.channel.allocator.buffer(bytes: ok.serializedBytes)
                context.writeAndFlush(
                    wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: answer)),
                    promise: nil
                )
            }
        }
    }

    private let channel: Channel
    private let inbox: Inbox
    let host: String
    let port: Int

    private init(channel: Channel, inbox: Inbox) {
        self.channel = channel
        self.inbox = inbox
        self.host = channel.localAddress?.ipAddress ?? "127.0.0.1"
        self.port = channel.localAddress?.port ?? 0
    }

    /// A socket on `host` (127.0.0.2 and so on for a second source: still loopback).
    static func open(
        group: EventLoopGroup,
        host: String = "127.0.0.1",
        answersNotifies: Bool = false
    ) async throws -> UDPPhone {
        let inbox = Inbox(answersNotifies: answersNotifies)
        let channel = try await DatagramBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(inbox) }
            }
            .bind(host: host, port: 0).get()
        return UDPPhone(channel: channel, inbox: inbox)
    }

    func send(_ text: String, to port: Int) async throws {
        let remote = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        let buffer = channel.allocator.buffer(string: text)
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: buffer)).get()
    }

    /// Every message received so far.
    var received: [Received] { inbox.received.withLock { $0 } }

    /// Waits for the first message `matching` (polling: the inbox fills on the channel's loop).
    func first(
        within timeout: Duration = .seconds(5),
        matching: (SIPMessage) -> Bool
    ) async throws -> Received {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let found = received.first(where: { matching($0.message) }) { return found }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw DriverTestFailure("no matching message within \(timeout); received \(received.count)")
    }

    /// Waits until `count` messages arrived.
    func awaitCount(_ count: Int, within timeout: Duration = .seconds(5)) async throws -> [Received] {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            let all = received
            if all.count >= count { return all }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw DriverTestFailure("\(received.count) of \(count) messages within \(timeout)")
    }

    func close() async throws { try await channel.close() }
}

struct DriverTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension SIPMessage {
    var response: SIPResponse? {
        if case .response(let response) = self { return response }
        return nil
    }

    var request: SIPRequest? {
        if case .request(let request) = self { return request }
        return nil
    }
}
