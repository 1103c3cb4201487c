/// A header field name, compared case-insensitively, with RFC 3261 §7.3.3 compact forms
/// folded onto their long names (`v` is `Via`, `i` is `Call-ID`, …).
///
/// The canonical spelling is used when we serialize headers; names we do not know keep the
/// spelling they were given. Known names are one byte (`KnownHeader`): comparing, hashing and
/// recognising them from the wire (`SIPHeaderName.known(_:)`) never allocates.
public struct SIPHeaderName: Hashable, Sendable, CustomStringConvertible {
    /// The known header, or `nil` for an extension header spelled by `custom`.
    let known: KnownHeader?
    /// The spelling of an extension header; empty for known ones.
    let custom: String

    public init(_ name: String) {
        var name = name
        let known = name.withUTF8 { SIPHeaderName.known($0) }
        if let known {
            self.init(known: known)
        } else {
            self.init(customSpelling: name)
        }
    }

    /// An extension header's name, already known not to be a known one.
    init(customSpelling: String) {
        self.known = nil
        self.custom = customSpelling
    }

    init(known: KnownHeader) {
        self.known = known
        self.custom = ""
    }

    /// Lower-cased long form: the identity of the header.
    public var lowercased: String { known.map { $0.canonical.lowercased() } ?? custom.lowercased() }
    /// The spelling we write.
    public var canonical: String { known?.canonical ?? custom }

    public var description: String { canonical }

    public static func == (lhs: SIPHeaderName, rhs: SIPHeaderName) -> Bool {
        if lhs.known != nil || rhs.known != nil { return lhs.known == rhs.known }
        return lhs.custom.caseInsensitiveEquals(rhs.custom)
    }

    public func hash(into hasher: inout Hasher) {
        if let known {
            hasher.combine(known.rawValue)
        } else {
            hasher.combine(0 as UInt8)
            for byte in custom.utf8 { hasher.combine(byte.asciiLowercased) }
        }
    }

    public static var accept: SIPHeaderName { SIPHeaderName(known: .accept) }
    public static var acceptContact: SIPHeaderName { SIPHeaderName(known: .acceptContact) }
    public static var acceptEncoding: SIPHeaderName { SIPHeaderName(known: .acceptEncoding) }
    public static var allow: SIPHeaderName { SIPHeaderName(known: .allow) }
    public static var allowEvents: SIPHeaderName { SIPHeaderName(known: .allowEvents) }
    public static var authorization: SIPHeaderName { SIPHeaderName(known: .authorization) }
    public static var authenticationInfo: SIPHeaderName { SIPHeaderName(known: .authenticationInfo) }
    public static var callID: SIPHeaderName { SIPHeaderName(known: .callID) }
    public static var contact: SIPHeaderName { SIPHeaderName(known: .contact) }
    public static var contentDisposition: SIPHeaderName { SIPHeaderName(known: .contentDisposition) }
    public static var contentEncoding: SIPHeaderName { SIPHeaderName(known: .contentEncoding) }
    public static var contentLength: SIPHeaderName { SIPHeaderName(known: .contentLength) }
    public static var contentType: SIPHeaderName { SIPHeaderName(known: .contentType) }
    public static var cseq: SIPHeaderName { SIPHeaderName(known: .cseq) }
    public static var date: SIPHeaderName { SIPHeaderName(known: .date) }
    public static var event: SIPHeaderName { SIPHeaderName(known: .event) }
    public static var expires: SIPHeaderName { SIPHeaderName(known: .expires) }
    public static var from: SIPHeaderName { SIPHeaderName(known: .from) }
    public static var identity: SIPHeaderName { SIPHeaderName(known: .identity) }
    public static var maxForwards: SIPHeaderName { SIPHeaderName(known: .maxForwards) }
    public static var minExpires: SIPHeaderName { SIPHeaderName(known: .minExpires) }
    public static var path: SIPHeaderName { SIPHeaderName(known: .path) }
    public static var proxyAuthenticate: SIPHeaderName { SIPHeaderName(known: .proxyAuthenticate) }
    public static var proxyAuthorization: SIPHeaderName { SIPHeaderName(known: .proxyAuthorization) }
    public static var proxyRequire: SIPHeaderName { SIPHeaderName(known: .proxyRequire) }
    public static var recordRoute: SIPHeaderName { SIPHeaderName(known: .recordRoute) }
    public static var referTo: SIPHeaderName { SIPHeaderName(known: .referTo) }
    public static var referredBy: SIPHeaderName { SIPHeaderName(known: .referredBy) }
    public static var rejectContact: SIPHeaderName { SIPHeaderName(known: .rejectContact) }
    public static var replaces: SIPHeaderName { SIPHeaderName(known: .replaces) }
    public static var require: SIPHeaderName { SIPHeaderName(known: .require) }
    public static var retryAfter: SIPHeaderName { SIPHeaderName(known: .retryAfter) }
    public static var route: SIPHeaderName { SIPHeaderName(known: .route) }
    public static var server: SIPHeaderName { SIPHeaderName(known: .server) }
    public static var sessionExpires: SIPHeaderName { SIPHeaderName(known: .sessionExpires) }
    public static var subject: SIPHeaderName { SIPHeaderName(known: .subject) }
    public static var subscriptionState: SIPHeaderName { SIPHeaderName(known: .subscriptionState) }
    public static var supported: SIPHeaderName { SIPHeaderName(known: .supported) }
    public static var to: SIPHeaderName { SIPHeaderName(known: .to) }
    public static var unsupported: SIPHeaderName { SIPHeaderName(known: .unsupported) }
    public static var userAgent: SIPHeaderName { SIPHeaderName(known: .userAgent) }
    public static var via: SIPHeaderName { SIPHeaderName(known: .via) }
    public static var warning: SIPHeaderName { SIPHeaderName(known: .warning) }
    public static var wwwAuthenticate: SIPHeaderName { SIPHeaderName(known: .wwwAuthenticate) }
    static var requestDisposition: SIPHeaderName { SIPHeaderName(known: .requestDisposition) }
    static var identityInfo: SIPHeaderName { SIPHeaderName(known: .identityInfo) }

    /// The known header spelled by `bytes` (any case, long or RFC 3261 §7.3.3 compact form),
    /// found by length and first letter without building a string.
    static func known(_ bytes: UnsafeBufferPointer<UInt8>) -> KnownHeader? {
        guard let first = bytes.first else { return nil }
        let lower = first.asciiLowercased
        switch bytes.count {
        case 1:
            switch lower {
            case UInt8(ascii: "a"): return .acceptContact
            case UInt8(ascii: "b"): return .referredBy
            case UInt8(ascii: "c"): return .contentType
            case UInt8(ascii: "d"): return .requestDisposition
            case UInt8(ascii: "e"): return .contentEncoding
            case UInt8(ascii: "f"): return .from
            case UInt8(ascii: "i"): return .callID
            case UInt8(ascii: "j"): return .rejectContact
            case UInt8(ascii: "k"): return .supported
            case UInt8(ascii: "l"): return .contentLength
            case UInt8(ascii: "m"): return .contact
            case UInt8(ascii: "n"): return .identityInfo
            case UInt8(ascii: "o"): return .event
            case UInt8(ascii: "r"): return .referTo
            case UInt8(ascii: "s"): return .subject
            case UInt8(ascii: "t"): return .to
            case UInt8(ascii: "u"): return .allowEvents
            case UInt8(ascii: "v"): return .via
            case UInt8(ascii: "x"): return .sessionExpires
            case UInt8(ascii: "y"): return .identity
            default: return nil
            }
        case 2:
            switch lower {
            case UInt8(ascii: "t"):
                if bytes.equalsLowercased("to") { return .to }
                return nil
            default: return nil
            }
        case 3:
            switch lower {
            case UInt8(ascii: "v"):
                if bytes.equalsLowercased("via") { return .via }
                return nil
            default: return nil
            }
        case 4:
            switch lower {
            case UInt8(ascii: "c"):
                if bytes.equalsLowercased("cseq") { return .cseq }
                return nil
            case UInt8(ascii: "d"):
                if bytes.equalsLowercased("date") { return .date }
                return nil
            case UInt8(ascii: "f"):
                if bytes.equalsLowercased("from") { return .from }
                return nil
            case UInt8(ascii: "p"):
                if bytes.equalsLowercased("path") { return .path }
                return nil
            default: return nil
            }
        case 5:
            switch lower {
            case UInt8(ascii: "a"):
                if bytes.equalsLowercased("allow") { return .allow }
                return nil
            case UInt8(ascii: "e"):
                if bytes.equalsLowercased("event") { return .event }
                return nil
            case UInt8(ascii: "r"):
                if bytes.equalsLowercased("route") { return .route }
                return nil
            default: return nil
            }
        case 6:
            switch lower {
            case UInt8(ascii: "a"):
                if bytes.equalsLowercased("accept") { return .accept }
                return nil
            case UInt8(ascii: "s"):
                if bytes.equalsLowercased("server") { return .server }
                return nil
            default: return nil
            }
        case 7:
            switch lower {
            case UInt8(ascii: "c"):
                if bytes.equalsLowercased("call-id") { return .callID }
                if bytes.equalsLowercased("contact") { return .contact }
                return nil
            case UInt8(ascii: "e"):
                if bytes.equalsLowercased("expires") { return .expires }
                return nil
            case UInt8(ascii: "r"):
                if bytes.equalsLowercased("require") { return .require }
                return nil
            case UInt8(ascii: "s"):
                if bytes.equalsLowercased("subject") { return .subject }
                return nil
            case UInt8(ascii: "w"):
                if bytes.equalsLowercased("warning") { return .warning }
                return nil
            default: return nil
            }
        case 8:
            switch lower {
            case UInt8(ascii: "i"):
                if bytes.equalsLowercased("identity") { return .identity }
                return nil
            case UInt8(ascii: "r"):
                if bytes.equalsLowercased("refer-to") { return .referTo }
                if bytes.equalsLowercased("replaces") { return .replaces }
                return nil
            default: return nil
            }
        case 9:
            switch lower {
            case UInt8(ascii: "s"):
                if bytes.equalsLowercased("supported") { return .supported }
                return nil
            default: return nil
            }
        case 10:
            switch lower {
            case UInt8(ascii: "u"):
                if bytes.equalsLowercased("user-agent") { return .userAgent }
                return nil
            default: return nil
            }
        case 11:
            switch lower {
            case UInt8(ascii: "m"):
                if bytes.equalsLowercased("min-expires") { return .minExpires }
                return nil
            case UInt8(ascii: "r"):
                if bytes.equalsLowercased("referred-by") { return .referredBy }
                if bytes.equalsLowercased("retry-after") { return .retryAfter }
                return nil
            case UInt8(ascii: "u"):
                if bytes.equalsLowercased("unsupported") { return .unsupported }
                return nil
            default: return nil
            }
        case 12:
            switch lower {
            case UInt8(ascii: "a"):
                if bytes.equalsLowercased("allow-events") { return .allowEvents }
                return nil
            case UInt8(ascii: "c"):
                if bytes.equalsLowercased("content-type") { return .contentType }
                return nil
            case UInt8(ascii: "m"):
                if bytes.equalsLowercased("max-forwards") { return .maxForwards }
                return nil
            case UInt8(ascii: "r"):
                if bytes.equalsLowercased("record-route") { return .recordRoute }
                return nil
            default: return nil
            }
        case 13:
            switch lower {
            case UInt8(ascii: "a"):
                if bytes.equalsLowercased("authorization") { return .authorization }
                return nil
            case UInt8(ascii: "i"):
                if bytes.equalsLowercased("identity-info") { return .identityInfo }
                return nil
            case UInt8(ascii: "p"):
                if bytes.equalsLowercased("proxy-require") { return .proxyRequire }
                return nil
            default: return nil
            }
        case 14:
            switch lower {
            case UInt8(ascii: "a"):
                if bytes.equalsLowercased("accept-contact") { return .acceptContact }
                return nil
            case UInt8(ascii: "c"):
                if bytes.equalsLowercased("content-length") { return .contentLength }
                return nil
            case UInt8(ascii: "r"):
                if bytes.equalsLowercased("reject-contact") { return .rejectContact }
                return nil
            default: return nil
            }
        case 15:
            switch lower {
            case UInt8(ascii: "a"):
                if bytes.equalsLowercased("accept-encoding") { return .acceptEncoding }
                return nil
            case UInt8(ascii: "s"):
                if bytes.equalsLowercased("session-expires") { return .sessionExpires }
                return nil
            default: return nil
            }
        case 16:
            switch lower {
            case UInt8(ascii: "c"):
                if bytes.equalsLowercased("content-encoding") { return .contentEncoding }
                return nil
            case UInt8(ascii: "w"):
                if bytes.equalsLowercased("www-authenticate") { return .wwwAuthenticate }
                return nil
            default: return nil
            }
        case 18:
            switch lower {
            case UInt8(ascii: "p"):
                if bytes.equalsLowercased("proxy-authenticate") { return .proxyAuthenticate }
                return nil
            case UInt8(ascii: "s"):
                if bytes.equalsLowercased("subscription-state") { return .subscriptionState }
                return nil
            default: return nil
            }
        case 19:
            switch lower {
            case UInt8(ascii: "a"):
                if bytes.equalsLowercased("authentication-info") { return .authenticationInfo }
                return nil
            case UInt8(ascii: "c"):
                if bytes.equalsLowercased("content-disposition") { return .contentDisposition }
                return nil
            case UInt8(ascii: "p"):
                if bytes.equalsLowercased("proxy-authorization") { return .proxyAuthorization }
                return nil
            case UInt8(ascii: "r"):
                if bytes.equalsLowercased("request-disposition") { return .requestDisposition }
                return nil
            default: return nil
            }
        default: return nil
        }
    }
}

/// The header names BusyLamp knows, RFC 3261 §20 and the extensions it meets.
enum KnownHeader: UInt8, Sendable, CaseIterable {
    case accept = 1
    case acceptContact
    case acceptEncoding
    case allow
    case allowEvents
    case authorization
    case authenticationInfo
    case callID
    case contact
    case contentDisposition
    case contentEncoding
    case contentLength
    case contentType
    case cseq
    case date
    case event
    case expires
    case from
    case identity
    case maxForwards
    case minExpires
    case path
    case proxyAuthenticate
    case proxyAuthorization
    case proxyRequire
    case recordRoute
    case referTo
    case referredBy
    case rejectContact
    case replaces
    case require
    case retryAfter
    case route
    case server
    case sessionExpires
    case subject
    case subscriptionState
    case supported
    case to
    case unsupported
    case userAgent
    case via
    case warning
    case wwwAuthenticate
    case requestDisposition
    case identityInfo

    /// The spelling we write.
    var canonical: String {
        switch self {
        case .accept: return "Accept"
        case .acceptContact: return "Accept-Contact"
        case .acceptEncoding: return "Accept-Encoding"
        case .allow: return "Allow"
        case .allowEvents: return "Allow-Events"
        case .authorization: return "Authorization"
        case .authenticationInfo: return "Authentication-Info"
        case .callID: return "Call-ID"
        case .contact: return "Contact"
        case .contentDisposition: return "Content-Disposition"
        case .contentEncoding: return "Content-Encoding"
        case .contentLength: return "Content-Length"
        case .contentType: return "Content-Type"
        case .cseq: return "CSeq"
        case .date: return "Date"
        case .event: return "Event"
        case .expires: return "Expires"
        case .from: return "From"
        case .identity: return "Identity"
        case .maxForwards: return "Max-Forwards"
        case .minExpires: return "Min-Expires"
        case .path: return "Path"
        case .proxyAuthenticate: return "Proxy-Authenticate"
        case .proxyAuthorization: return "Proxy-Authorization"
        case .proxyRequire: return "Proxy-Require"
        case .recordRoute: return "Record-Route"
        case .referTo: return "Refer-To"
        case .referredBy: return "Referred-By"
        case .rejectContact: return "Reject-Contact"
        case .replaces: return "Replaces"
        case .require: return "Require"
        case .retryAfter: return "Retry-After"
        case .route: return "Route"
        case .server: return "Server"
        case .sessionExpires: return "Session-Expires"
        case .subject: return "Subject"
        case .subscriptionState: return "Subscription-State"
        case .supported: return "Supported"
        case .to: return "To"
        case .unsupported: return "Unsupported"
        case .userAgent: return "User-Agent"
        case .via: return "Via"
        case .warning: return "Warning"
        case .wwwAuthenticate: return "WWW-Authenticate"
        case .requestDisposition: return "Request-Disposition"
        case .identityInfo: return "Identity-Info"
        }
    }
}

extension UnsafeBufferPointer<UInt8> {
    /// ASCII case-insensitive comparison with a lower-case `literal` of letters, digits and `-`.
    @inline(__always)
    func equalsLowercased(_ literal: StaticString) -> Bool {
        guard literal.utf8CodeUnitCount == count else { return false }
        let other = literal.utf8Start
        for offset in 0..<count where self[offset].asciiLowercased != other[offset] { return false }
        return true
    }
}

extension UInt8 {
    /// `A`–`Z` mapped onto `a`–`z`; every other byte unchanged.
    @inline(__always)
    var asciiLowercased: UInt8 { self &- UInt8(ascii: "A") < 26 ? self | 0x20 : self }
}
