import Logging
import NIOCore
import NIOPosix
import SIPCore
import Testing

@testable import SIPTransportNIO

/// The transport on real sockets: listeners on 127.0.0.1 with ports the OS chooses, clients
/// that send a message and read the answer sent back over the same flow.
@Suite("SIPTransport loopback", .timeLimit(.minutes(1)))
struct SIPTransportLoopbackTests {
    typealias Delivery = DeliveryLog.Delivery

    /// A transport bound on 127.0.0.1 port 0 (UDP and TCP unless told otherwise), whose
    /// deliveries arrive on a stream.
    struct Server {
        var group: MultiThreadedEventLoopGroup
        var transport: SIPTransport
        var deliveries: AsyncStream<Delivery>
        var listeners: [SIPTransport.BoundListener]

        var udp: SocketAddress { address(of: .udp) }
        var tcp: SocketAddress { address(of: .tcp) }
        var tls: SocketAddress { address(of: .tls) }

        func address(of transport: SIPTransportKind) -> SocketAddress {
            listeners.first { $0.transport == transport }!.localAddress
        }

        static func start(
            _ configuration: SIPTransport.Configuration = SIPTransport.Configuration(),
            listening transports: [SIPTransportKind] = [.udp, .tcp]
        ) async throws -> Server {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let transport = SIPTransport(
                eventLoop: group.next(),
                configuration: configuration,
                logger: Logger(label: "test.loopback")
            )
            let (deliveries, continuation) = AsyncStream.makeStream(of: Delivery.self)
            transport.setMessageHandler { bytes, framing, flow in
                continuation.yield(Delivery(bytes: bytes, framing: framing, flow: flow))
            }
            do {
                let listeners = try await transport.bind(
                    transports.map { SIPListenAddress(transport: $0, host: "127.0.0.1", port: 0) }
                )
                return Server(group: group, transport: transport, deliveries: deliveries, listeners: listeners)
            } catch {
                try? await group.shutdownGracefully()
                throw error
            }
        }

        func stop() async throws {
            await transport.close()
            try await group.shutdownGracefully()
        }

        /// Sends `text` back over `flow` from the transport's event loop.
        func reply(_ text: String, to flow: SIPFlow) async throws {
            try await transport.eventLoop.flatSubmit {
                transport.send(ByteBuffer(string: text), to: flow)
            }.get()
        }
    }

    static let reply = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"

    /// Runs `body` against a started server and stops it afterwards, also when `body` throws.
    /// Clients made in `body` are gone before the event loop shuts down (a `NIOAsyncChannel`
    /// that outlives its loop schedules onto a dead loop when it is released).
    static func withServer(
        _ configuration: SIPTransport.Configuration = SIPTransport.Configuration(),
        listening transports: [SIPTransportKind] = [.udp, .tcp],
        _ body: (Server) async throws -> Void
    ) async throws {
        let server = try await Server.start(configuration, listening: transports)
        do {
            try await body(server)
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }

    @Test func bindsUDPAndTCPOnPortsTheOSChooses() async throws {
        try await Self.withServer { server in
            #expect(server.udp.port.map { $0 > 0 } == true)
            #expect(server.tcp.port.map { $0 > 0 } == true)
            #expect(server.udp.ipAddress == "127.0.0.1")
            let listeners = try await server.transport.eventLoop.submit { server.transport.listeners }.get()
            #expect(listeners.map(\.transport) == [.udp, .tcp])
        }
    }

    @Test func datagramIsReceivedAndAnsweredOverTheSameFlow() async throws {
        try await Self.withServer { server in
            let client = try await DatagramBootstrap(group: server.group)
                .bind(host: "127.0.0.1", port: 0) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(
                            wrappingChannelSynchronously: channel
                        )
                    }
                }
            let clientAddress = try #require(client.channel.localAddress)
            let message = TestMessages.options(callID: "udp-1@127.0.0.1")

            let answer: String? = try await client.executeThenClose { inbound, outbound in
                try await outbound.write(
                    AddressedEnvelope(remoteAddress: server.udp, data: ByteBuffer(string: message))
                )
                var deliveries = server.deliveries.makeAsyncIterator()
                let delivery = try #require(await deliveries.next())
                #expect(delivery.text == message)
                #expect(delivery.framing == .datagram)
                #expect(delivery.flow.transport == .udp)
                #expect(delivery.flow.listenerIndex == 0)
                #expect(delivery.flow.connectionID == nil)
                #expect(delivery.flow.remoteAddress == clientAddress)
                try await server.reply(Self.reply, to: delivery.flow)
                for try await envelope in inbound {
                    #expect(envelope.remoteAddress == server.udp)
                    return String(buffer: envelope.data)
                }
                return nil
            }
            #expect(answer == Self.reply)
        }
    }

    @Test func tcpMessageIsReceivedAndAnsweredOverTheSameConnection() async throws {
        try await Self.withServer { server in
            let client = try await Self.connect(to: server)
            let clientAddress = try #require(client.channel.localAddress)
            let first = TestMessages.options(callID: "tcp-1@127.0.0.1")
            let second = TestMessages.options(callID: "tcp-2@127.0.0.1", body: "two")

            let answer: String? = try await client.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: first + second))
                var deliveries = server.deliveries.makeAsyncIterator()
                let one = try #require(await deliveries.next())
                let two = try #require(await deliveries.next())
                #expect([one.text, two.text] == [first, second])
                #expect(one.framing == .stream)
                #expect(one.flow.transport == .tcp)
                #expect(one.flow.listenerIndex == 1)
                #expect(one.flow.remoteAddress == clientAddress)
                let connectionID = try #require(one.flow.connectionID)
                #expect(two.flow.connectionID == connectionID)
                let connected = try await server.transport.eventLoop.submit {
                    server.transport.isConnected(connectionID)
                }.get()
                #expect(connected)

                try await server.reply(Self.reply, to: one.flow)
                return try await Self.read(Self.reply.utf8.count, from: inbound)
            }
            #expect(answer == Self.reply)
        }
    }

    @Test func idleTCPConnectionIsClosedByTheServer() async throws {
        var configuration = SIPTransport.Configuration()
        configuration.streamIdleTimeout = .milliseconds(200)
        try await Self.withServer(configuration) { server in
            let client = try await Self.connect(to: server)
            let clock = ContinuousClock()
            let start = clock.now
            let bytesBeforeClose: Int = try await client.executeThenClose { inbound, outbound in
                // Half a message, then silence: the server must not wait for the rest forever.
                // On a loaded machine this task may first run after the 200 ms: then the server
                // has closed the idle connection already, which is what is being tested.
                do {
                    try await outbound.write(ByteBuffer(string: "OPTIONS sip:sip.busylamp.test SIP/2.0\r\n"))
                } catch ChannelError.ioOnClosedChannel {}
                var count = 0
                do {
                    for try await buffer in inbound { count += buffer.readableBytes }
                } catch let error as IOError where error.errnoCode == ECONNRESET {
                    // A close with our half message still unread in the server's socket is a
                    // reset, not a FIN (RFC 1122 4.2.2.13): closed either way.
                }
                return count
            }
            let elapsed = clock.now - start
            #expect(bytesBeforeClose == 0)
            #expect(elapsed >= .milliseconds(150))
            // An upper bound that says "closed, not left open", not a timing: in the parallel
            // `swift test` run on two cores the reading task itself may wait seconds for a thread.
            #expect(elapsed < .seconds(60))
            let remaining = try await server.transport.eventLoop.submit { server.transport.connectionCount }.get()
            #expect(remaining == 0)
        }
    }

    @Test func replyToAClosedConnectionFails() async throws {
        try await Self.withServer { server in
            let client = try await Self.connect(to: server)
            let flow: SIPFlow = try await client.executeThenClose { _, outbound in
                try await outbound.write(ByteBuffer(string: TestMessages.options()))
                var deliveries = server.deliveries.makeAsyncIterator()
                return try #require(await deliveries.next()).flow
            }
            // The server sees the close a moment later; until then a send may still succeed.
            var failed = false
            for _ in 0..<100 where !failed {
                do {
                    try await server.reply(Self.reply, to: flow)
                    try await Task.sleep(for: .milliseconds(20))
                } catch {
                    failed = true
                }
            }
            #expect(failed)
        }
    }

    /// Issue 9: one source address gets at most `maximumConnectionsPerSource` connections at
    /// once; another address is still served, and a closed connection frees its place.
    @Test func connectionsPerSourceAreCapped() async throws {
        var configuration = SIPTransport.Configuration()
        configuration.maximumConnectionsPerSource = 2
        try await Self.withServer(configuration) { server in
            func openCount() async throws -> Int {
                try await server.transport.eventLoop.submit { server.transport.connectionCount }.get()
            }
            func awaitOpenCount(_ expected: Int) async throws -> Int {
                for _ in 0..<200 {
                    let count = try await openCount()
                    if count == expected { return count }
                    try await Task.sleep(for: .milliseconds(10))
                }
                return try await openCount()
            }
            let first = try await Self.connect(to: server)
            let second = try await Self.connect(to: server)
            #expect(try await awaitOpenCount(2) == 2)
            // The third from 127.0.0.1 is accepted by the kernel and closed by the server.
            let third = try await Self.connect(to: server)
            let thirdReadBytes: Int = try await third.executeThenClose { inbound, _ in
                var count = 0
                for try await buffer in inbound { count += buffer.readableBytes }
                return count
            }
            #expect(thirdReadBytes == 0)
            #expect(try await openCount() == 2)
            // Another source address is served.
            let other = try await Self.connect(to: server, from: "127.0.0.2")
            #expect(try await awaitOpenCount(3) == 3)
            // A closed connection frees its place.
            try await first.executeThenClose { _, _ in }
            #expect(try await awaitOpenCount(2) == 2)
            let again = try await Self.connect(to: server)
            #expect(try await awaitOpenCount(3) == 3)
            for client in [second, other, again] { try await client.executeThenClose { _, _ in } }
        }
    }

    /// Issue 9: a peer that stops reading gets at most what the kernel's buffers and
    /// `maximumUnsentBytesPerConnection` hold; then the server closes the connection, and
    /// another peer is still answered.
    @Test func aPeerThatStopsReadingIsCutOff() async throws {
        var configuration = SIPTransport.Configuration()
        configuration.maximumUnsentBytesPerConnection = 64 << 10
        try await Self.withServer(configuration) { server in
            let stalled = try await ClientBootstrap(group: server.group)
                .channelOption(.socketOption(.so_rcvbuf), value: 4096)
                .channelOption(.autoRead, value: false)  // never reads what the server sends
                .connect(host: "127.0.0.1", port: server.tcp.port!).get()
            try await stalled.writeAndFlush(ByteBuffer(string: TestMessages.options())).get()
            var deliveries = server.deliveries.makeAsyncIterator()
            let flow = try #require(await deliveries.next()).flow
            // Sent as the notifier sends NOTIFYs: without waiting for each write to finish, so
            // that what the peer does not read piles up in the server's buffer.
            let notify = ByteBuffer(string: String(repeating: "x", count: 4096))
            let transport = server.transport
            // Bounded: 80 MB at most, far above loopback's socket buffers and the limit.
            let sent = try await transport.eventLoop.submit {
                var sent = 0
                var refused = false
                while sent < 20_000 && !refused {
                    transport.send(notify, to: flow).whenFailure { _ in refused = true }
                    sent += 1
                }
                return sent
            }.get()
            #expect(sent < 20_000, "the server kept queueing for a peer that does not read")
            let open = try await server.transport.eventLoop.submit { server.transport.connectionCount }.get()
            #expect(open == 0)
            try? await stalled.close()

            let live = try await Self.connect(to: server, from: "127.0.0.2")
            let answer: String = try await live.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: TestMessages.options(callID: "live@127.0.0.2")))
                let delivery = try #require(await deliveries.next())
                try await server.reply(Self.reply, to: delivery.flow)
                return try await Self.read(Self.reply.utf8.count, from: inbound)
            }
            #expect(answer == Self.reply)
        }
    }

    /// Reads from `inbound` until at least `count` bytes have arrived.
    static func read(_ count: Int, from inbound: NIOAsyncChannelInboundStream<ByteBuffer>) async throws -> String {
        var received = ""
        for try await buffer in inbound {
            received += String(buffer: buffer)
            if received.utf8.count >= count { break }
        }
        return received
    }

    static func connect(
        to server: Server,
        from host: String = "127.0.0.1"
    ) async throws -> NIOAsyncChannel<
        ByteBuffer, ByteBuffer
    > {
        try await ClientBootstrap(group: server.group)
            .bind(to: try SocketAddress(ipAddress: host, port: 0))
            .connect(host: "127.0.0.1", port: server.tcp.port!) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }
}
