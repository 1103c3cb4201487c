/// The transports BusyLamp speaks. TLS (RFC 3261 §26.2) is a TCP stream behind a TLS handler;
/// its listeners need a ``SIPTLSCertificate``.
public enum SIPTransportKind: String, Sendable, Hashable, CaseIterable {
    case udp
    case tcp
    case tls

    /// RFC 3261 §18: stream transports frame by Content-Length and need no retransmissions.
    public var isReliable: Bool { self != .udp }

    /// The transport token of a Via header (`SIP/2.0/UDP`).
    public var viaToken: String { rawValue.uppercased() }
}

/// A `--sip` option value: `udp:HOST:PORT`, `tcp:HOST:PORT`, `tls:HOST:PORT` (INTERFACE.md).
/// IPv6 hosts are written in brackets: `udp:[::1]:5060`.
public struct SIPListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var transport: SIPTransportKind
    public var host: String
    public var port: Int

    public init(transport: SIPTransportKind, host: String, port: Int) {
        self.transport = transport
        self.host = host
        self.port = port
    }

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let transport = SIPTransportKind(rawValue: parts[0].lowercased()) else {
            throw ParseError(description: "--sip \(text): expected udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT")
        }
        let hostPort = parts[1]
        guard let colon = hostPort.lastIndex(of: ":") else {
            throw ParseError(description: "--sip \(text): missing port")
        }
        var host = String(hostPort[..<colon])
        let portText = hostPort[hostPort.index(after: colon)...]
        // An IPv6 address must be bracketed, or `udp:::1:5060` could be read two ways; brackets
        // are only for IPv6.
        if host.hasPrefix("["), host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            guard host.contains(":") else { throw ParseError(description: "--sip \(text): bad host or port") }
        } else if host.contains(where: { $0 == ":" || $0 == "[" || $0 == "]" }) {
            throw ParseError(description: "--sip \(text): write an IPv6 host in brackets, as in udp:[::1]:5060")
        }
        guard !host.isEmpty, !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
            let port = Int(portText), (0...65535).contains(port)
        else {
            throw ParseError(description: "--sip \(text): bad host or port")
        }
        self.init(transport: transport, host: host, port: port)
    }

    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(transport.rawValue):\(shownHost):\(port)"
    }

    /// INTERFACE.md's defaults: UDP and TCP on port 5060 of every address.
    public static let defaults = [
        SIPListenAddress(transport: .udp, host: "0.0.0.0", port: 5060),
        SIPListenAddress(transport: .tcp, host: "0.0.0.0", port: 5060),
    ]
}
