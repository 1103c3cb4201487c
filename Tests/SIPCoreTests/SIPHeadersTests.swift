import NIOCore
import SIPCore
import Testing

/// A SUBSCRIBE as a Yealink sends it after a digest challenge: the benchmark's message.
private let subscribe = Array(
    ("SUBSCRIBE sip:202@sip.busylamp.test SIP/2.0\r\n"
        + "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK776asdhds;rport\r\n"
        + "Max-Forwards: 70\r\n"
        + "From: \"Alice\" <sip:201@sip.busylamp.test>;tag=1928301774\r\n"
        + "To: <sip:202@sip.busylamp.test>\r\n"
        + "Call-ID: a84b4c76e66710@10.0.0.5\r\n"
        + "CSeq: 314159 SUBSCRIBE\r\n"
        + "Contact: <sip:201@10.0.0.5:5062;transport=udp>\r\n"
        + "Authorization: Digest username=\"201\", realm=\"sip.busylamp.test\", nonce=\"5f3c8a9e\", "
        + "uri=\"sip:202@sip.busylamp.test\", response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, "
        + "cnonce=\"0a4f113b\", qop=auth, nc=00000001\r\n"
        + "Event: dialog\r\n"
        + "Accept: application/dialog-info+xml\r\n"
        + "Expires: 3600\r\n"
        + "User-Agent: Yealink SIP-T46U 108.86.0.20\r\n"
        + "Allow-Events: dialog, presence\r\n"
        + "Content-Length: 0\r\n\r\n").utf8
)

private func parsedRequest(_ bytes: [UInt8]) throws -> SIPRequest {
    guard case .request(let request) = try SIPParser().parse(bytes) else {
        Issue.record("not a request")
        throw SIPParseError(.badStartLine, "not a request")
    }
    return request
}

@Suite(.timeLimit(.minutes(1))) struct SIPHeadersTests {
    @Test func parsedHeadersEqualAndHashLikeBuiltOnes() throws {
        let parsed = try parsedRequest(subscribe).headers
        let built = SIPHeaders(parsed.fields.map { ($0.name, $0.value) })
        #expect(parsed == built)
        #expect(parsed.hashValue == built.hashValue)
        #expect(parsed.count == 14)
        var changed = built
        changed.set(.expires, "60")
        #expect(parsed != changed)
    }

    @Test func typedAccessorsReadTheParsedBytes() throws {
        let request = try parsedRequest(subscribe)
        #expect(request.method == .subscribe)
        #expect(request.uri.user == "202" && request.uri.host == "sip.busylamp.test")
        #expect(request.callID == "a84b4c76e66710@10.0.0.5")
        #expect(request.cseq == CSeq(number: 314_159, method: .subscribe))
        #expect(request.from?.displayName == "Alice" && request.from?.tag == "1928301774")
        #expect(request.to?.uri.user == "202" && request.to?.tag == nil)
        #expect(request.topVia?.branch == "z9hG4bK776asdhds" && request.topVia?.port == 5062)
        #expect(request.vias.count == 1)
        #expect(request.contacts?.count == 1)
        #expect(request.expires == 3600 && request.maxForwards == 70 && request.contentType == nil)
        #expect(request.headers[.authorization]?.hasPrefix("Digest username=\"201\"") == true)
        #expect(request.headers.listElements(.allowEvents) == ["dialog", "presence"])
    }

    @Test(arguments: [
        ("VIA", SIPHeaderName.via), ("v", .via), ("call-id", .callID), ("I", .callID), ("cseq", .cseq),
        ("max-forwards", .maxForwards), ("WWW-AUTHENTICATE", .wwwAuthenticate), ("l", .contentLength),
        ("subscription-state", .subscriptionState), ("Proxy-Authorization", .proxyAuthorization),
        ("o", .event), ("u", .allowEvents), ("k", .supported), ("m", .contact), ("to", .to), ("T", .to),
    ])
    func namesInAnyCaseAndCompactFormsAreTheKnownNames(_ spelling: String, _ name: SIPHeaderName) {
        #expect(SIPHeaderName(spelling) == name)
        #expect(SIPHeaderName(spelling).hashValue == name.hashValue)
        #expect(SIPHeaderName(spelling).canonical == name.canonical)
    }

    @Test func extensionNamesCompareCaseInsensitivelyAndKeepTheirSpelling() throws {
        let bytes = Array(
            String(decoding: subscribe, as: UTF8.self).replacing(
                "Event: dialog\r\n",
                with: "X-Yealink-Line: 2\r\n"
            ).utf8
        )
        let request = try parsedRequest(bytes)
        #expect(request.headers[SIPHeaderName("x-yealink-line")] == "2")
        #expect(request.headers.contains(SIPHeaderName("X-YEALINK-LINE")))
        #expect(!request.headers.contains(.event))
        #expect(request.headers.fields.contains { $0.name.canonical == "X-Yealink-Line" })
        #expect(String(decoding: request.serializedBytes, as: UTF8.self).contains("\r\nX-Yealink-Line: 2\r\n"))
        #expect(SIPHeaderName("X-A") != SIPHeaderName("X-B"))
        #expect(SIPHeaderName("X-A").hashValue == SIPHeaderName("x-a").hashValue)
    }

    @Test func mutatingParsedHeadersKeepsTheUntouchedOnes() throws {
        var request = try parsedRequest(subscribe)
        request.headers.prepend(.via, "SIP/2.0/UDP proxy.test;branch=z9hG4bKp")
        request.headers.set(.expires, "0")
        request.headers.add(SIPHeaderName("X-Added"), "yes")
        request.headers.remove(.authorization)
        #expect(request.vias.map(\.host) == ["proxy.test", "10.0.0.5"])
        #expect(request.expires == 0)
        #expect(request.headers[SIPHeaderName("x-added")] == "yes")
        #expect(request.headers[.authorization] == nil)
        #expect(request.headers[.userAgent] == "Yealink SIP-T46U 108.86.0.20")
        request.headers.removeFirstElement(.via)
        #expect(request.vias.map(\.host) == ["10.0.0.5"])
        request.headers.removeFirstElement(.allowEvents)
        #expect(request.headers[.allowEvents] == "presence")

        // The changed message serializes and parses back to the same fields.
        let reparsed = try parsedRequest(request.serializedBytes)
        #expect(reparsed.headers == request.headers)
        #expect(reparsed == request)
    }

    @Test func compactedHeadersKeepEveryFieldInOneBufferOfTheirBytes() throws {
        var request = try parsedRequest(subscribe)
        request.headers.set(.expires, "0")
        request.headers.add(SIPHeaderName("X-Built"), "yes")
        let compacted = request.headers.compacted()
        #expect(compacted == request.headers)
        #expect(Array(compacted) == Array(request.headers))
        #expect(compacted[SIPHeaderName("x-built")] == "yes")
        // Only the names and values: none of the datagram's framing, no string per field.
        let valueBytes = request.headers.reduce(0) { $0 + $1.value.utf8.count } + "X-Built".utf8.count
        #expect(compacted.storedByteCount == valueBytes)
        var kept = request
        kept.headers = compacted
        #expect(kept.serializedBytes == request.serializedBytes)
    }

    @Test func repeatedSetAndRemoveDoNotGrowTheHeaders() {
        var headers = SIPHeaders([(.callID, "a")])
        for round in 0..<1_000 {
            headers.set(.expires, String(round))
            headers.add(SIPHeaderName("X-Round"), String(round))
            headers.remove(SIPHeaderName("X-Round"))
        }
        #expect(headers == SIPHeaders([(.callID, "a"), (.expires, "999")]))
    }

    @Test func foldedValuesAreUnfoldedAndEqualTheirOneLineForm() throws {
        let folded = Array(
            String(decoding: subscribe, as: UTF8.self).replacing(
                "Allow-Events: dialog, presence\r\n",
                with: "Allow-Events: dialog,\r\n   presence\r\n"
            ).utf8
        )
        let request = try parsedRequest(folded)
        #expect(request.headers[.allowEvents] == "dialog, presence")
        #expect(request.headers == (try parsedRequest(subscribe)).headers)
    }

    @Test func untouchedValuesSerializeAsTheyArrived() throws {
        let request = try parsedRequest(subscribe)
        #expect(request.serializedBytes == subscribe)
    }
}
