import SIPCore

/// Where a response to a request received from a peer must go (RFC 3261 §18.2.2 with RFC 3581's
/// `rport`), so that phones behind NAT are answered on the address and port they sent from.
///
/// It promises: on a reliable transport, the connection the request came on; on UDP, `maddr`
/// if the top Via names one, else the `received` address (or the source address) with the
/// `rport` value (or the source port) when the client asked for `rport`, else the sent-by port
/// (default 5060).
public enum ResponseDestination: Sendable, Hashable {
    /// RFC 3261 §18.2.2: "If the 'sent-protocol' is a reliable transport protocol such as TCP or
    /// SCTP, or TLS over those, the response MUST be sent using the existing connection to the
    /// source of the original request that created the transaction, if that connection is still
    /// open." `fallback` is where to open a new connection if it is not (received address and
    /// sent-by port: "the server SHOULD open a connection to the IP address in the 'received'
    /// parameter, if present, using the port in the 'sent-by' value").
    case sameConnection(connectionID: UInt64, fallback: SIPPeer)
    /// Send over the given transport to this address.
    case address(SIPPeer)

    /// RFC 3261 §18.2.2: the port a sent-by without one stands for.
    public static let defaultSIPPort = 5060
    /// RFC 3261 §26.2: the default port of `sips` (TLS).
    public static let defaultSIPSPort = 5061

    /// The destination of a response to `request`, which arrived from `peer`. The top Via is
    /// read as stamped by `SIPRequest.stampReceived(from:)` (RFC 3261 §18.2.1); an unstamped
    /// Via works too, since the source address stands in for `received`.
    public init?(respondingTo request: SIPRequest, from peer: SIPPeer) {
        guard let via = request.topVia else { return nil }
        self.init(topVia: via, from: peer)
    }

    /// The destination for a response whose top Via is `via`, the request having come from `peer`.
    public init(topVia via: Via, from peer: SIPPeer) {
        let defaultPort =
            peer.transport == .tls ? ResponseDestination.defaultSIPSPort : ResponseDestination.defaultSIPPort
        let sentByPort = via.port ?? defaultPort
        // The address to answer at: `received` if the request was stamped, else the source. If
        // the two differ the Via was stamped for a different hop; `received` is what §18.2.2 names.
        let receivedHost = via.received ?? peer.host
        if peer.reliability.isReliable {
            let fallback = SIPPeer(
                transport: peer.transport,
                host: receivedHost,
                port: sentByPort,
                listener: peer.listener
            )
            if let connectionID = peer.connectionID {
                self = .sameConnection(connectionID: connectionID, fallback: fallback)
            } else {
                self = .address(fallback)
            }
            return
        }
        // > Otherwise, if the Via header field value contains a "maddr" parameter, the response
        // > MUST be forwarded to the address listed there, using the port indicated in "sent-by",
        // > or port 5060 if none is present.
        if let maddr = via.parameters.unquotedValue("maddr"), !maddr.isEmpty {
            self = .address(
                SIPPeer(
                    transport: peer.transport,
                    host: ResponseDestination.stripBrackets(maddr),
                    port: sentByPort,
                    listener: peer.listener
                )
            )
            return
        }
        // RFC 3581 §4: "When a server attempts to send a response, it examines the topmost Via
        // header field value of that response. If the 'sent-protocol' component indicates an
        // unreliable unicast transport protocol, such as UDP, and there is no 'maddr' parameter,
        // but there is both a 'received' parameter and an 'rport' parameter, the response MUST
        // be sent to the IP address listed in the 'received' parameter, and the port in the
        // 'rport' parameter."
        if via.hasRport {
            self = .address(
                SIPPeer(
                    transport: peer.transport,
                    host: receivedHost,
                    port: via.rport ?? peer.port,
                    listener: peer.listener
                )
            )
            return
        }
        // > Otherwise (for unreliable unicast transports), if the top Via has a "received"
        // > parameter, the response MUST be sent to the address in the "received" parameter,
        // > using the port indicated in the "sent-by" value, or using port 5060 if none is
        // > specified explicitly.
        self = .address(
            SIPPeer(transport: peer.transport, host: receivedHost, port: sentByPort, listener: peer.listener)
        )
    }

    static func stripBrackets(_ host: String) -> String {
        if host.hasPrefix("["), host.hasSuffix("]") { return String(host.dropFirst().dropLast()) }
        return host
    }
}

extension SIPRequest {
    /// Stamps the top Via of a request received from `peer` as the server transport must.
    ///
    /// RFC 3261 §18.2.1: "When the server transport receives a request over any transport, it
    /// MUST examine the value of the 'sent-by' parameter in the top Via header field value. If
    /// the host portion of the 'sent-by' parameter contains a domain name, or if it contains an
    /// IP address that differs from the packet source address, the server MUST add a 'received'
    /// parameter to that Via header field value."
    ///
    /// RFC 3581 §4: "When a server compliant to this specification (which can be a proxy or UAS)
    /// receives a request, it examines the topmost Via header field value. If this Via header
    /// field value contains an 'rport' parameter with no value, it MUST set the value of the
    /// parameter to the source port of the request. [...] the server MUST add a 'received'
    /// parameter [...] even if it is identical to the value of the 'sent-by' component."
    ///
    /// Only the top Via element changes; the others stay as written. A `received` or `rport`
    /// value the request arrived with is overwritten with the truth: only the receiving hop
    /// writes them, so one in the top Via was forged by the sender (issue 9), which would
    /// otherwise aim our responses at any address it likes.
    public mutating func stampReceived(from peer: SIPPeer) {
        guard var via = topVia else { return }
        var changed = false
        let sentByHost = ResponseDestination.stripBrackets(via.host)
        if via.hasRport, via.rport != peer.port {
            via.parameters.set("rport", String(peer.port))
            changed = true
        }
        let needsReceived = via.hasRport || !SIPRequest.sameAddress(sentByHost, peer.host) || via.received != nil
        if needsReceived, via.received != peer.host {
            via.parameters.set("received", peer.host)
            changed = true
        }
        guard changed else { return }
        headers.removeFirstElement(.via)
        headers.prepend(.via, via.description)
    }

    /// Whether a sent-by host is the IP address `source` (a domain name never is).
    static func sameAddress(_ host: String, _ source: String) -> Bool {
        host.caseInsensitiveEquals(source)
    }
}
