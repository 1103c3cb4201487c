/// Where a message came from (or goes to): the transport, the peer's address, and for a stream
/// transport the connection it travels on.
///
/// The transport target's own flow type carries socket addresses; this is the small value the
/// transaction layer needs to decide reliability and response addressing without importing NIO.
public struct SIPPeer: Sendable, Hashable, CustomStringConvertible {
    public enum Transport: String, Sendable, Hashable {
        case udp, tcp, tls

        /// RFC 3261 §18: TCP and TLS are reliable; UDP is not.
        public var reliability: TransportReliability { self == .udp ? .unreliable : .reliable }

        /// The Via `transport` token (RFC 3261 §20.42).
        public var viaToken: String { rawValue.uppercased() }
    }

    public var transport: Transport
    /// Which of our listeners the peer reached (the transport numbers them): a request to it
    /// leaves from that socket, the only one its NAT lets back in. `nil`: the transport's first.
    public var listener: UInt16?
    /// An IP address, without IPv6 brackets.
    public var host: String
    public var port: Int
    /// For TCP and TLS: the connection the message travelled on, as the transport numbers them.
    public var connectionID: UInt64?

    public init(transport: Transport, host: String, port: Int, connectionID: UInt64? = nil, listener: UInt16? = nil) {
        self.transport = transport
        self.listener = listener
        self.host = host
        self.port = port
        self.connectionID = connectionID
    }

    public var reliability: TransportReliability { transport.reliability }

    public var description: String {
        let hostPart = host.contains(":") ? "[\(host)]" : host
        var out = "\(transport.rawValue):\(hostPart):\(port)"
        if let connectionID { out += "#\(connectionID)" }
        return out
    }
}
