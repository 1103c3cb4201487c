import Logging
import Metrics
import NIOCore
import NIOPosix
import NIOSSL
import SIPCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The SIP listeners and connections of one server, confined to one event loop.
///
/// It moves bytes only: every received message is handed to `onMessage` with its `SIPFlow`,
/// and `send(_:to:)` writes bytes back over a flow. Parsing, transactions and everything above
/// live in the sans-I/O layers.
public final class SIPTransport: @unchecked Sendable {
    // @unchecked: every mutable field is touched only on `eventLoop` (checked in debug builds).

    public struct Configuration: Sendable {
        /// RFC 5626 §4.4.1 suggests keep-alives every 95–120 s; a connection silent for longer
        /// than this, or left with half a message, is closed.
        public var streamIdleTimeout: TimeAmount = .seconds(180)
        /// A message begun on a connection must be complete within this (issue 9): a peer that
        /// trickles a byte now and then (slowloris) never idles out, and holds its buffer and
        /// descriptor; 64×T1 is longer than any real phone takes to send 64 KB.
        public var streamMessageTimeout: TimeAmount = .seconds(32)
        /// Bytes written to one connection and not yet taken by the peer: past this the peer is
        /// not reading (or is gone without a FIN) and the connection is closed, so a stalled
        /// watcher cannot make NOTIFYs pile up in memory. A NOTIFY is under 2 KB.
        public var maximumUnsentBytesPerConnection: Int = 1 << 20
        /// Accepted connections at once; more are refused (a flood must not exhaust descriptors).
        public var maximumConnections: Int = 20_000
        /// Accepted connections from one IP address at once (issue 9): one host cannot take
        /// every descriptor, while an office behind one NAT (a connection per phone) still fits.
        public var maximumConnectionsPerSource: Int = 256
        /// Where they are counted: one counter for every transport given copies of this
        /// configuration (every shard of a server), so the limit holds for the server.
        public var sourceConnections = SourceConnectionCounter()
        /// What every `tls:` listener presents; a TLS listener cannot start without it.
        public var tlsCertificate: SIPTLSCertificate?
        public var parserLimits: SIPParserLimits = .default
        /// Several shards' sockets share each port (`SO_REUSEPORT`): set on every shard's
        /// transport when there is more than one.
        public var sharesPorts = false
        public init() {}
    }

    /// Why bytes were dropped without an answer; each is counted in
    /// `busylamp_sip_dropped_total{reason}`.
    public enum DropReason: String, Sendable, CaseIterable {
        case keepAliveDatagram = "keepalive_datagram"
        case socketError = "socket_error"
        case oversizedStream = "oversized_stream"
        case badStreamFraming = "bad_stream_framing"
        case idleConnection = "idle_connection"
        case slowMessage = "slow_message"
        case unreadConnection = "unread_connection"
        case tooManyConnections = "too_many_connections"
        case tooManyConnectionsFromSource = "too_many_connections_from_source"
        case unparseable
        case noRoute = "no_route"
        /// A request past its source address's rate (dropped by the shard, before parsing).
        case sourceRateLimit = "source_rate_limit"
    }

    /// A bound listener and the address the OS gave it (port 0 becomes a real port).
    public struct BoundListener: Sendable {
        public var transport: SIPTransportKind
        public var localAddress: SocketAddress
    }

    public typealias MessageHandler = @Sendable (_ bytes: [UInt8], _ framing: SIPFraming, _ flow: SIPFlow) -> Void

    public let eventLoop: EventLoop
    private let configuration: Configuration
    private let logger: Logger
    private var onMessage: MessageHandler?
    private var listenerChannels: [Channel] = []
    /// UDP listeners written to since the last flush (``flushLater(listener:)``).
    private var listenersAwaitingFlush: [Int] = []
    private var flushScheduled = false
    public private(set) var listeners: [BoundListener] = []
    private var connections: [ConnectionID: Channel] = [:]
    /// Connections we opened ourselves (to a trunk), by the address they go to.
    private var outboundConnections: [SocketAddress: OutboundConnection] = [:]

    private enum OutboundConnection {
        case connecting(EventLoopFuture<ConnectionID>)
        case connected(ConnectionID)
    }
    /// Connection ids are persisted with registrations; starting each process at a random
    /// point keeps an id from a previous run from naming a new, unrelated connection.
    private var nextConnectionID: UInt64
    private static let shardShift: UInt64 = 56

    /// `SO_REUSEPORT`, which NIO names no shorthand for.
    private static var reusePort: ChannelOptions.Types.SocketOption {
        ChannelOptions.Types.SocketOption(level: .socket, name: .init(rawValue: SO_REUSEPORT))
    }

    /// The shard whose transport accepted or opened the connection.
    public static func shardIndex(of connectionID: ConnectionID) -> Int {
        Int(connectionID.rawValue >> shardShift)
    }

    /// One counter per drop reason, made once (not one per drop).
    private let dropCounters: [DropReason: Counter] = Dictionary(
        uniqueKeysWithValues: DropReason.allCases.map {
            ($0, Counter(label: "busylamp_sip_dropped_total", dimensions: [("reason", $0.rawValue)]))
        }
    )

    /// `shardIndex`: which of the server's shards this transport belongs to; it is written into
    /// every connection ID (``shardIndex(of:)``), so that any shard can find a connection's owner.
    public init(
        eventLoop: EventLoop,
        configuration: Configuration = Configuration(),
        shardIndex: Int = 0,
        logger: Logger
    ) {
        self.eventLoop = eventLoop
        self.nextConnectionID = UInt64(shardIndex & 0xFF) << Self.shardShift | UInt64.random(in: 1...(1 << 40))
        self.configuration = configuration
        self.logger = logger
    }

    /// Sets the receiver of every message. Call before `bind`.
    public func setMessageHandler(_ handler: @escaping MessageHandler) {
        onMessage = handler
    }

    /// Binds every address in order; their indices are the flows' `listenerIndex`.
    ///
    /// With ``Configuration/sharesPorts``, the first shard (`joiningShards == false`) first
    /// checks that nobody holds the port: the kernel lets any socket that also asks for
    /// `SO_REUSEPORT` join, and a second server started by mistake would silently take half of
    /// the traffic.
    public func bind(_ addresses: [SIPListenAddress], joiningShards: Bool = false) async throws -> [BoundListener] {
        if configuration.sharesPorts && !joiningShards {
            for address in addresses where address.port != 0 { try await checkPortIsFree(address) }
        }
        let firstIndex = try await eventLoop.submit { self.listenerChannels.count }.get()
        for (offset, address) in addresses.enumerated() {
            let index = firstIndex + offset
            let channel: Channel
            switch address.transport {
            case .udp:
                channel = try await DatagramBootstrap(group: eventLoop)
                    .channelOption(.socketOption(.so_reuseaddr), value: 1)
                    // Every shard binds its own socket to the same port; the kernel spreads
                    // datagrams over them by the sender's address.
                    .channelOption(Self.reusePort, value: configuration.sharesPorts ? 1 : 0)
                    .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
                    .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
                    // Drain a burst of answers (a NOTIFY fan-out's 200s) in one turn of the loop
                    // rather than four datagrams at a time (NIO's default).
                    .channelOption(.maxMessagesPerRead, value: 128)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(
                                SIPDatagramHandler(transport: self, listenerIndex: index)
                            )
                        }
                    }
                    .bind(host: address.host, port: address.port).get()
            case .tcp, .tls:
                // TLS is the same stream behind a TLS handler: framing, keep-alives, limits and
                // timeouts are those of TCP.
                let tlsCertificate = address.transport == .tls ? configuration.tlsCertificate : nil
                if address.transport == .tls, tlsCertificate == nil {
                    throw SIPTLSError(code: .notConfigured, place: "--sip \(address)")
                }
                let idleTimeout = configuration.streamIdleTimeout
                let streamSettings = streamSettings
                let transportKind = address.transport
                channel = try await ServerBootstrap(group: eventLoop)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .serverChannelOption(Self.reusePort, value: configuration.sharesPorts ? 1 : 0)
                    .serverChannelOption(.backlog, value: 1024)
                    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                    .childChannelOption(.writeBufferWaterMark, value: unsentBytesWaterMark)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            guard self.connections.count < self.configuration.maximumConnections else {
                                self.countDrop(.tooManyConnections)
                                throw ChannelError.inappropriateOperationForState
                            }
                            try self.admitFromSource(channel)
                            if let tlsCertificate {
                                // The context current now: a reload affects later connections only.
                                try channel.pipeline.syncOperations.addHandler(
                                    NIOSSLServerHandler(context: tlsCertificate.serverContext)
                                )
                            }
                            // Behind the TLS handler the idle timer sees decrypted reads only, so
                            // a peer that never finishes its handshake idles out like a silent one.
                            try channel.pipeline.syncOperations.addHandlers([
                                IdleStateHandler(readTimeout: idleTimeout),
                                SIPStreamHandler(
                                    transport: self,
                                    listenerIndex: index,
                                    transportKind: transportKind,
                                    settings: streamSettings
                                ),
                            ])
                        }
                    }
                    .bind(host: address.host, port: address.port).get()
            }
            let bound = BoundListener(transport: address.transport, localAddress: channel.localAddress!)
            // The listener list is read by `send` on the event loop: change it only there.
            try await eventLoop.submit {
                self.listenerChannels.append(channel)
                self.listeners.append(bound)
            }.get()
        }
        return try await eventLoop.submit { self.listeners }.get()
    }

    /// Writes one serialized message over `flow`: the same connection for stream flows, the
    /// receiving listener's socket for UDP. Fails when a stream connection is gone.
    /// Binds and closes a plain socket (no `SO_REUSEPORT`) on `address`: it fails when any
    /// socket holds the port.
    private func checkPortIsFree(_ address: SIPListenAddress) async throws {
        let probe: Channel
        switch address.transport {
        case .udp:
            probe = try await DatagramBootstrap(group: eventLoop).bind(host: address.host, port: address.port).get()
        case .tcp, .tls:
            probe = try await ServerBootstrap(group: eventLoop)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: address.host, port: address.port).get()
        }
        try await probe.close()
    }

    public func send(_ buffer: ByteBuffer, to flow: SIPFlow) -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        switch flow.transport {
        case .udp:
            guard flow.listenerIndex < listenerChannels.count else {
                return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
            }
            let envelope = AddressedEnvelope(remoteAddress: flow.remoteAddress, data: buffer)
            let promise = eventLoop.makePromise(of: Void.self)
            listenerChannels[flow.listenerIndex].write(envelope, promise: promise)
            flushLater(listener: flow.listenerIndex)
            return promise.futureResult
        case .tls:
            // Phones connect to us (RFC 5626) and trunks are reached over UDP or TCP: we open no
            // TLS connection of our own, so a TLS flow without its connection has no route.
            guard let connectionID = flow.connectionID else {
                countDrop(.noRoute)
                return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
            }
            return write(buffer, over: connectionID)
        case .tcp:
            guard let connectionID = flow.connectionID else {
                // A destination of our choosing (a trunk): open a connection, or reuse ours.
                return outboundConnection(to: flow.remoteAddress, listenerIndex: flow.listenerIndex)
                    .flatMap { id in self.write(buffer, over: id) }
            }
            return write(buffer, over: connectionID)
        }
    }

    private func write(_ buffer: ByteBuffer, over connectionID: ConnectionID) -> EventLoopFuture<Void> {
        guard let channel = connections[connectionID] else {
            countDrop(.noRoute)
            return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        // Not writable: more than maximumUnsentBytesPerConnection wait for a peer that does
        // not read. Closing it ends its subscriptions' NOTIFYs like any lost connection.
        guard channel.isWritable else {
            countDrop(.unreadConnection)
            logger.notice(
                "closing a connection whose peer does not read",
                metadata: ["sip.peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")"]
            )
            channel.close(promise: nil)
            return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        return channel.writeAndFlush(buffer)
    }

    /// What every stream handler of this transport is given.
    private var streamSettings: SIPStreamHandler.Settings {
        SIPStreamHandler.Settings(
            limits: configuration.parserLimits,
            messageTimeout: configuration.streamMessageTimeout
        )
    }

    private var unsentBytesWaterMark: ChannelOptions.Types.WriteBufferWaterMark {
        let high = max(configuration.maximumUnsentBytesPerConnection, 1)
        return .init(low: high / 2, high: high)
    }

    /// Our own TCP connection to `address`, opened on first use and reused while it lives.
    /// Messages arriving on it are delivered like those of accepted connections.
    ///
    /// We never open connections towards phones (they connect to us, RFC 5626); this is for
    /// trunks, which listen, over TCP (a trunk over TLS is not offered).
    private func outboundConnection(to address: SocketAddress, listenerIndex: Int) -> EventLoopFuture<ConnectionID> {
        switch outboundConnections[address] {
        case .connected(let id) where connections[id] != nil:
            return eventLoop.makeSucceededFuture(id)
        case .connecting(let future):
            return future
        case .connected, nil:
            break
        }
        let idleTimeout = configuration.streamIdleTimeout
        let streamSettings = streamSettings
        let future = ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: unsentBytesWaterMark)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(readTimeout: idleTimeout),
                        SIPStreamHandler(
                            transport: self,
                            listenerIndex: listenerIndex,
                            transportKind: .tcp,
                            settings: streamSettings
                        ),
                    ])
                }
            }
            .connect(to: address)
            .flatMap { channel in
                // The connect promise completes just before `channelActive` registers the
                // connection: look it up on the next turn of the loop.
                self.eventLoop.submit { () throws -> ConnectionID in
                    guard let id = self.connections.first(where: { $0.value === channel })?.key else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    return id
                }
            }
        outboundConnections[address] = .connecting(future)
        future.whenComplete { result in
            switch result {
            case .success(let id): self.outboundConnections[address] = .connected(id)
            case .failure:
                self.outboundConnections[address] = nil
                self.countDrop(.noRoute)
            }
        }
        return future
    }

    /// Whether a stream connection is still open (a phone registered over TCP can be reached).
    public func isConnected(_ connectionID: ConnectionID) -> Bool {
        eventLoop.preconditionInEventLoop()
        return connections[connectionID] != nil
    }

    public var connectionCount: Int {
        eventLoop.preconditionInEventLoop()
        return connections.count
    }

    /// Closes every listener and connection.
    public func close() async {
        let channels: [Channel] = try! await eventLoop.submit { self.listenerChannels + Array(self.connections.values) }
            .get()
        for channel in channels {
            try? await channel.close()
        }
    }

    // MARK: Called by the handlers, on the event loop

    /// Datagrams written in one turn of the loop leave together, in one `sendmmsg` per socket:
    /// the answers to a burst of reads, a chunk of NOTIFYs. The flush runs as a task, and NIO
    /// runs tasks after the turn's reads (and tasks queued by tasks in the same turn), so a
    /// datagram waits for nothing but the rest of its turn's work.
    private func flushLater(listener index: Int) {
        if !listenersAwaitingFlush.contains(index) { listenersAwaitingFlush.append(index) }
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.execute { [self] in
            flushScheduled = false
            let listeners = listenersAwaitingFlush
            listenersAwaitingFlush.removeAll(keepingCapacity: true)
            for index in listeners where index < listenerChannels.count { listenerChannels[index].flush() }
        }
    }

    func deliver(bytes: [UInt8], framing: SIPFraming, flow: SIPFlow) {
        onMessage?(bytes, framing, flow)
    }

    /// Counts an accepted connection against its source address until it closes; throws (the
    /// connection is closed at once) past ``Configuration/maximumConnectionsPerSource``.
    private func admitFromSource(_ channel: Channel) throws {
        let source = channel.remoteAddress?.ipAddress ?? "?"
        let counter = configuration.sourceConnections
        guard counter.admit(source, limit: configuration.maximumConnectionsPerSource) else {
            countDrop(.tooManyConnectionsFromSource)
            throw ChannelError.inappropriateOperationForState
        }
        channel.closeFuture.whenComplete { _ in counter.release(source) }
    }

    func register(connection channel: Channel) -> ConnectionID {
        let id = ConnectionID(nextConnectionID)
        nextConnectionID += 1
        connections[id] = channel
        return id
    }

    func unregister(connection id: ConnectionID) {
        connections[id] = nil
    }

    public func countDrop(_ reason: DropReason) {
        dropCounters[reason]?.increment()
    }
}

/// Open accepted TCP connections per source IP address, shared by the transports of every
/// shard (accepts are rare: a lock is no cost on the hot path).
public final class SourceConnectionCounter: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    public init() {}

    /// Takes a place for `source` when it holds fewer than `limit`.
    func admit(_ source: String, limit: Int) -> Bool {
        counts.withLock { counts in
            let open = counts[source, default: 0]
            guard open < limit else { return false }
            counts[source] = open + 1
            return true
        }
    }

    func release(_ source: String) {
        counts.withLock { counts in
            let remaining = (counts[source] ?? 1) - 1
            counts[source] = remaining > 0 ? remaining : nil
        }
    }

    /// Connections open from `source` now.
    public func count(of source: String) -> Int { counts.withLock { $0[source, default: 0] } }
}
