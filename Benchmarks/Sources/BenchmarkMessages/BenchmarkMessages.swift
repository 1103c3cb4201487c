/// Realistic phone traffic for the parser benchmarks: what a Yealink or Polycom desk phone sends
/// to a BLF server. Each is 750–900 bytes, CRLF line ends and a correct Content-Length.
public enum BenchmarkMessages {
    /// A re-REGISTER answering a 401, with digest credentials (RFC 3261 §10.2, §22.4).
    public static let register = wire(
        "REGISTER sip:pbx.example.com SIP/2.0",
        [
            "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6;rport",
            "Max-Forwards: 70",
            "Contact: <sip:201@192.0.2.21:5060;transport=udp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-0004f2a1b2c3>\";reg-id=1",
            "To: \"Alice\" <sip:201@pbx.example.com>",
            "From: \"Alice\" <sip:201@pbx.example.com>;tag=1d6a7c0b",
            "Call-ID: 8f3a2b1c4d5e6f7a@192.0.2.21",
            "CSeq: 2 REGISTER",
            "Expires: 3600",
            "Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO, SUBSCRIBE, UPDATE, MESSAGE",
            "Supported: path, gruu, outbound",
            "User-Agent: Yealink SIP-T46U 108.86.0.20",
            "Authorization: Digest username=\"201\",realm=\"pbx.example.com\",nonce=\"64c1b2a3e1f05f2c1a9e0b7d4e3f8a6c\","
                + "uri=\"sip:pbx.example.com\",response=\"b1e4d7a2c3f9e8d7c6b5a4f3e2d1c0b9\",algorithm=MD5,"
                + "cnonce=\"0a4f113b\",qop=auth,nc=00000001",
        ]
    )

    /// A dialog-event SUBSCRIBE for one BLF key, with digest credentials (RFC 6665, RFC 4235).
    public static let subscribe = wire(
        "SUBSCRIBE sip:202@pbx.example.com SIP/2.0",
        [
            "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK-524287-1---77c1d2e3f4a5b6c7;rport",
            "Max-Forwards: 70",
            "Contact: <sip:201@192.0.2.21:5060>",
            "To: <sip:202@pbx.example.com>",
            "From: \"Alice\" <sip:201@pbx.example.com>;tag=4a1b2c3d",
            "Call-ID: blf-202-7f6e5d4c3b2a1908@192.0.2.21",
            "CSeq: 21 SUBSCRIBE",
            "Expires: 1800",
            "Event: dialog",
            "Accept: application/dialog-info+xml",
            "Allow-Events: dialog, presence, message-summary",
            "User-Agent: Polycom/6.4.3.5018 PolycomVVX-VVX_450-UA/6.4.3.5018",
            "Authorization: Digest username=\"201\", realm=\"pbx.example.com\", nonce=\"5f2c1a9e0b7d4e3f8a6c1b2d3e4f5a6b\", "
                + "uri=\"sip:202@pbx.example.com\", response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, "
                + "cnonce=\"0a4f113b\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", qop=auth, nc=00000001",
        ]
    )

    /// An INVITE with an SDP offer (RFC 3264): G.722, PCMU, PCMA and telephone-event.
    public static let invite = wire(
        "INVITE sip:202@pbx.example.com SIP/2.0",
        [
            "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK776asdhds;rport",
            "Max-Forwards: 70",
            "From: \"Alice\" <sip:201@pbx.example.com>;tag=1928301774",
            "To: <sip:202@pbx.example.com>",
            "Call-ID: 3848276298220188511@192.0.2.21",
            "CSeq: 314159 INVITE",
            "Contact: <sip:201@192.0.2.21:5060>",
            "Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, UPDATE",
            "Supported: replaces, timer",
            "User-Agent: Yealink SIP-T46U 108.86.0.20",
            "Content-Type: application/sdp",
        ],
        body: [
            "v=0",
            "o=- 3841234567 3841234567 IN IP4 192.0.2.21",
            "s=SIP Call",
            "c=IN IP4 192.0.2.21",
            "t=0 0",
            "m=audio 12000 RTP/AVP 9 0 8 101",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=ptime:20",
            "a=sendrecv",
        ]
    )

    public static let all: [(name: String, bytes: [UInt8])] = [
        ("REGISTER", register), ("SUBSCRIBE", subscribe), ("INVITE", invite),
    ]

    private static func wire(_ startLine: String, _ headers: [String], body: [String] = []) -> [UInt8] {
        let bodyText = body.isEmpty ? "" : body.joined(separator: "\r\n") + "\r\n"
        var text = startLine + "\r\n"
        for header in headers { text += header + "\r\n" }
        text += "Content-Length: \(bodyText.utf8.count)\r\n\r\n" + bodyText
        return Array(text.utf8)
    }
}
