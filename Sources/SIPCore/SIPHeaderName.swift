/// A header field name, compared case-insensitively, with RFC 3261 §7.3.3 compact forms
/// folded onto their long names (`v` is `Via`, `i` is `Call-ID`, …).
///
/// The canonical spelling is used when we serialize headers we built ourselves; headers we only
/// carry keep the spelling they arrived with.
public struct SIPHeaderName: Hashable, Sendable, CustomStringConvertible {
    /// Lower-cased long form: the identity of the header.
    public let lowercased: String
    /// The spelling we write.
    public let canonical: String

    public init(_ name: String) {
        let lower = name.lowercased()
        if let known = SIPHeaderName.byLowercasedName[lower] {
            self = known
        } else {
            self.lowercased = lower
            self.canonical = name
        }
    }

    private init(canonical: String) {
        self.canonical = canonical
        self.lowercased = canonical.lowercased()
    }

    public var description: String { canonical }

    public static func == (lhs: SIPHeaderName, rhs: SIPHeaderName) -> Bool { lhs.lowercased == rhs.lowercased }
    public func hash(into hasher: inout Hasher) { hasher.combine(lowercased) }

    public static let accept = SIPHeaderName(canonical: "Accept")
    public static let acceptContact = SIPHeaderName(canonical: "Accept-Contact")
    public static let acceptEncoding = SIPHeaderName(canonical: "Accept-Encoding")
    public static let allow = SIPHeaderName(canonical: "Allow")
    public static let allowEvents = SIPHeaderName(canonical: "Allow-Events")
    public static let authorization = SIPHeaderName(canonical: "Authorization")
    public static let authenticationInfo = SIPHeaderName(canonical: "Authentication-Info")
    public static let callID = SIPHeaderName(canonical: "Call-ID")
    public static let contact = SIPHeaderName(canonical: "Contact")
    public static let contentDisposition = SIPHeaderName(canonical: "Content-Disposition")
    public static let contentEncoding = SIPHeaderName(canonical: "Content-Encoding")
    public static let contentLength = SIPHeaderName(canonical: "Content-Length")
    public static let contentType = SIPHeaderName(canonical: "Content-Type")
    public static let cseq = SIPHeaderName(canonical: "CSeq")
    public static let date = SIPHeaderName(canonical: "Date")
    public static let event = SIPHeaderName(canonical: "Event")
    public static let expires = SIPHeaderName(canonical: "Expires")
    public static let from = SIPHeaderName(canonical: "From")
    public static let identity = SIPHeaderName(canonical: "Identity")
    public static let maxForwards = SIPHeaderName(canonical: "Max-Forwards")
    public static let minExpires = SIPHeaderName(canonical: "Min-Expires")
    public static let path = SIPHeaderName(canonical: "Path")
    public static let proxyAuthenticate = SIPHeaderName(canonical: "Proxy-Authenticate")
    public static let proxyAuthorization = SIPHeaderName(canonical: "Proxy-Authorization")
    public static let proxyRequire = SIPHeaderName(canonical: "Proxy-Require")
    public static let recordRoute = SIPHeaderName(canonical: "Record-Route")
    public static let referTo = SIPHeaderName(canonical: "Refer-To")
    public static let referredBy = SIPHeaderName(canonical: "Referred-By")
    public static let rejectContact = SIPHeaderName(canonical: "Reject-Contact")
    public static let replaces = SIPHeaderName(canonical: "Replaces")
    public static let require = SIPHeaderName(canonical: "Require")
    public static let retryAfter = SIPHeaderName(canonical: "Retry-After")
    public static let route = SIPHeaderName(canonical: "Route")
    public static let server = SIPHeaderName(canonical: "Server")
    public static let sessionExpires = SIPHeaderName(canonical: "Session-Expires")
    public static let subject = SIPHeaderName(canonical: "Subject")
    public static let subscriptionState = SIPHeaderName(canonical: "Subscription-State")
    public static let supported = SIPHeaderName(canonical: "Supported")
    public static let to = SIPHeaderName(canonical: "To")
    public static let unsupported = SIPHeaderName(canonical: "Unsupported")
    public static let userAgent = SIPHeaderName(canonical: "User-Agent")
    public static let via = SIPHeaderName(canonical: "Via")
    public static let warning = SIPHeaderName(canonical: "Warning")
    public static let wwwAuthenticate = SIPHeaderName(canonical: "WWW-Authenticate")

    /// RFC 3261 §7.3.3 and the compact forms later RFCs registered (IANA "Header Fields").
    static let compactForms: [String: SIPHeaderName] = [
        "a": .acceptContact, "b": .referredBy, "c": .contentType, "d": .requestDisposition,
        "e": .contentEncoding, "f": .from, "i": .callID, "j": .rejectContact, "k": .supported,
        "l": .contentLength, "m": .contact, "n": .identityInfo, "o": .event, "r": .referTo,
        "s": .subject, "t": .to, "u": .allowEvents, "v": .via, "x": .sessionExpires, "y": .identity,
    ]
    static let requestDisposition = SIPHeaderName(canonical: "Request-Disposition")
    static let identityInfo = SIPHeaderName(canonical: "Identity-Info")

    static let byLowercasedName: [String: SIPHeaderName] = {
        let all: [SIPHeaderName] = [
            .accept, .acceptContact, .acceptEncoding, .allow, .allowEvents, .authorization,
            .authenticationInfo, .callID, .contact, .contentDisposition, .contentEncoding,
            .contentLength, .contentType, .cseq, .date, .event, .expires, .from, .identity,
            .maxForwards, .minExpires, .path, .proxyAuthenticate, .proxyAuthorization,
            .proxyRequire, .recordRoute, .referTo, .referredBy, .rejectContact, .replaces,
            .require, .retryAfter, .route, .server, .sessionExpires, .subject, .subscriptionState,
            .supported, .to, .unsupported, .userAgent, .via, .warning, .wwwAuthenticate,
            .requestDisposition, .identityInfo,
        ]
        var table: [String: SIPHeaderName] = [:]
        for name in all { table[name.lowercased] = name }
        for (short, name) in compactForms { table[short] = name }
        return table
    }()
}
