import NIOCore
import SIPCore

/// Receives UDP datagrams for one listener and hands each to the transport as one message
/// (RFC 3261 §18.3: a datagram is a message; no framing is needed).
final class SIPDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let transport: SIPTransport
    private let listenerIndex: Int

    init(transport: SIPTransport, listenerIndex: Int) {
        self.transport = transport
        self.listenerIndex = listenerIndex
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        var buffer = envelope.data
        // RFC 5626 §4.4.2 STUN keep-alives and bare CRLF pings over UDP are not SIP: drop quietly.
        guard buffer.readableBytes > 4 else {
            transport.countDrop(.keepAliveDatagram)
            return
        }
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        let flow = SIPFlow(
            transport: .udp,
            remoteAddress: envelope.remoteAddress,
            listenerIndex: listenerIndex,
            connectionID: nil
        )
        transport.deliver(bytes: bytes, framing: .datagram, flow: flow)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP port unreachable and the like surface here: the socket stays open.
        transport.countDrop(.socketError)
    }
}

/// One accepted TCP connection: cuts the stream into messages, answers RFC 5626 keep-alive
/// pings, and closes the connection when it is idle or the peer breaks framing.
final class SIPStreamHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Settings {
        var limits: SIPParserLimits
        /// How long a begun message may take to arrive whole.
        var messageTimeout: TimeAmount
    }

    private let transport: SIPTransport
    private let listenerIndex: Int
    private let transportKind: SIPTransportKind
    private let messageTimeout: TimeAmount
    private var framer: SIPStreamFramer
    private var connectionID: ConnectionID?
    private var remoteAddress: SocketAddress?
    /// Armed while the framer holds part of a message; it closes a peer that never finishes.
    private var partialMessageDeadline: Scheduled<Void>?

    init(transport: SIPTransport, listenerIndex: Int, transportKind: SIPTransportKind, settings: Settings) {
        self.transport = transport
        self.listenerIndex = listenerIndex
        self.transportKind = transportKind
        self.messageTimeout = settings.messageTimeout
        self.framer = SIPStreamFramer(limits: settings.limits)
    }

    func channelActive(context: ChannelHandlerContext) {
        remoteAddress = context.channel.remoteAddress
        connectionID = transport.register(connection: context.channel)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partialMessageDeadline?.cancel()
        partialMessageDeadline = nil
        if let connectionID { transport.unregister(connection: connectionID) }
        context.fireChannelInactive()
    }

    /// Arms the deadline when a message has begun and not ended, disarms it when none has. The deadline runs from the first byte of the message, not the last: a peer
    /// sending a byte a minute must not keep it alive.
    private func updatePartialMessageDeadline(channel: Channel) {
        if !framer.holdsPartialMessage {
            partialMessageDeadline?.cancel()
            partialMessageDeadline = nil
        } else if partialMessageDeadline == nil {
            let transport = transport
            partialMessageDeadline = channel.eventLoop.scheduleTask(in: messageTimeout) {
                transport.countDrop(.slowMessage)
                channel.close(promise: nil)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        // The peer's address is read when the connection becomes active; a socket whose peer
        // address cannot be read cannot be answered, and must not buffer bytes until it idles out.
        guard let remoteAddress = remoteAddress ?? context.channel.remoteAddress else {
            transport.countDrop(.socketError)
            context.close(promise: nil)
            return
        }
        self.remoteAddress = remoteAddress
        framer.append(buffer.readableBytesView)
        let flow = SIPFlow(
            transport: transportKind,
            remoteAddress: remoteAddress,
            listenerIndex: listenerIndex,
            connectionID: connectionID
        )
        do {
            while let frame = try framer.next() {
                switch frame {
                case .keepAlivePing:
                    // RFC 5626 §4.4.1: answer a double-CRLF ping with a single CRLF pong.
                    var pong = context.channel.allocator.buffer(capacity: 2)
                    pong.writeStaticString("\r\n")
                    context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
                case .message(let bytes):
                    transport.deliver(bytes: bytes, framing: .stream, flow: flow)
                    // The next message, if begun, gets a deadline of its own.
                    partialMessageDeadline?.cancel()
                    partialMessageDeadline = nil
                }
            }
            updatePartialMessageDeadline(channel: context.channel)
        } catch {
            // The stream cannot be resynchronised after a framing error (RFC 3261 §18.3): close
            // it, after the 400 that names a bad Content-Length when the request is readable.
            transport.countDrop(error == .messageTooLarge ? .oversizedStream : .badStreamFraming)
            guard error == .badContentLength,
                let refusal = refusal(ofUnframed: framer, allocator: context.channel.allocator)
            else { return context.close(promise: nil) }
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(refusal)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// The 400 for a message whose Content-Length cannot frame it, from its header section
    /// (`nil` when the header section names no transaction to answer, or is a response).
    private func refusal(ofUnframed framer: SIPStreamFramer, allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard let head = framer.headerSectionOfUnframedMessage() else { return nil }
        do {
            _ = try SIPParser(limits: framer.limits).parse(head, framing: .stream)
            return nil  // it parses after all: nothing to name, only close
        } catch {
            guard let response = error.makeResponse(toTag: String(UInt64.random(in: .min ... .max), radix: 16))
            else { return nil }
            var buffer = allocator.buffer(capacity: 512)
            SIPMessage.response(response).serialize(into: &buffer)
            return buffer
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            // Idle or half-open (a peer that sent half a message and waits): close it.
            transport.countDrop(.idleConnection)
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
