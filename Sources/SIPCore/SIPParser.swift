/// How a message arrived: it decides how its end is found (RFC 3261 §18.3).
public enum SIPFraming: Sendable {
    /// One datagram is one message; Content-Length may be absent (the body is the rest).
    case datagram
    /// The stream framer has already cut the message; Content-Length is mandatory.
    case stream
}

/// Parses one complete SIP message from bytes.
///
/// The parser works on bytes: it finds lines, unfolds continuations and cuts `name: value`
/// pairs without building intermediate strings per line. It validates the start line and the
/// headers every transaction needs (Via, From, To, Call-ID, CSeq) so that everything above it
/// can rely on them; other headers are only carried and are parsed when someone reads them.
public struct SIPParser: Sendable {
    public var limits: SIPParserLimits

    public init(limits: SIPParserLimits = .default) { self.limits = limits }

    public func parse(_ bytes: [UInt8], framing: SIPFraming = .datagram) throws(SIPParseError) -> SIPMessage {
        guard bytes.count <= limits.maximumMessageSize else {
            throw SIPParseError(.messageTooLarge, "Message Too Large", statusCode: 513)
        }
        // The headers keep `bytes` itself (copy-on-write: shared, not copied).
        return try bytes.withUnsafeBufferPointer { (buffer) throws(SIPParseError) -> SIPMessage in
            try parse(buffer, source: bytes, framing: framing)
        }
    }

    public func parse(_ buffer: UnsafeBufferPointer<UInt8>, framing: SIPFraming) throws(SIPParseError) -> SIPMessage {
        try parse(Array(buffer), framing: framing)
    }

    private func parse(
        _ buffer: UnsafeBufferPointer<UInt8>,
        source: [UInt8],
        framing: SIPFraming
    ) throws(SIPParseError) -> SIPMessage {
        let count = buffer.count
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        var index = 0
        while index < count, buffer[index] == .cr || buffer[index] == .lf { index += 1 }
        guard index < count else { throw SIPParseError(.empty, "Empty Message") }

        // One pass over the lines until the empty line that ends the header section: each field
        // becomes a known-name byte and the range of its trimmed value. Only a folded field
        // (RFC 3261 §7.3.1) builds its unfolded value.
        var startLine: Range<Int>?
        var entries: [SIPHeaders.Entry] = []
        var strings: [String] = []
        entries.reserveCapacity(Self.expectedHeaderCount)
        var lineCount = 0
        var headerSectionEnded = false
        var badHeaderLine = false
        // The last field, while continuation lines may still extend it.
        var pendingOpen = false
        var pendingRaw = 0..<0
        var pendingFolded: [UInt8]?
        func flush() {
            if let folded = pendingFolded {
                entries[entries.count - 1].builtValue = Int32(strings.count)
                strings.append(String(decoding: folded, as: UTF8.self).trimmingSIPWhitespace())
            }
            pendingOpen = false
            pendingFolded = nil
        }
        // A limit hit part-way still answers when the fields read so far name the transaction
        // (a flood of 10,000 fields after a readable Via, From, To, Call-ID and CSeq gets its 400).
        func contextSoFar() -> SIPParseError.ResponseContext? {
            guard let startLine else { return nil }
            flush()
            return Self.responseContext(
                headers: SIPHeaders(source: source, entries: entries, strings: strings),
                startLine: buffer[startLine]
            )
        }
        while index < count {
            let start = index
            let end = buffer.firstLineFeed(from: index)
            let lineEnd = (end > start && buffer[end - 1] == .cr) ? end - 1 : end
            index = end < count ? end + 1 : count
            if lineEnd - start > limits.maximumLineLength {
                throw SIPParseError(.lineTooLong, "Header Line Too Long", responseContext: contextSoFar())
            }
            if start == lineEnd {
                headerSectionEnded = end < count
                break
            }
            lineCount += 1
            if lineCount > limits.maximumHeaderCount + 1 {
                throw SIPParseError(.tooManyHeaders, "Too Many Headers", responseContext: contextSoFar())
            }
            guard startLine != nil else {
                startLine = start..<lineEnd
                continue
            }
            let first = buffer[start]
            if first == .space || first == .tab {
                guard pendingOpen else {
                    badHeaderLine = true
                    continue
                }
                // RFC 3261 §7.3.1: the CRLF and the whitespace around it fold into one SP.
                var folded = pendingFolded ?? Array(buffer[pendingRaw])
                while let last = folded.last, last == .space || last == .tab { folded.removeLast() }
                var contentStart = start
                while contentStart < lineEnd, buffer[contentStart] == .space || buffer[contentStart] == .tab {
                    contentStart += 1
                }
                if !folded.isEmpty { folded.append(.space) }
                folded.append(contentsOf: buffer[contentStart..<lineEnd])
                pendingFolded = folded
                continue
            }
            flush()
            // field-name = token, then optional whitespace and the colon.
            var nameEnd = start
            while nameEnd < lineEnd, buffer[nameEnd].isSIPTokenCharacter { nameEnd += 1 }
            var colon = nameEnd
            while colon < lineEnd, buffer[colon] == .space || buffer[colon] == .tab { colon += 1 }
            guard nameEnd > start, colon < lineEnd, buffer[colon] == .colon else {
                badHeaderLine = true
                continue
            }
            var valueStart = colon + 1
            while valueStart < lineEnd, buffer[valueStart].isSIPWhitespace { valueStart += 1 }
            var valueEnd = lineEnd
            while valueEnd > valueStart, buffer[valueEnd - 1].isSIPWhitespace { valueEnd -= 1 }
            let known = SIPHeaderName.known(UnsafeBufferPointer(rebasing: buffer[start..<nameEnd]))
            entries.append(
                SIPHeaders.Entry(known: known, name: start..<nameEnd, value: valueStart..<valueEnd)
            )
            pendingOpen = true
            pendingRaw = (colon + 1)..<lineEnd
        }
        flush()
        guard let startLine else { throw SIPParseError(.badStartLine, "Missing Start Line") }
        let headers = SIPHeaders(source: source, entries: entries, strings: strings)

        // The response context is only built on failure: no strings on the success path.
        func fail(_ code: SIPParseError.Code, _ reason: String, status: Int = 400) -> SIPParseError {
            SIPParseError(
                code,
                reason,
                statusCode: status,
                responseContext: Self.responseContext(headers: headers, startLine: buffer[startLine])
            )
        }
        if badHeaderLine { throw fail(.badHeaderLine, "Malformed Header Line") }
        // RFC 3261 §25.1: no field may hold a control character (a quoted-pair could escape
        // one, but no phone sends that); NUL or ESC in a display name is an attack on whatever
        // shows or logs it, and a bare CR splits a line differently in other parsers.
        let head = UnsafeBufferPointer(rebasing: buffer[startLine.lowerBound..<index])
        if let offset = Self.firstControlCharacter(in: head) {
            let inStartLine = offset < startLine.count
            throw fail(.invalidBytes, inStartLine ? "Control Character In Start Line" : "Control Character In Header")
        }
        // RFC 3261 §25.1: TEXT-UTF8 (display names, reason phrases, quoted strings) is UTF-8;
        // invalid or overlong sequences are what breaks a phone's screen or a log reader
        // (issue 9). Checked only when a byte above ASCII is there at all.
        if head.contains(where: { $0 >= 0x80 }), String(validating: head, as: UTF8.self) == nil {
            throw fail(.invalidBytes, "Invalid UTF-8 In Header")
        }

        // Body
        let available = headerSectionEnded ? count - index : 0
        var contentLength: Int?
        var firstContentLength: SIPHeaders.Entry?
        for entry in entries where entry.known == .contentLength {
            guard let first = firstContentLength else {
                firstContentLength = entry
                // RFC 4475 §3.1.2.3: a negative or non-numeric value is refused, never used as a count.
                contentLength = headers.withValueBytes(entry) { $0.count <= 9 ? $0.asciiDecimal : nil }
                continue
            }
            // RFC 4475 §3.3.9: differing values leave no way to know where the body ends.
            let same = headers.withValueBytes(first) { a in headers.withValueBytes(entry) { b in a.elementsEqual(b) } }
            guard same else { throw fail(.badContentLength, "Conflicting Content-Length Values") }
        }
        let body: [UInt8]
        if firstContentLength != nil {
            guard let length = contentLength else { throw fail(.badContentLength, "Malformed Content-Length") }
            // RFC 4475 §3.1.2.2: over a datagram, a Content-Length beyond the body is a 400;
            // RFC 3261 §18.3: bytes after the body are ignored.
            guard length <= available else { throw fail(.truncatedBody, "Content-Length Exceeds Body") }
            body = length == 0 ? [] : Array(buffer[index..<(index + length)])
        } else {
            if framing == .stream { throw fail(.badContentLength, "Missing Content-Length") }
            body = available == 0 ? [] : Array(buffer[index..<(index + available)])
        }

        // Start line and mandatory headers
        let line = UnsafeBufferPointer(rebasing: buffer[startLine])
        let message: SIPMessage
        if line.count >= 4, line[0] == UInt8(ascii: "S"), line[1] == UInt8(ascii: "I"), line[2] == UInt8(ascii: "P"),
            line[3] == .slash
        {
            message = .response(try parseStatusLine(line, headers: headers, body: body, fail: fail))
        } else {
            message = .request(try parseRequestLine(line, headers: headers, body: body, fail: fail))
        }
        switch message {
        case .request(let request): try validateMandatoryHeaders(headers, method: request.method, fail: fail)
        case .response: try validateMandatoryHeaders(headers, method: nil, fail: fail)
        }
        return message
    }

    /// The offset of the first control character (or DEL) that is neither the HT, CR and LF
    /// that lay lines out (a CR only before an LF) nor escaped by a quoted-pair inside a quoted
    /// string (RFC 3261 §25.1; RFC 4475 §3.1.1.2 has `"BEL:\<BEL> NUL:\<NUL>"` in a display name).
    static func firstControlCharacter(in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var inQuotes = false
        var escaped = false
        var offset = 0
        let count = bytes.count
        while offset < count {
            let byte = bytes[offset]
            if escaped {
                // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F): anything but CR and LF.
                escaped = false
                if byte == .cr || byte == .lf { return offset }
            } else if byte == .doubleQuote {
                inQuotes.toggle()
            } else if byte == .backslash, inQuotes {
                escaped = true
            } else if byte == .lf {
                inQuotes = false
            } else if byte < 0x20 || byte == 0x7F {
                let layout = byte == .tab || (byte == .cr && offset + 1 < count && bytes[offset + 1] == .lf)
                if !layout { return offset }
            }
            offset += 1
        }
        return nil
    }

    /// Fields a typical message has; the field table is allocated once at this size.
    static let expectedHeaderCount = 24

    private func parseRequestLine(
        _ line: UnsafeBufferPointer<UInt8>,
        headers: SIPHeaders,
        body: [UInt8],
        fail: (SIPParseError.Code, String, Int) -> SIPParseError
    ) throws(SIPParseError) -> SIPRequest {
        // RFC 3261 §7.1: Method SP Request-URI SP SIP-Version, single spaces.
        // RFC 4475 §3.1.2.8–10: LWS inside the URI, several SPs or trailing SPs are refused.
        guard let firstSpace = line.firstIndex(of: .space),
            let secondSpace = line[(firstSpace + 1)...].firstIndex(of: .space),
            !line[(secondSpace + 1)...].contains(.space),
            firstSpace > 0, line[..<firstSpace].allSatisfy({ $0.isSIPTokenCharacter })
        else { throw fail(.badStartLine, "Malformed Request-Line", 400) }
        let version = UnsafeBufferPointer(rebasing: line[(secondSpace + 1)...])
        guard version.equalsLowercased("sip/2.0") else {
            if version.count >= 4, UnsafeBufferPointer(rebasing: version[..<4]).equalsLowercased("sip/") {
                throw fail(.badVersion, "Version Not Supported", 505)
            }
            throw fail(.badStartLine, "Malformed Request-Line", 400)
        }
        guard let uri = SIPURI(String(decoding: line[(firstSpace + 1)..<secondSpace], as: UTF8.self)) else {
            throw fail(.badRequestURI, "Malformed Request-URI", 400)
        }
        // RFC 3261 §19.1.5 / RFC 4475 §3.1.2.11: headers are not allowed in a Request-URI.
        if uri.headers != nil { throw fail(.badRequestURI, "Request-URI Contains Headers", 400) }
        let method = SIPMethod(String(decoding: line[..<firstSpace], as: UTF8.self))
        return SIPRequest(method: method, uri: uri, headers: headers, body: body)
    }

    private func parseStatusLine(
        _ line: UnsafeBufferPointer<UInt8>,
        headers: SIPHeaders,
        body: [UInt8],
        fail: (SIPParseError.Code, String, Int) -> SIPParseError
    ) throws(SIPParseError) -> SIPResponse {
        // RFC 3261 §7.2: SIP-Version SP Status-Code SP Reason-Phrase
        guard let firstSpace = line.firstIndex(of: .space),
            UnsafeBufferPointer(rebasing: line[..<firstSpace]).equalsLowercased("sip/2.0")
        else { throw fail(.badVersion, "Version Not Supported", 505) }
        let secondSpace = line[(firstSpace + 1)...].firstIndex(of: .space)
        let codeBytes = UnsafeBufferPointer(rebasing: line[(firstSpace + 1)..<(secondSpace ?? line.count)])
        guard codeBytes.count == 3, let code = codeBytes.asciiDecimal, (100...699).contains(code)
        else { throw fail(.badStartLine, "Malformed Status-Line", 400) }
        let reason = secondSpace.map { String(decoding: line[($0 + 1)...], as: UTF8.self) } ?? ""
        return SIPResponse(statusCode: code, reasonPhrase: reason, headers: headers, body: body)
    }

    /// Checks the headers every transaction relies on; `method` is the request's (`nil` for a
    /// response).
    private func validateMandatoryHeaders(
        _ headers: SIPHeaders,
        method: SIPMethod?,
        fail: (SIPParseError.Code, String, Int) -> SIPParseError
    ) throws(SIPParseError) {
        // One pass to find the headers every message must have, checked on their bytes.
        var via: Int?
        var from: Int?
        var to: Int?
        var callID: Int?
        var cseq: Int?
        var maxForwards: Int?
        var date: Int?
        var expires: Int?
        var duplicated: KnownHeader?
        func note(_ slot: inout Int?, _ index: Int, _ known: KnownHeader) {
            if slot == nil { slot = index } else if duplicated == nil { duplicated = known }
        }
        for (index, entry) in headers.entries.enumerated() {
            guard let known = entry.known else { continue }
            switch known {
            case .via: if via == nil { via = index }
            case .from: note(&from, index, known)
            case .to: note(&to, index, known)
            case .callID: note(&callID, index, known)
            case .cseq: note(&cseq, index, known)
            case .maxForwards: if maxForwards == nil { maxForwards = index }
            case .date: if date == nil { date = index }
            case .expires: if expires == nil { expires = index }
            default: break
            }
        }
        // RFC 3261 §8.1.1: To, From, CSeq, Call-ID, Max-Forwards (requests) and Via are mandatory.
        guard via != nil else { throw fail(.missingHeader, "Missing Via Header", 400) }
        guard let from else { throw fail(.missingHeader, "Missing From Header", 400) }
        guard let to else { throw fail(.missingHeader, "Missing To Header", 400) }
        guard let callID else { throw fail(.missingHeader, "Missing Call-ID Header", 400) }
        guard let cseq else { throw fail(.missingHeader, "Missing CSeq Header", 400) }
        // Call-ID, From, To and CSeq appear once; reported in that order.
        if duplicated != nil {
            for known in [KnownHeader.callID, .from, .to, .cseq]
            where headers.entries.lazy.filter({ $0.known == known }).count > 1 {
                throw fail(.badHeaderValue, "Multiple \(known.canonical) Headers", 400)
            }
        }
        var viaCount = 0
        var viasValid = true
        for entry in headers.entries where entry.known == .via && viasValid {
            viasValid = headers.withValueBytes(entry) { bytes in
                HeaderValueScanner.forEachListElement(bytes) { element in
                    viaCount += 1
                    return Via.syntax(element, parameter: { _, _ in }) != nil
                }
            }
        }
        guard viasValid, viaCount > 0 else { throw fail(.badHeaderValue, "Malformed Via Header", 400) }
        func isNameAddress(_ index: Int) -> Bool {
            headers.withValueBytes(headers.entries[index]) { NameAddress.syntax($0, parameter: { _, _ in }) != nil }
        }
        guard isNameAddress(from) else { throw fail(.badHeaderValue, "Malformed From Header", 400) }
        guard isNameAddress(to) else { throw fail(.badHeaderValue, "Malformed To Header", 400) }
        let cseqMethodMatches: Bool? = headers.withValueBytes(headers.entries[cseq]) { bytes in
            guard let syntax = CSeq.syntax(bytes) else { return nil }
            guard var method = method?.rawValue else { return true }
            return method.withUTF8 { $0.elementsEqual(bytes[syntax.method]) }
        }
        guard let cseqMethodMatches else { throw fail(.badHeaderValue, "Malformed CSeq Header", 400) }
        guard headers.withValueBytes(headers.entries[callID], { !$0.isEmpty }) else {
            throw fail(.badHeaderValue, "Malformed Call-ID Header", 400)
        }
        if method != nil {
            guard cseqMethodMatches else { throw fail(.badHeaderValue, "CSeq Method Does Not Match Request", 400) }
            if let maxForwards {
                // RFC 4475 §3.1.1.1: leading zeros ("0068") are valid.
                let valid = headers.withValueBytes(headers.entries[maxForwards]) { bytes in
                    bytes.count <= 9 && (bytes.asciiDecimal.map { $0 <= 255 } ?? false)
                }
                guard valid else { throw fail(.badHeaderValue, "Malformed Max-Forwards Header", 400) }
            }
        }
        // RFC 3261 §20.17 / RFC 4475 §3.1.2.12: the only time zone is "GMT".
        if let date,
            !headers.withValueBytes(headers.entries[date], { $0.reversed().starts(with: " GMT".utf8.reversed()) })
        {
            throw fail(.badHeaderValue, "Malformed Date Header", 400)
        }
        // RFC 3261 §20.10 / RFC 4475 §3.1.2.13: a URI with headers (or ',', '?') must be in <>.
        for entry in headers.entries where entry.known == .contact {
            let bad = headers.withValueBytes(entry) { !$0.contains(.lessThan) && $0.contains(.questionMark) }
            if bad { throw fail(.badHeaderValue, "Malformed Contact Header", 400) }
        }
        if let expires, headers.withValueBytes(headers.entries[expires], { $0.asciiDecimal == nil }) {
            throw fail(.badHeaderValue, "Malformed Expires Header", 400)
        }
    }

    static func responseContext(
        headers: SIPHeaders,
        startLine: Slice<UnsafeBufferPointer<UInt8>>
    ) -> SIPParseError.ResponseContext? {
        guard let from = headers[.from], let to = headers[.to], let callID = headers[.callID], let cseq = headers[.cseq]
        else { return nil }
        let via = headers.values(.via)
        guard !via.isEmpty else { return nil }
        let isResponse = startLine.starts(with: "SIP/".utf8)
        let method =
            isResponse
            ? nil : startLine.split(separator: .space).first.map { SIPMethod(String(decoding: $0, as: UTF8.self)) }
        return SIPParseError.ResponseContext(
            isRequest: !isResponse,
            method: method,
            via: via,
            from: from,
            to: to,
            callID: callID,
            cseq: cseq
        )
    }
}

extension UnsafeBufferPointer<UInt8> {
    /// The value of a non-empty run of ASCII digits; `nil` for anything else. Callers bound
    /// the length so that it cannot overflow.
    var asciiDecimal: Int? {
        guard !isEmpty else { return nil }
        var value = 0
        for byte in self {
            guard byte.isASCIIDigit else { return nil }
            value = value &* 10 &+ Int(byte &- UInt8(ascii: "0"))
        }
        return value
    }
}

extension UnsafeBufferPointer<UInt8> {
    /// The index of the first LF at or after `start`, or `count`: eight bytes per step, as lines
    /// are most of a message.
    @inline(__always)
    func firstLineFeed(from start: Int) -> Int {
        var index = start
        if let base = baseAddress {
            let raw = UnsafeRawPointer(base)
            while index + 8 <= count {
                // A byte of `word` is zero where the message has an LF; the lowest set high bit of
                // `found` marks the first such byte (higher ones may be false positives).
                let word =
                    UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                    ^ 0x0A0A_0A0A_0A0A_0A0A
                let found = (word &- 0x0101_0101_0101_0101) & ~word & 0x8080_8080_8080_8080
                if found != 0 { return index + found.trailingZeroBitCount / 8 }
                index += 8
            }
        }
        while index < count, self[index] != .lf { index += 1 }
        return index
    }
}
