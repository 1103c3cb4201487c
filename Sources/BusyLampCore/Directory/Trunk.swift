import SIPTransactions

/// A trusted peer (a carrier's SBC or a PBX): requests from its address are the trunk's and
/// are not challenged.
public struct Trunk: Sendable, Hashable {
    public enum Transport: String, Sendable, Hashable, CaseIterable {
        case udp, tcp
    }

    public var name: String
    /// An IP address or host name, without IPv6 brackets.
    public var host: String
    public var port: Int
    public var transport: Transport

    public init(name: String, host: String, port: Int, transport: Transport) {
        self.name = name
        self.host = host
        self.port = port
        self.transport = transport
    }

    /// `host:port`, with brackets around an IPv6 host, as written in the directory file.
    public var address: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Whether a message from `peer` comes from this trunk.
    ///
    /// Over UDP the source port is the trunk's own; over TCP the peer connects from an
    /// ephemeral port, so only the host and transport are compared.
    public func matches(_ peer: SIPPeer) -> Bool {
        guard peer.host == host, peer.transport.rawValue == transport.rawValue else { return false }
        return transport == .tcp || peer.port == port
    }
}
