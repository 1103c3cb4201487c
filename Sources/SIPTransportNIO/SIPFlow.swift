import NIOCore

/// Where a message came from and how to answer over the same path: the transport, the peer's
/// address, the local listener it reached, and for stream transports the connection.
///
/// Phones behind NAT can only be reached over the flow they opened (RFC 5626 §3, RFC 3581), so
/// responses, and later NOTIFYs and INVITEs to a registered phone, are sent to a flow.
public struct SIPFlow: Sendable, Hashable, CustomStringConvertible {
    public var transport: SIPTransportKind
    public var remoteAddress: SocketAddress
    /// The listener that received the message (its index in the bound listeners).
    public var listenerIndex: Int
    /// For TCP/TLS: the connection, so that a later request reuses it.
    public var connectionID: ConnectionID?

    public init(
        transport: SIPTransportKind,
        remoteAddress: SocketAddress,
        listenerIndex: Int,
        connectionID: ConnectionID?
    ) {
        self.transport = transport
        self.remoteAddress = remoteAddress
        self.listenerIndex = listenerIndex
        self.connectionID = connectionID
    }

    public var remoteHost: String { remoteAddress.ipAddress ?? "" }
    public var remotePort: Int { remoteAddress.port ?? 0 }

    public var description: String { "\(transport.rawValue):\(remoteAddress)" }
}

/// Identifies one accepted or opened stream connection for as long as the transport lives.
public struct ConnectionID: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "conn-\(rawValue)" }
}

/// A source IP address without its port, as a value that hashes without building a string:
/// what per-source limits count by (the phones of one office share it, each on its own port).
public struct SourceIPAddress: Sendable, Hashable {
    /// The address's 128 bits; an IPv4 address sits where IPv4-mapped IPv6 puts it.
    private let high: UInt64
    private let low: UInt64

    public init(_ address: SocketAddress) {
        switch address {
        case .v4(let v4):
            high = 0
            low = 0xFFFF_0000_0000 | UInt64(UInt32(bigEndian: v4.address.sin_addr.s_addr))
        case .v6(let v6):
            var bytes = v6.address.sin6_addr
            (high, low) = withUnsafeBytes(of: &bytes) { raw in
                (
                    UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                    UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                )
            }
        case .unixDomainSocket:
            (high, low) = (0, 0)
        }
    }
}

extension SIPFlow {
    /// The address per-source limits count this flow's messages by.
    public var sourceIPAddress: SourceIPAddress { SourceIPAddress(remoteAddress) }
}
