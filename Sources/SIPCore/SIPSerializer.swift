import NIOCore

extension SIPRequest {
    /// The request on the wire, with `Content-Length` set to the body's size.
    public func serialize(into buffer: inout ByteBuffer) {
        buffer.writeString(method.rawValue)
        buffer.writeStaticString(" ")
        buffer.writeString(uri.description)
        buffer.writeStaticString(" SIP/2.0\r\n")
        writeHeadersAndBody(headers: headers, body: body, into: &buffer)
    }

    public var serializedBytes: [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: 512 + body.count)
        serialize(into: &buffer)
        return Array(buffer.readableBytesView)
    }
}

extension SIPResponse {
    /// The response on the wire, with `Content-Length` set to the body's size.
    public func serialize(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("SIP/2.0 ")
        buffer.writeString(String(statusCode))
        buffer.writeStaticString(" ")
        buffer.writeString(reasonPhrase)
        buffer.writeStaticString("\r\n")
        writeHeadersAndBody(headers: headers, body: body, into: &buffer)
    }

    public var serializedBytes: [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: 512 + body.count)
        serialize(into: &buffer)
        return Array(buffer.readableBytesView)
    }
}

extension SIPMessage {
    public func serialize(into buffer: inout ByteBuffer) {
        switch self {
        case .request(let request): request.serialize(into: &buffer)
        case .response(let response): response.serialize(into: &buffer)
        }
    }

    public var serializedBytes: [UInt8] {
        switch self {
        case .request(let request): return request.serializedBytes
        case .response(let response): return response.serializedBytes
        }
    }
}

private func writeHeadersAndBody(headers: SIPHeaders, body: [UInt8], into buffer: inout ByteBuffer) {
    // Content-Length is always written, with the body's real size: RFC 3261 §20.14 requires it
    // on stream transports and it costs nothing on UDP. It stays where the first one was, so
    // that parse → serialize → parse keeps the header order.
    // Values nobody touched are written from the bytes they arrived in.
    var wroteContentLength = false
    for entry in headers.entries {
        if entry.known == .contentLength {
            guard !wroteContentLength else { continue }
            wroteContentLength = true
            writeContentLength(body.count, into: &buffer)
            continue
        }
        if let known = entry.known {
            buffer.writeString(known.canonical)
        } else if entry.builtName >= 0 {
            buffer.writeString(headers.strings[Int(entry.builtName)])
        } else {
            buffer.writeBytes(headers.source[entry.nameRange])
        }
        buffer.writeStaticString(": ")
        headers.withValueBytes(entry) { _ = buffer.writeBytes($0) }
        buffer.writeStaticString("\r\n")
    }
    if !wroteContentLength { writeContentLength(body.count, into: &buffer) }
    buffer.writeStaticString("\r\n")
    buffer.writeBytes(body)
}

private func writeContentLength(_ length: Int, into buffer: inout ByteBuffer) {
    buffer.writeStaticString("Content-Length: ")
    buffer.writeString(String(length))
    buffer.writeStaticString("\r\n")
}
