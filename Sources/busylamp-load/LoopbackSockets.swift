import NIOCore
import NIOPosix

/// What reads a load's datagrams: a `LoadShard` or a `SoakShard`, confined to its loop.
protocol DatagramReceiver: AnyObject, Sendable {
    func receive(_ envelope: AddressedEnvelope<ByteBuffer>, socket: Int)
    func flush()
}

/// The load's UDP sockets on 127.0.0.1, each handing its datagrams to one receiver.
enum LoopbackSockets {
    /// Binds one socket per port (0: the OS picks), with buffers big enough for a burst.
    static func bind(ports: [Int], on loop: EventLoop, receiver: DatagramReceiver) -> EventLoopFuture<[Channel]> {
        let binds = ports.enumerated().map { index, port in
            DatagramBootstrap(group: loop)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelOption(.socketOption(.so_rcvbuf), value: 8 << 20)
                .channelOption(.socketOption(.so_sndbuf), value: 8 << 20)
                .channelOption(.datagramVectorReadMessageCount, value: 8)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 8 * 8192))
                .channelOption(.maxMessagesPerRead, value: 16)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            DatagramHandler(receiver: receiver, socket: index)
                        )
                    }
                }
                .bind(host: "127.0.0.1", port: port)
        }
        return EventLoopFuture.whenAllSucceed(binds, on: loop)
    }
}

/// Hands one socket's datagrams to its receiver.
final class DatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let receiver: DatagramReceiver
    private let socket: Int

    init(receiver: DatagramReceiver, socket: Int) {
        self.receiver = receiver
        self.socket = socket
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        receiver.receive(unwrapInboundIn(data), socket: socket)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        receiver.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP port unreachable and the like: the flows' timers deal with what was lost.
    }
}

/// A shard's bound sockets: what it writes leaves at the next flush, one flush per socket
/// written to (a batch of sends becomes one sendmmsg).
struct LoopbackSocketSet {
    private(set) var channels: [Channel] = []
    /// `127.0.0.1:PORT` of each socket: the Via sent-by and the Contact of what it sends.
    private(set) var locals: [String] = []
    private var dirty: [Bool] = []

    init() {}

    init(_ channels: [Channel]) {
        self.channels = channels
        self.locals = channels.map { "127.0.0.1:\($0.localAddress?.port ?? 0)" }
        self.dirty = Array(repeating: false, count: channels.count)
    }

    mutating func send(_ buffer: ByteBuffer, socket: Int, to address: SocketAddress) {
        channels[socket].write(AddressedEnvelope(remoteAddress: address, data: buffer), promise: nil)
        dirty[socket] = true
    }

    mutating func flush() {
        for index in dirty.indices where dirty[index] {
            dirty[index] = false
            channels[index].flush()
        }
    }

    func close(on loop: EventLoop) -> EventLoopFuture<Void> {
        EventLoopFuture.andAllComplete(channels.map { $0.close() }, on: loop)
    }
}
