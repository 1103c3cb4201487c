import Foundation
import Logging
import NIOCore
import NIOEmbedded
import SIPCore
import Testing

@testable import SIPTransportNIO

/// What a transport handed to its message handler, in order.
final class DeliveryLog: @unchecked Sendable {
    // @unchecked: every field is behind `lock`.
    struct Delivery: Sendable {
        var bytes: [UInt8]
        var framing: SIPFraming
        var flow: SIPFlow
        var text: String { String(decoding: bytes, as: UTF8.self) }
    }

    private let lock = NSLock()
    private var deliveries: [Delivery] = []

    var all: [Delivery] { lock.withLock { deliveries } }

    func record(_ bytes: [UInt8], _ framing: SIPFraming, _ flow: SIPFlow) {
        lock.withLock { deliveries.append(Delivery(bytes: bytes, framing: framing, flow: flow)) }
    }
}

/// SIP messages as the handlers receive them.
enum TestMessages {
    static func options(callID: String = "opt-1@192.0.2.4", body: String = "") -> String {
        var lines = [
            "OPTIONS sip:sip.busylamp.test SIP/2.0",
            "Via: SIP/2.0/TCP 192.0.2.4:5062;branch=z9hG4bK-\(callID)",
            "Max-Forwards: 70",
            "From: <sip:201@sip.busylamp.test>;tag=a1",
            "To: <sip:sip.busylamp.test>",
            "Call-ID: \(callID)",
            "CSeq: 1 OPTIONS",
        ]
        if !body.isEmpty { lines.append("Content-Type: text/plain") }
        lines.append("Content-Length: \(body.utf8.count)")
        return lines.joined(separator: "\r\n") + "\r\n\r\n" + body
    }
}

/// The UDP and TCP handlers on an `EmbeddedChannel`: bytes in, deliveries and writes out, with
/// virtual time for the idle timeout.
@Suite("SIPTransportHandlers", .timeLimit(.minutes(1)))
struct SIPTransportHandlersTests {
    static let peer = try! SocketAddress(ipAddress: "192.0.2.4", port: 5062)
    static let logger = Logger(label: "test.transport")

    /// A TCP connection as `SIPTransport.bind` builds it (idle handler, then stream handler),
    /// already connected, with its transport and the log of what it delivered.
    struct StreamConnection {
        var channel: EmbeddedChannel
        var transport: SIPTransport
        var log: DeliveryLog

        var loop: EmbeddedEventLoop

        init(
            idleTimeout: TimeAmount = .seconds(180),
            messageTimeout: TimeAmount = .seconds(32),
            limits: SIPParserLimits = .default
        ) throws {
            let loop = EmbeddedEventLoop()
            self.loop = loop
            transport = SIPTransport(eventLoop: loop, logger: SIPTransportHandlersTests.logger)
            let log = DeliveryLog()
            transport.setMessageHandler { log.record($0, $1, $2) }
            self.log = log
            channel = EmbeddedChannel(loop: loop)
            try channel.pipeline.syncOperations.addHandlers([
                IdleStateHandler(readTimeout: idleTimeout),
                SIPStreamHandler(
                    transport: transport,
                    listenerIndex: 1,
                    transportKind: .tcp,
                    settings: .init(limits: limits, messageTimeout: messageTimeout)
                ),
            ])
            try channel.connect(to: SIPTransportHandlersTests.peer).wait()
        }

        func write(_ text: String) throws {
            try channel.writeInbound(ByteBuffer(string: text))
        }

        func readOutboundText() throws -> String? {
            try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }
        }
    }

    // MARK: TCP framing

    @Test func oneMessageDripFedByteByByteIsDeliveredOnce() throws {
        let connection = try StreamConnection()
        let message = TestMessages.options(body: "hello")
        let bytes = Array(message.utf8)
        for (index, byte) in bytes.enumerated() {
            #expect(connection.log.all.isEmpty, "delivered before byte \(index) of \(bytes.count)")
            try connection.channel.writeInbound(ByteBuffer(bytes: [byte]))
        }
        let deliveries = connection.log.all
        #expect(deliveries.count == 1)
        let delivery = try #require(deliveries.first)
        #expect(delivery.bytes == bytes)
        #expect(delivery.framing == .stream)
        #expect(delivery.flow.transport == .tcp)
        #expect(delivery.flow.remoteAddress == Self.peer)
        #expect(delivery.flow.listenerIndex == 1)
        let connectionID = try #require(delivery.flow.connectionID)
        #expect(connection.transport.isConnected(connectionID))
        #expect(connection.channel.isActive)
    }

    @Test func twoPipelinedMessagesInOneReadAreDeliveredInOrder() throws {
        let connection = try StreamConnection()
        let first = TestMessages.options(callID: "first@192.0.2.4", body: "v=0\r\n")
        let second = TestMessages.options(callID: "second@192.0.2.4")
        try connection.write(first + second)
        #expect(connection.log.all.map(\.text) == [first, second])
        let ids = connection.log.all.map(\.flow.connectionID)
        #expect(ids[0] != nil && ids[0] == ids[1])
    }

    @Test func messageSplitAcrossReadsWithTheNextOneStartedIsDeliveredWhenComplete() throws {
        let connection = try StreamConnection()
        let first = TestMessages.options(callID: "first@192.0.2.4", body: "abcdef")
        let second = TestMessages.options(callID: "second@192.0.2.4")
        let joined = Array((first + second).utf8)
        let cut = first.utf8.count + 10
        try connection.channel.writeInbound(ByteBuffer(bytes: joined[..<cut]))
        #expect(connection.log.all.map(\.text) == [first])
        try connection.channel.writeInbound(ByteBuffer(bytes: joined[cut...]))
        #expect(connection.log.all.map(\.text) == [first, second])
    }

    @Test func doubleCRLFPingIsAnsweredWithCRLF() throws {
        // RFC 5626 §4.4.1: "... the server MUST respond with a single CRLF (pong)".
        let connection = try StreamConnection()
        try connection.write("\r\n\r\n")
        #expect(try connection.readOutboundText() == "\r\n")
        #expect(try connection.readOutboundText() == nil)
        #expect(connection.log.all.isEmpty)
        #expect(connection.channel.isActive)

        // A ping between messages does not disturb the framing.
        let message = TestMessages.options()
        try connection.write("\r\n\r\n" + message)
        #expect(try connection.readOutboundText() == "\r\n")
        #expect(connection.log.all.map(\.text) == [message])
    }

    @Test func oversizeHeaderSectionClosesTheConnection() throws {
        let limits = SIPParserLimits(maximumMessageSize: 1024)
        let connection = try StreamConnection(limits: limits)
        #expect(connection.transport.connectionCount == 1)
        // A header section that never ends: more than the limit without a blank line.
        let header =
            "OPTIONS sip:sip.busylamp.test SIP/2.0\r\n" + String(repeating: "X-Padding: 0123456789\r\n", count: 60)
        #expect(header.utf8.count > limits.maximumMessageSize)
        try connection.write(header)
        #expect(!connection.channel.isActive)
        #expect(connection.log.all.isEmpty)
        #expect(connection.transport.connectionCount == 0)
    }

    @Test func headerSectionJustUnderTheLimitIsStillWaitedFor() throws {
        let limits = SIPParserLimits(maximumMessageSize: 1024)
        let connection = try StreamConnection(limits: limits)
        try connection.write(String(repeating: "a", count: limits.maximumMessageSize))
        #expect(connection.channel.isActive)
        #expect(connection.log.all.isEmpty)
    }

    @Test func oversizeBodyClosesTheConnection() throws {
        let limits = SIPParserLimits(maximumMessageSize: 1024)
        let connection = try StreamConnection(limits: limits)
        try connection.write(TestMessages.options(body: String(repeating: "b", count: 2000)))
        #expect(!connection.channel.isActive)
        #expect(connection.log.all.isEmpty)
    }

    /// RFC 3261 §18.3 (a request whose message is in error gets a 400), then the close: the
    /// stream cannot be resynchronised.
    @Test(arguments: ["abc", "-1", "", "12345678901", "10, 20"])
    func badContentLengthIsAnsweredThenClosed(contentLength: String) throws {
        let connection = try StreamConnection()
        let message = TestMessages.options()
            .replacingOccurrences(of: "Content-Length: 0", with: "Content-Length: \(contentLength)")
        try connection.write(message)
        let answer = try #require(try connection.readOutboundText())
        #expect(answer.hasPrefix("SIP/2.0 400 Malformed Content-Length\r\n"), "\(answer)")
        #expect(answer.contains("CSeq: 1 OPTIONS"))
        #expect(!connection.channel.isActive)
        #expect(connection.log.all.isEmpty)
    }

    @Test func missingContentLengthIsAnsweredThenClosed() throws {
        // RFC 3261 §18.3: "In the case of stream-oriented transports such as TCP, the
        // Content-Length header field indicates the size of the body" — without it a stream
        // cannot be framed.
        let connection = try StreamConnection()
        try connection.write(TestMessages.options().replacingOccurrences(of: "Content-Length: 0\r\n", with: ""))
        let answer = try #require(try connection.readOutboundText())
        #expect(answer.hasPrefix("SIP/2.0 400 Missing Content-Length\r\n"), "\(answer)")
        #expect(!connection.channel.isActive)
        #expect(connection.log.all.isEmpty)
    }

    @Test func anUnreadableRequestWithABadContentLengthIsOnlyClosed() throws {
        // Nothing names a transaction (no Via, no CSeq): no answer can be built.
        let connection = try StreamConnection()
        try connection.write("OPTIONS sip:sip.busylamp.test SIP/2.0\r\nContent-Length: many\r\n\r\n")
        #expect(try connection.readOutboundText() == nil)
        #expect(!connection.channel.isActive)
    }

    // MARK: Idle connections

    @Test func idleStateEventClosesTheConnection() throws {
        let connection = try StreamConnection()
        #expect(connection.transport.connectionCount == 1)
        connection.channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(!connection.channel.isActive)
        #expect(connection.transport.connectionCount == 0)
    }

    @Test func halfAMessageLeftIdleIsClosedWithoutADelivery() throws {
        // IdleStateHandler measures time with `NIODeadline.now()`, not the embedded loop's
        // virtual clock, so the timer itself is exercised by the loopback test; here the event.
        let connection = try StreamConnection(idleTimeout: .seconds(30))
        try connection.write("OPTIONS sip:sip.busylamp.test SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.4")
        #expect(connection.channel.isActive)
        connection.channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(!connection.channel.isActive)
        #expect(connection.log.all.isEmpty)
    }

    /// Issue 9: a peer that trickles a message (slowloris) is never idle, so the idle timeout
    /// alone would keep it forever; the message's own deadline runs from its first byte.
    @Test func aMessageTrickledPastItsDeadlineClosesTheConnection() throws {
        let connection = try StreamConnection(idleTimeout: .seconds(30), messageTimeout: .seconds(10))
        for character in "OPTIONS sip:sip.busylamp.test SIP/2.0\r\n".prefix(4) {
            try connection.write(String(character))
            connection.loop.advanceTime(by: .seconds(3))
        }
        #expect(!connection.channel.isActive)  // 4 bytes over 12 s: closed at 10 s
        #expect(connection.log.all.isEmpty)
    }

    @Test func eachMessageHasADeadlineOfItsOwn() throws {
        let connection = try StreamConnection(messageTimeout: .seconds(10))
        let message = TestMessages.options()
        let half = message.utf8.count / 2
        try connection.write(String(message.prefix(half)))
        connection.loop.advanceTime(by: .seconds(9))
        try connection.write(String(message.dropFirst(half)) + String(message.prefix(half)))
        connection.loop.advanceTime(by: .seconds(9))  // 18 s after the first message began
        #expect(connection.channel.isActive)
        #expect(connection.log.all.count == 1)
        connection.loop.advanceTime(by: .seconds(2))  // 11 s after the second began
        #expect(!connection.channel.isActive)
        #expect(connection.log.all.count == 1)
    }

    @Test func keepAliveCRLFsDoNotArmTheMessageDeadline() throws {
        let connection = try StreamConnection(messageTimeout: .seconds(10))
        try connection.write("\r\n")  // a phone's lone CRLF keep-alive, waiting for its pair
        connection.loop.advanceTime(by: .seconds(60))
        #expect(connection.channel.isActive)
        try connection.write(TestMessages.options())
        connection.loop.advanceTime(by: .seconds(60))
        #expect(connection.channel.isActive)
        #expect(connection.log.all.count == 1)
    }

    /// Issue 9: a peer that does not read makes the channel unwritable once
    /// `maximumUnsentBytesPerConnection` wait (the write-buffer water mark); the next send
    /// closes the connection instead of queueing more.
    @Test func sendToAPeerThatDoesNotReadClosesTheConnection() throws {
        let connection = try StreamConnection()
        try connection.write(TestMessages.options())
        let flow = try #require(connection.log.all.first?.flow)
        connection.channel.isWritable = false
        #expect(throws: ChannelError.self) {
            try connection.transport.send(ByteBuffer(string: "SIP/2.0 200 OK\r\n\r\n"), to: flow).wait()
        }
        #expect(!connection.channel.isActive)
        #expect(connection.transport.connectionCount == 0)
    }

    @Test func otherUserEventsPassThrough() throws {
        let connection = try StreamConnection()
        connection.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(connection.channel.isActive)
    }

    // MARK: Answers over the same connection

    @Test func sendToTheDeliveredFlowWritesOnThatConnection() throws {
        let connection = try StreamConnection()
        try connection.write(TestMessages.options())
        let flow = try #require(connection.log.all.first?.flow)
        let reply = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
        try connection.transport.send(ByteBuffer(string: reply), to: flow).wait()
        #expect(try connection.readOutboundText() == reply)

        // Once the connection is gone the flow has no route.
        try connection.channel.close().wait()
        #expect(throws: ChannelError.self) {
            try connection.transport.send(ByteBuffer(string: reply), to: flow).wait()
        }
    }

    // MARK: UDP

    @Test func datagramIsDeliveredAsOneMessageAndKeepAlivesAreDropped() throws {
        let loop = EmbeddedEventLoop()
        let transport = SIPTransport(eventLoop: loop, logger: Self.logger)
        let log = DeliveryLog()
        transport.setMessageHandler { log.record($0, $1, $2) }
        let channel = EmbeddedChannel(handler: SIPDatagramHandler(transport: transport, listenerIndex: 0), loop: loop)

        try channel.writeInbound(AddressedEnvelope(remoteAddress: Self.peer, data: ByteBuffer(string: "\r\n\r\n")))
        try channel.writeInbound(AddressedEnvelope(remoteAddress: Self.peer, data: ByteBuffer(bytes: [0, 1])))
        #expect(log.all.isEmpty)

        let message = TestMessages.options()
        try channel.writeInbound(AddressedEnvelope(remoteAddress: Self.peer, data: ByteBuffer(string: message)))
        let delivery = try #require(log.all.first)
        #expect(log.all.count == 1)
        #expect(delivery.text == message)
        #expect(delivery.framing == .datagram)
        #expect(
            delivery.flow == SIPFlow(transport: .udp, remoteAddress: Self.peer, listenerIndex: 0, connectionID: nil)
        )
    }
}
