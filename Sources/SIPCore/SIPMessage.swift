/// A SIP request (RFC 3261 §7.1).
public struct SIPRequest: Sendable, Hashable {
    public var method: SIPMethod
    public var uri: SIPURI
    public var headers: SIPHeaders
    public var body: [UInt8]

    public init(method: SIPMethod, uri: SIPURI, headers: SIPHeaders = SIPHeaders(), body: [UInt8] = []) {
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
    }
}

/// A SIP response (RFC 3261 §7.2).
public struct SIPResponse: Sendable, Hashable {
    public var statusCode: Int
    public var reasonPhrase: String
    public var headers: SIPHeaders
    public var body: [UInt8]

    public init(statusCode: Int, reasonPhrase: String? = nil, headers: SIPHeaders = SIPHeaders(), body: [UInt8] = []) {
        self.statusCode = statusCode
        self.reasonPhrase = reasonPhrase ?? SIPResponse.defaultReasonPhrase(for: statusCode)
        self.headers = headers
        self.body = body
    }

    public var isProvisional: Bool { statusCode < 200 }
    public var isSuccess: Bool { (200..<300).contains(statusCode) }

    /// The response with its headers `compacted()`: for a transaction that keeps it.
    public func compacted() -> SIPResponse {
        var copy = self
        copy.headers = headers.compacted()
        return copy
    }
}

/// Either kind of message, as the parser returns it.
public enum SIPMessage: Sendable, Hashable {
    case request(SIPRequest)
    case response(SIPResponse)

    public var headers: SIPHeaders {
        switch self {
        case .request(let request): return request.headers
        case .response(let response): return response.headers
        }
    }
}

/// What requests and responses share: headers and body, and typed views of the common headers.
public protocol SIPMessageProtocol: Sendable {
    var headers: SIPHeaders { get set }
    var body: [UInt8] { get set }
}

extension SIPRequest: SIPMessageProtocol {}
extension SIPResponse: SIPMessageProtocol {}

extension SIPMessageProtocol {
    public var callID: String? { headers[.callID] }
    public var cseq: CSeq? { headers[.cseq].flatMap(CSeq.init) }
    public var from: NameAddress? { headers[.from].flatMap(NameAddress.init) }
    public var to: NameAddress? { headers[.to].flatMap(NameAddress.init) }
    /// Every Via element, topmost first; empty when any is malformed.
    public var vias: [Via] { Via.parseList(headers.values(.via)) ?? [] }
    public var topVia: Via? { headers.values(.via).first.flatMap { splitSIPList($0).first }.flatMap(Via.init) }
    /// `nil` when a Contact element is malformed.
    public var contacts: [ContactValue]? { ContactValue.parseList(headers.values(.contact)) }
    public var expires: Int? { headers[.expires].flatMap { Int($0.trimmingSIPWhitespace()) } }
    public var maxForwards: Int? { headers[.maxForwards].flatMap { Int($0.trimmingSIPWhitespace()) } }
    public var contentType: String? { headers[.contentType] }
}

extension SIPResponse {
    /// RFC 3261 §21 and the extensions BusyLamp sends.
    public static func defaultReasonPhrase(for statusCode: Int) -> String {
        switch statusCode {
        case 100: return "Trying"
        case 180: return "Ringing"
        case 181: return "Call Is Being Forwarded"
        case 182: return "Queued"
        case 183: return "Session Progress"
        case 200: return "OK"
        case 202: return "Accepted"
        case 300: return "Multiple Choices"
        case 301: return "Moved Permanently"
        case 302: return "Moved Temporarily"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 407: return "Proxy Authentication Required"
        case 408: return "Request Timeout"
        case 410: return "Gone"
        case 413: return "Request Entity Too Large"
        case 414: return "Request-URI Too Long"
        case 415: return "Unsupported Media Type"
        case 416: return "Unsupported URI Scheme"
        case 420: return "Bad Extension"
        case 421: return "Extension Required"
        case 423: return "Interval Too Brief"
        case 480: return "Temporarily Unavailable"
        case 481: return "Call/Transaction Does Not Exist"
        case 482: return "Loop Detected"
        case 483: return "Too Many Hops"
        case 484: return "Address Incomplete"
        case 485: return "Ambiguous"
        case 486: return "Busy Here"
        case 487: return "Request Terminated"
        case 488: return "Not Acceptable Here"
        case 489: return "Bad Event"
        case 491: return "Request Pending"
        case 500: return "Server Internal Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Server Time-out"
        case 505: return "Version Not Supported"
        case 513: return "Message Too Large"
        case 600: return "Busy Everywhere"
        case 603: return "Decline"
        case 604: return "Does Not Exist Anywhere"
        case 606: return "Not Acceptable"
        default: return "Unknown"
        }
    }
}
