import NIOCore
import SIPCore

/// Writes the tool's SIP messages straight into `ByteBuffer`s: constant text as static
/// strings, the variable parts (user, tags, branch, credentials) appended in place, so a
/// message costs one buffer and no intermediate `String`.
enum SIPMessages {
    /// What a request needs beyond its method: the parts that change from phone to phone.
    struct Request {
        var method: StaticString
        var requestURI: String
        /// `host:port` of the socket sending it (Via sent-by, Contact).
        var local: String
        var branch: String
        var fromValue: String
        var toValue: String
        var callID: String
        var cseq: UInt32
        var contactUser: String?
        var routes: [String] = []
        /// Fixed header lines, each ending in CRLF (`Event: dialog\r\n…`).
        var fixedHeaders: String = ""
        /// `Authorization` or `Proxy-Authorization`, with its value.
        var credentials: (name: StaticString, value: String)?
        var body: String = ""
        var contentType: StaticString?
    }

    static func write(_ request: Request, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(
            capacity: 640 + request.body.utf8.count + (request.credentials?.value.utf8.count ?? 0)
        )
        buffer.writeStaticString(request.method)
        buffer.writeStaticString(" ")
        buffer.writeString(request.requestURI)
        buffer.writeStaticString(" SIP/2.0\r\nVia: SIP/2.0/UDP ")
        buffer.writeString(request.local)
        buffer.writeStaticString(";branch=")
        buffer.writeString(request.branch)
        buffer.writeStaticString(";rport\r\nFrom: ")
        buffer.writeString(request.fromValue)
        buffer.writeStaticString("\r\nTo: ")
        buffer.writeString(request.toValue)
        buffer.writeStaticString("\r\nCall-ID: ")
        buffer.writeString(request.callID)
        buffer.writeStaticString("\r\nCSeq: ")
        buffer.writeString(String(request.cseq))
        buffer.writeStaticString(" ")
        buffer.writeStaticString(request.method)
        buffer.writeStaticString("\r\n")
        for route in request.routes {
            buffer.writeStaticString("Route: ")
            buffer.writeString(route)
            buffer.writeStaticString("\r\n")
        }
        if let user = request.contactUser {
            buffer.writeStaticString("Contact: <sip:")
            buffer.writeString(user)
            buffer.writeStaticString("@")
            buffer.writeString(request.local)
            buffer.writeStaticString(">\r\n")
        }
        buffer.writeStaticString("Max-Forwards: 70\r\n")
        buffer.writeString(request.fixedHeaders)
        if let credentials = request.credentials {
            buffer.writeStaticString(credentials.name)
            buffer.writeStaticString(": ")
            buffer.writeString(credentials.value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("User-Agent: busylamp-load\r\n")
        if let contentType = request.contentType {
            buffer.writeStaticString("Content-Type: ")
            buffer.writeStaticString(contentType)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("Content-Length: ")
        buffer.writeString(String(request.body.utf8.count))
        buffer.writeStaticString("\r\n\r\n")
        buffer.writeString(request.body)
        return buffer
    }

    /// A response to `request` (RFC 3261 §8.2.6.2): its Vias, From, Call-ID and CSeq copied,
    /// its To with `toTag` added when it has none; Record-Route copied for the dialog's
    /// responses of a callee (§12.1.1).
    static func response(
        to request: SIPRequest,
        status: Int,
        reason: String,
        toTag: String? = nil,
        contact: String? = nil,
        copyRecordRoute: Bool = false,
        sdp: String? = nil,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 512 + (sdp?.utf8.count ?? 0))
        buffer.writeStaticString("SIP/2.0 ")
        buffer.writeString(String(status))
        buffer.writeStaticString(" ")
        buffer.writeString(reason)
        buffer.writeStaticString("\r\n")
        // only the fields copied are read: each read makes a String
        for via in request.headers.values(.via) { header(&buffer, "Via: ", via) }
        header(&buffer, "From: ", request.headers[.from] ?? "")
        buffer.writeStaticString("To: ")
        let to = request.headers[.to] ?? ""
        buffer.writeString(to)
        if let toTag, !to.contains(";tag=") {
            buffer.writeStaticString(";tag=")
            buffer.writeString(toTag)
        }
        buffer.writeStaticString("\r\n")
        header(&buffer, "Call-ID: ", request.headers[.callID] ?? "")
        header(&buffer, "CSeq: ", request.headers[.cseq] ?? "")
        if copyRecordRoute {
            for route in request.headers.values(.recordRoute) { header(&buffer, "Record-Route: ", route) }
        }
        if let contact {
            buffer.writeStaticString("Contact: ")
            buffer.writeString(contact)
            buffer.writeStaticString("\r\n")
        }
        if let sdp {
            buffer.writeStaticString("Content-Type: application/sdp\r\nContent-Length: ")
            buffer.writeString(String(sdp.utf8.count))
            buffer.writeStaticString("\r\n\r\n")
            buffer.writeString(sdp)
        } else {
            buffer.writeStaticString("Content-Length: 0\r\n\r\n")
        }
        return buffer
    }

    private static func header(_ buffer: inout ByteBuffer, _ name: StaticString, _ value: String) {
        buffer.writeStaticString(name)
        buffer.writeString(value)
        buffer.writeStaticString("\r\n")
    }

    /// An SDP offer or answer for one PCMU audio stream on a port nobody listens to: the tool
    /// carries no media.
    static func sdp(user: String, version: Int) -> String {
        "v=0\r\no=\(user) \(version) 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    }

    /// The URI inside `<…>` of a Contact (or the whole value without parameters).
    static func uri(ofContact value: String) -> String {
        if let open = value.firstIndex(of: "<"), let close = value[open...].firstIndex(of: ">") {
            return String(value[value.index(after: open)..<close])
        }
        return String(value.prefix { $0 != ";" }).trimmingCharacters(in: .whitespaces)
    }
}

/// Where a dialog-info NOTIFY body says the watched line is (RFC 4235 §4.1.6), as the
/// SIPp-based benches classify it: any confirmed dialog → confirmed; else any
/// trying/proceeding/early one → early; else (terminated or no dialog) → idle.
enum LineLamp: Int, Sendable {
    case early = 0
    case confirmed = 1
    case idle = 2

    init(dialogInfo body: [UInt8]) {
        if body.contains(subsequence: Self.confirmedText) {
            self = .confirmed
        } else if body.contains(subsequence: Self.earlyText) || body.contains(subsequence: Self.tryingText)
            || body.contains(subsequence: Self.proceedingText)
        {
            self = .early
        } else {
            self = .idle
        }
    }

    private static let confirmedText = Array(">confirmed<".utf8)
    private static let earlyText = Array(">early<".utf8)
    private static let tryingText = Array(">trying<".utf8)
    private static let proceedingText = Array(">proceeding<".utf8)
}

extension Array where Element == UInt8 {
    func contains(subsequence needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, count >= needle.count else { return false }
        let first = needle[0]
        var index = 0
        let last = count - needle.count
        while index <= last {
            if self[index] == first {
                var matched = true
                for offset in 1..<needle.count where self[index + offset] != needle[offset] {
                    matched = false
                    break
                }
                if matched { return true }
            }
            index += 1
        }
        return false
    }
}
