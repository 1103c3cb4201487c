import SIPCore
import Testing

private func message(_ lines: [String], body: String = "") -> [UInt8] {
    Array((lines.joined(separator: "\r\n") + "\r\n\r\n" + body).utf8)
}

private let baseHeaders = [
    "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK1;rport",
    "From: \"Alice\" <sip:201@sip.busylamp.test>;tag=abc",
    "To: <sip:202@sip.busylamp.test>",
    "Call-ID: c1@x",
    "CSeq: 1 OPTIONS",
]

private func request(_ extra: [String] = [], contentLength: String? = "0", body: String = "") -> [UInt8] {
    var lines = ["OPTIONS sip:202@sip.busylamp.test SIP/2.0"] + baseHeaders + extra
    if let contentLength { lines.append("Content-Length: \(contentLength)") }
    return message(lines, body: body)
}

private func parseError(
    _ bytes: [UInt8],
    framing: SIPFraming = .datagram,
    limits: SIPParserLimits = .default
) -> SIPParseError? {
    do {
        _ = try SIPParser(limits: limits).parse(bytes, framing: framing)
        return nil
    } catch {
        return error
    }
}

@Suite(.timeLimit(.minutes(1))) struct SIPParserTests {
    @Test func compactFormsFoldOntoLongNames() throws {
        let bytes = message([
            "OPTIONS sip:202@sip.busylamp.test SIP/2.0", "v: SIP/2.0/TCP h;branch=z9hG4bKa", "f: <sip:a@b>;tag=1",
            "t: <sip:c@d>", "i: id", "CSeq: 2 OPTIONS", "m: <sip:a@h>", "k: path", "l: 0",
        ])
        let parsed = try SIPParser().parse(bytes)
        #expect(parsed.headers[.via] == "SIP/2.0/TCP h;branch=z9hG4bKa")
        #expect(parsed.headers[.supported] == "path")
        #expect(parsed.headers[SIPHeaderName("CALL-id")] == "id")
    }

    @Test func repeatedHeadersAndCommaListsAreBothElements() throws {
        let parsed = try SIPParser().parse(
            request(["Contact: <sip:a@h1>, \"x, y\" <sip:b@h2>", "Contact: <sip:c@h3>"])
        )
        #expect(parsed.headers.values(.contact).count == 2)
        #expect(parsed.headers.listElements(.contact).count == 3)
        guard case .request(let options) = parsed else {
            Issue.record("not a request")
            return
        }
        #expect(options.contacts?.count == 3)
    }

    @Test func headerValuesKeepTheirCaseNamesDoNot() throws {
        let parsed = try SIPParser().parse(request(["X-Custom: MiXeD Value"]))
        #expect(parsed.headers[SIPHeaderName("x-custom")] == "MiXeD Value")
    }

    @Test func quotedStringsWithEscapesAndParametersWithoutValues() throws {
        let parsed = try SIPParser().parse(
            message([
                "OPTIONS sip:202@h;lr SIP/2.0", "Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKx;rport",
                "From: \"A \\\"quoted\\\" \\\\ name\" <sip:a@[2001:db8::2]:5070>;tag=t", "To: <sip:b@h>",
                "Call-ID: q", "CSeq: 1 OPTIONS", "l: 0",
            ])
        )
        guard case .request(let options) = parsed else {
            Issue.record("not a request")
            return
        }
        #expect(options.from?.displayName == "A \"quoted\" \\ name")
        #expect(options.from?.uri.host == "[2001:db8::2]")
        #expect(options.from?.uri.port == 5070)
        #expect(options.topVia?.host == "[2001:db8::1]")
        #expect(options.topVia?.hasRport == true)
        #expect(options.topVia?.rport == nil)
        #expect(options.uri.parameters["lr"] == .some(nil))
        #expect(options.from?.uri.hostWithoutBrackets == "2001:db8::2")
    }

    @Test func contentLengthOnDatagrams() throws {
        // Absent: the body is the rest of the datagram.
        guard case .request(let absent) = try SIPParser().parse(request(contentLength: nil, body: "hello")) else {
            Issue.record("not a request")
            return
        }
        #expect(absent.body == Array("hello".utf8))
        // Larger than the body: 400.
        #expect(parseError(request(contentLength: "10", body: "hello"))?.statusCode == 400)
        // Extra bytes after the body are ignored (RFC 3261 §18.3).
        guard case .request(let extra) = try SIPParser().parse(request(contentLength: "2", body: "hello")) else {
            Issue.record("not a request")
            return
        }
        #expect(extra.body == Array("he".utf8))
    }

    /// Issue 9: a NUL in the To display name was answered 200. Every control character but the
    /// HT, CR and LF that lay lines out is refused with a 400 that says so, wherever it is.
    @Test(arguments: [0x00, 0x01, 0x07, 0x08, 0x0B, 0x0C, 0x0D, 0x1B, 0x1F, 0x7F] as [UInt8])
    func controlCharactersInAnyHeaderAre400(_ control: UInt8) throws {
        let character = String(UnicodeScalar(control))
        let cases: [[UInt8]] = [
            message(
                ["OPTIONS sip:202@sip.busylamp.test SIP/2.0"] + baseHeaders.filter { !$0.hasPrefix("To:") }
                    + ["To: \"Bob\(character)\" <sip:202@sip.busylamp.test>", "Content-Length: 0"]
            ),
            request(["Subject: before\(character)after"]),
            request(["X-Name\(character): value"]),
        ]
        for bytes in cases {
            let error = try #require(parseError(bytes), "control 0x\(String(control, radix: 16)) accepted")
            #expect(error.statusCode == 400)
            if control != 0x0D {
                #expect(error.code == .invalidBytes || error.code == .badHeaderLine)
            }
        }
        // In the value of a header a readable request carries, the 400 can be addressed.
        let inValue = try #require(parseError(request(["Subject: before\(character)after"])))
        #expect(inValue.reasonPhrase == "Control Character In Header")
        #expect(inValue.makeResponse(toTag: "t") != nil)
        // In the start line.
        let inURI = parseError(message(["OPTIONS sip:202\(character)x@sip.busylamp.test SIP/2.0"] + baseHeaders))
        #expect(inURI?.statusCode == 400)
    }

    /// The 400 for a control character in the To (or From) display name copies that header,
    /// but never the control character: what we send must parse (the request-path fuzzer
    /// found the NUL echoed back). Tags, Call-ID and CSeq stay, so the phone can match it.
    @Test(arguments: [0x00, 0x01, 0x1B, 0x7F] as [UInt8])
    func theAnswerToAControlCharacterDoesNotEchoIt(_ control: UInt8) throws {
        let character = String(UnicodeScalar(control))
        let bytes = message(
            ["OPTIONS sip:202@sip.busylamp.test SIP/2.0"] + baseHeaders.filter { !$0.hasPrefix("To:") }
                + ["To: \"Bob\(character)\" <sip:202@sip.busylamp.test>", "Content-Length: 0"]
        )
        let error = try #require(parseError(bytes))
        let response = try #require(error.makeResponse(toTag: "t1"))
        let wire = SIPMessage.response(response).serializedBytes
        #expect(!wire.contains(control))
        guard case .response(let parsed) = try SIPParser().parse(wire) else {
            Issue.record("not a response")
            return
        }
        #expect(parsed.statusCode == 400)
        #expect(parsed.to?.tag == "t1")
        #expect(parsed.callID == response.callID)
    }

    /// RFC 3261 §25.1 TEXT-UTF8: a display name (or any header) that is not UTF-8, a truncated
    /// sequence, an overlong encoding or a lone continuation byte, is a 400 that says so.
    @Test(arguments: [[0xFF, 0xFE], [0xC3], [0xC0, 0xAF], [0x80], [0xED, 0xA0, 0x80]] as [[UInt8]])
    func invalidUTF8InAHeaderIs400(_ bad: [UInt8]) throws {
        let to = Array("To: \"Bob ".utf8) + bad + Array("\" <sip:202@sip.busylamp.test>".utf8)
        let head = message(["OPTIONS sip:202@sip.busylamp.test SIP/2.0"] + baseHeaders.filter { !$0.hasPrefix("To:") })
        // `message` ends the head with an empty line; the bad To goes before it.
        let bytes = Array(head.dropLast(2)) + to + Array("\r\nContent-Length: 0\r\n\r\n".utf8)
        let error = try #require(parseError(bytes), "\(bad) accepted")
        #expect(error.statusCode == 400)
        #expect(error.reasonPhrase == "Invalid UTF-8 In Header")
        #expect(error.makeResponse(toTag: "t") != nil)
    }

    @Test func tabsUTF8AndQuotedPairsStayAllowed() throws {
        let parsed = try SIPParser().parse(request(["Subject:\tcaf\u{E9}\t", "X-Emoji: \u{1F4DE}"]))
        #expect(parsed.headers[.subject] == "caf\u{E9}")
        // A quoted-pair may escape a control character inside a quoted string (RFC 4475 §3.1.1.2),
        // but not outside one, and never a CR or LF.
        #expect(parseError(request(["X-Name: \"A\\\u{0}B\""])) == nil)
        #expect(parseError(request(["X-Name: A\\\u{0}B"]))?.code == .invalidBytes)
        #expect(parseError(request(["X-Name: \"A\\\rB\""]))?.code == .invalidBytes)
    }

    @Test func contentLengthIsMandatoryOnStreams() {
        let error = parseError(request(contentLength: nil), framing: .stream)
        #expect(error?.code == .badContentLength)
        #expect(error?.reasonPhrase.contains("Content-Length") == true)
    }

    @Test func limits() {
        let tooLarge = parseError(request(["X-Pad: " + String(repeating: "a", count: 70_000)]))
        #expect(tooLarge?.statusCode == 513)
        let longLine = parseError(request(["X-Pad: " + String(repeating: "a", count: 9_000)]))
        #expect(longLine?.code == .lineTooLong)
        let manyHeaders = parseError(request((0..<300).map { "X-H\($0): v" }))
        #expect(manyHeaders?.code == .tooManyHeaders)
        // The fields before the limit name the transaction, so both refusals can be answered.
        #expect(longLine?.responseContext?.callID.isEmpty == false)
        #expect(manyHeaders?.responseContext?.callID.isEmpty == false)
        #expect(manyHeaders?.makeResponse(toTag: "t")?.statusCode == 400)
    }

    @Test func tenThousandHeadersAreRefusedQuickly() {
        let bytes = request((0..<10_000).map { "X-H\($0): v" })
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            let error = parseError(bytes, limits: SIPParserLimits(maximumMessageSize: 1 << 20))
            #expect(error?.code == .tooManyHeaders)
        }
        #expect(elapsed < .milliseconds(200))
    }

    @Test func nulBytes() {
        var startLineNUL = request()
        startLineNUL[3] = 0
        #expect(parseError(startLineNUL)?.statusCode == 400)
        let nameNUL = request(["X-\u{0}Bad: v"])
        #expect(parseError(nameNUL)?.code == .badHeaderLine)
    }

    @Test func refusalCarriesTheResponseContextWhenReadable() throws {
        let error = try #require(parseError(request(["Max-Forwards: 999"])))
        #expect(error.reasonPhrase.contains("Max-Forwards"))
        let context = try #require(error.responseContext)
        #expect(context.callID == "c1@x")
        #expect(context.cseq == "1 OPTIONS")
        #expect(context.via == ["SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK1;rport"])
        #expect(context.method == .options)
        let response = try #require(error.makeResponse(toTag: "zz"))
        #expect(response.to?.tag == "zz")
        #expect(response.reasonPhrase == error.reasonPhrase)
    }

    @Test func replyingToARequestFollowsRFC3261Section8_2_6_2() throws {
        guard
            case .request(let options) = try SIPParser().parse(
                request(["Via: SIP/2.0/UDP proxy;branch=z9hG4bK2"])
            )
        else {
            Issue.record("not a request")
            return
        }
        let ok = SIPResponse(replyingTo: options, statusCode: 200, toTag: "srv")
        #expect(ok.headers.values(.via) == options.headers.values(.via))
        #expect(ok.headers[.from] == options.headers[.from])
        #expect(ok.to?.tag == "srv")
        #expect(ok.callID == options.callID)
        #expect(ok.cseq == options.cseq)
        #expect(ok.reasonPhrase == "OK")
        let trying = SIPResponse(replyingTo: options, statusCode: 100, toTag: "srv")
        #expect(trying.to?.tag == nil)
        var tagged = options
        tagged.headers.set(.to, "<sip:202@sip.busylamp.test>;tag=existing")
        #expect(SIPResponse(replyingTo: tagged, statusCode: 486, toTag: "srv").to?.tag == "existing")
    }
}

@Suite(.timeLimit(.minutes(1))) struct SIPStreamFramerTests {
    let first = request()
    let second = request(["X-Second: yes"], contentLength: "5", body: "12345")

    @Test func dripFedOneByteAtATime() throws {
        var framer = SIPStreamFramer()
        var frames: [SIPStreamFramer.Frame] = []
        for byte in first + second {
            framer.append([byte])
            while let frame = try framer.next() { frames.append(frame) }
        }
        #expect(frames == [.message(first), .message(second)])
        #expect(framer.bufferedByteCount == 0)
    }

    @Test func pipelinedMessagesAndKeepAlives() throws {
        var framer = SIPStreamFramer()
        framer.append(Array("\r\n\r\n".utf8) + first + second + Array("\r\n\r\n".utf8))
        var frames: [SIPStreamFramer.Frame] = []
        while let frame = try framer.next() { frames.append(frame) }
        #expect(frames == [.keepAlivePing, .message(first), .message(second), .keepAlivePing])
        let parsed = try SIPParser().parse(
            try #require(
                frames.compactMap {
                    if case .message(let bytes) = $0 { return bytes } else { return nil }
                }.last
            ),
            framing: .stream
        )
        #expect(parsed.headers[SIPHeaderName("X-Second")] == "yes")
    }

    @Test func oversizedMessageIsAFramingError() {
        var framer = SIPStreamFramer(limits: SIPParserLimits(maximumMessageSize: 1_000))
        framer.append(
            Array("OPTIONS sip:a@b SIP/2.0\r\nX-Pad: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 2_000)
        )
        #expect(throws: SIPStreamFramer.FramingError.messageTooLarge) { try framer.next() }
        var declared = SIPStreamFramer(limits: SIPParserLimits(maximumMessageSize: 1_000))
        declared.append(request(contentLength: "5000"))
        #expect(throws: SIPStreamFramer.FramingError.messageTooLarge) { try declared.next() }
    }

    @Test func badContentLengthIsAFramingError() {
        for value in ["-1", "five", ""] {
            var framer = SIPStreamFramer()
            framer.append(request(contentLength: value))
            #expect(throws: SIPStreamFramer.FramingError.badContentLength) { try framer.next() }
        }
        var missing = SIPStreamFramer()
        missing.append(request(contentLength: nil))
        #expect(throws: SIPStreamFramer.FramingError.badContentLength) { try missing.next() }
    }
}
