/// Cuts a byte stream (TCP, TLS) into SIP messages by Content-Length (RFC 3261 §18.3), and
/// recognises RFC 5626 §4.4.1 keep-alives between messages.
///
/// Feed it bytes as they arrive (`append`) and pull what is complete (`next`). It holds at most
/// `limits.maximumMessageSize` bytes for one message: a peer that sends more, or a header
/// section without an end, is a framing error after which the connection must close.
public struct SIPStreamFramer: Sendable {
    public enum Frame: Sendable, Equatable {
        /// The bytes of one complete message, ready for `SIPParser` with `.stream` framing.
        case message([UInt8])
        /// A `CRLFCRLF` ping: answer it with a single `CRLF` pong.
        case keepAlivePing
    }

    public enum FramingError: Error, Sendable, Equatable {
        /// The header section or the message is larger than the limit.
        case messageTooLarge
        /// Content-Length is missing or not a number: the stream cannot be resynchronised.
        case badContentLength
    }

    public let limits: SIPParserLimits
    private var buffer: [UInt8] = []
    private var readIndex = 0

    public init(limits: SIPParserLimits = .default) { self.limits = limits }

    /// Bytes held for an incomplete message.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Whether part of a message is held: bytes other than the CRs and LFs of keep-alives
    /// (a phone's lone CRLF waits here for its pair, and is not a message begun).
    public var holdsPartialMessage: Bool {
        buffer[readIndex...].contains { $0 != .cr && $0 != .lf }
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if readIndex > 0, readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, or `nil` when more bytes are needed.
    public mutating func next() throws(FramingError) -> Frame? {
        // Keep-alives and stray CRLFs between messages.
        if buffer.count - readIndex >= 4, buffer[readIndex] == .cr, buffer[readIndex + 1] == .lf,
            buffer[readIndex + 2] == .cr, buffer[readIndex + 3] == .lf
        {
            readIndex += 4
            compact()
            return .keepAlivePing
        }
        while readIndex < buffer.count, buffer[readIndex] == .cr || buffer[readIndex] == .lf {
            // A lone CRLF (a pong, or a partial ping): only skip when not possibly a ping prefix.
            if buffer.count - readIndex < 4 { return nil }
            readIndex += 1
        }
        guard readIndex < buffer.count else { return nil }

        guard let headerEnd = findHeaderEnd() else {
            if buffer.count - readIndex > limits.maximumMessageSize { throw .messageTooLarge }
            return nil
        }
        guard let contentLength = contentLength(headerSection: readIndex..<headerEnd.lowerBound) else {
            throw .badContentLength
        }
        let total = headerEnd.upperBound - readIndex + contentLength
        guard total <= limits.maximumMessageSize else { throw .messageTooLarge }
        guard buffer.count - readIndex >= total else { return nil }
        let message = Array(buffer[readIndex..<(readIndex + total)])
        readIndex += total
        compact()
        return .message(message)
    }

    /// After ``next()`` threw ``FramingError/badContentLength``: the header section of the
    /// message that could not be framed, through its blank line, so that the 400 RFC 3261 §18.3
    /// asks for can be built from it (``SIPParser`` names the fault) before the connection closes.
    public func headerSectionOfUnframedMessage() -> [UInt8]? {
        guard let end = findHeaderEnd() else { return nil }
        return Array(buffer[readIndex..<end.upperBound])
    }

    private mutating func compact() {
        if readIndex > 4096, readIndex * 2 > buffer.count {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
    }

    /// The range of the blank line (`CRLFCRLF`, or bare `LFLF`) that ends the header section.
    private func findHeaderEnd() -> Range<Int>? {
        var index = readIndex
        while index < buffer.count {
            if buffer[index] == .lf {
                if index + 1 < buffer.count, buffer[index + 1] == .lf { return index..<(index + 2) }
                if index + 2 < buffer.count, buffer[index + 1] == .cr, buffer[index + 2] == .lf {
                    return index..<(index + 3)
                }
            }
            index += 1
        }
        return nil
    }

    private func contentLength(headerSection: Range<Int>) -> Int? {
        var lineStart = headerSection.lowerBound
        var found: Int?
        var index = headerSection.lowerBound
        while index <= headerSection.upperBound {
            if index == headerSection.upperBound || buffer[index] == .lf {
                if let value = contentLengthValue(line: lineStart..<index) {
                    guard found == nil || found == value else { return nil }
                    found = value
                } else if isContentLengthLine(lineStart..<index) {
                    return nil
                }
                lineStart = index + 1
            }
            index += 1
        }
        return found
    }

    private func isContentLengthLine(_ line: Range<Int>) -> Bool {
        guard let colon = buffer[line].firstIndex(of: .colon) else { return false }
        var nameStart = line.lowerBound
        var nameEnd = colon
        while nameStart < nameEnd, buffer[nameStart].isSIPWhitespace { nameStart += 1 }
        while nameEnd > nameStart, buffer[nameEnd - 1].isSIPWhitespace { nameEnd -= 1 }
        return buffer.withUnsafeBufferPointer {
            SIPHeaderName.known(UnsafeBufferPointer(rebasing: $0[nameStart..<nameEnd])) == .contentLength
        }
    }

    private func contentLengthValue(line: Range<Int>) -> Int? {
        guard isContentLengthLine(line), let colon = buffer[line].firstIndex(of: .colon) else { return nil }
        var valueStart = colon + 1
        var valueEnd = line.upperBound
        while valueStart < valueEnd, buffer[valueStart].isSIPWhitespace { valueStart += 1 }
        while valueEnd > valueStart, buffer[valueEnd - 1].isSIPWhitespace { valueEnd -= 1 }
        guard valueEnd - valueStart <= 9 else { return nil }
        return buffer.withUnsafeBufferPointer { UnsafeBufferPointer(rebasing: $0[valueStart..<valueEnd]).asciiDecimal }
    }
}
