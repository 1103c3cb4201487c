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
        try bytes.withUnsafeBufferPointer { (buffer) throws(SIPParseError) -> SIPMessage in
            try parse(buffer, framing: framing)
        }
    }

    public func parse(_ buffer: UnsafeBufferPointer<UInt8>, framing: SIPFraming) throws(SIPParseError) -> SIPMessage {
        guard buffer.count <= limits.maximumMessageSize else {
            throw SIPParseError(.messageTooLarge, "Message Too Large", statusCode: 513)
        }
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        var index = 0
        while index < buffer.count, buffer[index] == .cr || buffer[index] == .lf { index += 1 }
        guard index < buffer.count else { throw SIPParseError(.empty, "Empty Message") }

        // Lines until the empty line that ends the header section.
        var lines: [Range<Int>] = []
        var headerSectionEnded = false
        while index < buffer.count {
            let start = index
            var end = index
            while end < buffer.count, buffer[end] != .lf { end += 1 }
            let lineEnd = (end > start && buffer[end - 1] == .cr) ? end - 1 : end
            index = min(end + 1, buffer.count)
            if lineEnd - start > limits.maximumLineLength {
                throw SIPParseError(.lineTooLong, "Header Line Too Long")
            }
            if start == lineEnd {
                headerSectionEnded = end < buffer.count
                break
            }
            lines.append(start..<lineEnd)
            if lines.count > limits.maximumHeaderCount + 1 {
                throw SIPParseError(.tooManyHeaders, "Too Many Headers")
            }
        }
        guard let startLine = lines.first else { throw SIPParseError(.badStartLine, "Missing Start Line") }

        // Headers, unfolding continuation lines (RFC 3261 §7.3.1).
        var headers = SIPHeaders()
        var pendingName: SIPHeaderName?
        var pendingValue: [UInt8] = []
        var badHeaderLine = false
        func flush() {
            if let name = pendingName {
                headers.add(name, String(decoding: pendingValue, as: UTF8.self).trimmingSIPWhitespace())
            }
            pendingName = nil
            pendingValue.removeAll(keepingCapacity: true)
        }
        for line in lines.dropFirst() {
            let first = buffer[line.lowerBound]
            if first == .space || first == .tab {
                guard pendingName != nil else {
                    badHeaderLine = true
                    continue
                }
                // RFC 3261 §7.3.1: the CRLF and the whitespace around it fold into one SP.
                while let last = pendingValue.last, last == .space || last == .tab { pendingValue.removeLast() }
                var contentStart = line.lowerBound
                while contentStart < line.upperBound, buffer[contentStart] == .space || buffer[contentStart] == .tab {
                    contentStart += 1
                }
                if !pendingValue.isEmpty { pendingValue.append(.space) }
                pendingValue.append(contentsOf: buffer[contentStart..<line.upperBound])
                continue
            }
            flush()
            guard let colon = buffer[line].firstIndex(of: .colon) else {
                badHeaderLine = true
                continue
            }
            var nameEnd = colon
            while nameEnd > line.lowerBound, buffer[nameEnd - 1] == .space || buffer[nameEnd - 1] == .tab { nameEnd -= 1 }
            let nameBytes = buffer[line.lowerBound..<nameEnd]
            guard !nameBytes.isEmpty, nameBytes.allSatisfy({ $0.isSIPTokenCharacter }) else {
                badHeaderLine = true
                continue
            }
            pendingName = SIPHeaderName(String(decoding: nameBytes, as: UTF8.self))
            pendingValue.append(contentsOf: buffer[(colon + 1)..<line.upperBound])
        }
        flush()

        // The response context is only built on failure: no strings on the success path.
        func fail(_ code: SIPParseError.Code, _ reason: String, status: Int = 400) -> SIPParseError {
            SIPParseError(
                code, reason, statusCode: status,
                responseContext: Self.responseContext(headers: headers, startLine: buffer[startLine]))
        }
        if badHeaderLine { throw fail(.badHeaderLine, "Malformed Header Line") }
        if buffer[startLine].contains(0) { throw fail(.invalidBytes, "NUL Byte In Start Line") }

        // Body
        var body: [UInt8] = []
        let available = headerSectionEnded ? buffer.count - index : 0
        let contentLengthValues = headers.values(.contentLength)
        if let raw = contentLengthValues.first {
            // RFC 4475 §3.3.9: differing values leave no way to know where the body ends.
            guard contentLengthValues.count == 1 || Set(contentLengthValues).count == 1 else {
                throw fail(.badContentLength, "Conflicting Content-Length Values")
            }
            // RFC 4475 §3.1.2.3: a negative or non-numeric value is refused, never used as a count.
            guard !raw.isEmpty, raw.utf8.allSatisfy({ $0.isASCIIDigit }), raw.utf8.count <= 9, let length = Int(raw)
            else { throw fail(.badContentLength, "Malformed Content-Length") }
            // RFC 4475 §3.1.2.2: over a datagram, a Content-Length beyond the body is a 400;
            // RFC 3261 §18.3: bytes after the body are ignored.
            guard length <= available else { throw fail(.truncatedBody, "Content-Length Exceeds Body") }
            body = Array(buffer[index..<(index + length)])
        } else {
            if framing == .stream { throw fail(.badContentLength, "Missing Content-Length") }
            body = Array(buffer[index..<(index + available)])
        }

        // Start line and mandatory headers
        let message: SIPMessage
        let startBytes = Array(buffer[startLine])
        if startBytes.starts(with: Array("SIP/".utf8)) {
            message = .response(try parseStatusLine(startBytes, headers: headers, body: body, fail: fail))
        } else {
            message = .request(try parseRequestLine(startBytes, headers: headers, body: body, fail: fail))
        }
        try validateMandatoryHeaders(message, fail: fail)
        return message
    }

    private func parseRequestLine(
        _ line: [UInt8], headers: SIPHeaders, body: [UInt8], fail: (SIPParseError.Code, String, Int) -> SIPParseError
    ) throws(SIPParseError) -> SIPRequest {
        // RFC 3261 §7.1: Method SP Request-URI SP SIP-Version, single spaces.
        // RFC 4475 §3.1.2.8–10: LWS inside the URI, several SPs or trailing SPs are refused.
        let parts = line.split(separator: .space, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy({ $0.isSIPTokenCharacter }) else {
            throw fail(.badStartLine, "Malformed Request-Line", 400)
        }
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version.caseInsensitiveEquals("SIP/2.0") else {
            if version.uppercased().hasPrefix("SIP/") { throw fail(.badVersion, "Version Not Supported", 505) }
            throw fail(.badStartLine, "Malformed Request-Line", 400)
        }
        guard let uri = SIPURI(String(decoding: parts[1], as: UTF8.self)) else {
            throw fail(.badRequestURI, "Malformed Request-URI", 400)
        }
        // RFC 3261 §19.1.5 / RFC 4475 §3.1.2.11: headers are not allowed in a Request-URI.
        if uri.headers != nil { throw fail(.badRequestURI, "Request-URI Contains Headers", 400) }
        return SIPRequest(method: SIPMethod(String(decoding: parts[0], as: UTF8.self)), uri: uri, headers: headers, body: body)
    }

    private func parseStatusLine(
        _ line: [UInt8], headers: SIPHeaders, body: [UInt8], fail: (SIPParseError.Code, String, Int) -> SIPParseError
    ) throws(SIPParseError) -> SIPResponse {
        // RFC 3261 §7.2: SIP-Version SP Status-Code SP Reason-Phrase
        let parts = line.split(separator: .space, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, String(decoding: parts[0], as: UTF8.self).caseInsensitiveEquals("SIP/2.0") else {
            throw fail(.badVersion, "Version Not Supported", 505)
        }
        guard parts[1].count == 3, parts[1].allSatisfy({ $0.isASCIIDigit }),
            let code = Int(String(decoding: parts[1], as: UTF8.self)), (100...699).contains(code)
        else { throw fail(.badStartLine, "Malformed Status-Line", 400) }
        let reason = parts.count == 3 ? String(decoding: parts[2], as: UTF8.self) : ""
        return SIPResponse(statusCode: code, reasonPhrase: reason, headers: headers, body: body)
    }

    private func validateMandatoryHeaders(
        _ message: SIPMessage, fail: (SIPParseError.Code, String, Int) -> SIPParseError
    ) throws(SIPParseError) {
        let headers = message.headers
        // RFC 3261 §8.1.1: To, From, CSeq, Call-ID, Max-Forwards (requests) and Via are mandatory.
        for (name, label) in [(SIPHeaderName.via, "Via"), (.from, "From"), (.to, "To"), (.callID, "Call-ID"), (.cseq, "CSeq")]
        where headers[name] == nil {
            throw fail(.missingHeader, "Missing \(label) Header", 400)
        }
        for name in [SIPHeaderName.callID, .from, .to, .cseq] where headers.values(name).count > 1 {
            throw fail(.badHeaderValue, "Multiple \(name.canonical) Headers", 400)
        }
        guard let vias = Via.parseList(headers.values(.via)), !vias.isEmpty else {
            throw fail(.badHeaderValue, "Malformed Via Header", 400)
        }
        guard NameAddress(headers[.from]!) != nil else { throw fail(.badHeaderValue, "Malformed From Header", 400) }
        guard NameAddress(headers[.to]!) != nil else { throw fail(.badHeaderValue, "Malformed To Header", 400) }
        guard let cseq = CSeq(headers[.cseq]!) else { throw fail(.badHeaderValue, "Malformed CSeq Header", 400) }
        guard !headers[.callID]!.isEmpty else { throw fail(.badHeaderValue, "Malformed Call-ID Header", 400) }
        if case .request(let request) = message {
            guard cseq.method == request.method else {
                throw fail(.badHeaderValue, "CSeq Method Does Not Match Request", 400)
            }
            if let maxForwards = headers[.maxForwards] {
                // RFC 4475 §3.1.1.1: leading zeros ("0068") are valid.
                guard !maxForwards.isEmpty, maxForwards.utf8.allSatisfy({ $0.isASCIIDigit }), maxForwards.utf8.count <= 9,
                    let value = Int(maxForwards), value <= 255
                else { throw fail(.badHeaderValue, "Malformed Max-Forwards Header", 400) }
            }
        }
        // RFC 3261 §20.17 / RFC 4475 §3.1.2.12: the only time zone is "GMT".
        if let date = headers[.date], !date.hasSuffix(" GMT") {
            throw fail(.badHeaderValue, "Malformed Date Header", 400)
        }
        // RFC 3261 §20.10 / RFC 4475 §3.1.2.13: a URI with headers (or ',', '?') must be in <>.
        for contact in headers.values(.contact) where !contact.utf8.contains(.lessThan) {
            if contact.utf8.contains(.questionMark) { throw fail(.badHeaderValue, "Malformed Contact Header", 400) }
        }
        if let expires = headers[.expires] {
            guard expires.utf8.allSatisfy({ $0.isASCIIDigit }), !expires.isEmpty else {
                throw fail(.badHeaderValue, "Malformed Expires Header", 400)
            }
        }
    }

    static func responseContext(headers: SIPHeaders, startLine: Slice<UnsafeBufferPointer<UInt8>>) -> SIPParseError.ResponseContext? {
        guard let from = headers[.from], let to = headers[.to], let callID = headers[.callID], let cseq = headers[.cseq]
        else { return nil }
        let via = headers.values(.via)
        guard !via.isEmpty else { return nil }
        let isResponse = Array(startLine.prefix(4)) == Array("SIP/".utf8)
        let method = isResponse ? nil : startLine.split(separator: .space).first.map { SIPMethod(String(decoding: $0, as: UTF8.self)) }
        return SIPParseError.ResponseContext(
            isRequest: !isResponse, method: method, via: via, from: from, to: to, callID: callID, cseq: cseq)
    }
}
