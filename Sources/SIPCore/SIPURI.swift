/// A SIP or SIPS URI (RFC 3261 §19.1), or any other absolute URI kept opaque (`tel:`,
/// `mailto:`; RFC 4475 §3.1.1.12 requires that we carry them).
public struct SIPURI: Hashable, Sendable, CustomStringConvertible {
    /// Lower-cased scheme: `sip`, `sips`, `tel`, …
    public var scheme: String
    /// The user part with `%HH` escapes resolved; `nil` when there is none.
    public var user: String?
    public var password: String?
    /// The host as written, IPv6 references with their brackets (`[2001:db8::1]`).
    public var host: String
    public var port: Int?
    public var parameters: SIPParameters
    /// The `?name=value&…` part, unparsed (without the `?`).
    public var headers: String?
    /// For a scheme other than sip/sips: everything after the colon.
    public var opaque: String?

    public init(
        scheme: String = "sip",
        user: String? = nil,
        password: String? = nil,
        host: String,
        port: Int? = nil,
        parameters: SIPParameters = SIPParameters(),
        headers: String? = nil
    ) {
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.parameters = parameters
        self.headers = headers
        self.opaque = nil
    }

    public var isSIP: Bool { scheme == "sip" || scheme == "sips" }

    /// The `transport` parameter, lower-cased.
    public var transport: String? { parameters.unquotedValue("transport")?.lowercased() }

    /// `user@host` without port or parameters: the address-of-record form used to find a line.
    public var addressOfRecord: String {
        if let user { return "\(user)@\(host.lowercased())" }
        return host.lowercased()
    }

    /// The host without IPv6 brackets, for socket addresses.
    public var hostWithoutBrackets: String {
        if host.hasPrefix("["), host.hasSuffix("]") { return String(host.dropFirst().dropLast()) }
        return host
    }

    public var description: String {
        if let opaque { return "\(scheme):\(opaque)" }
        var out = scheme + ":"
        if let user {
            out += SIPURI.escapeUser(user)
            if let password { out += ":" + password }
            out += "@"
        }
        out += host
        if let port { out += ":" + String(port) }
        out += parameters.serialized
        if let headers { out += "?" + headers }
        return out
    }

    /// Parses a URI; `nil` when it is not a well-formed absolute URI.
    public init?(_ text: String) {
        var text = text
        guard let uri = text.withUTF8(SIPURI.init(bytes:)) else { return nil }
        self = uri
    }

    init?(bytes: UnsafeBufferPointer<UInt8>) {
        var parameters = SIPParameters()
        guard let syntax = SIPURI.syntax(bytes, parameter: { parameters.set(bytes, name: $0, value: $1) }) else {
            return nil
        }
        func string(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }
        self.scheme = syntax.isSIP ? (syntax.scheme.count == 3 ? "sip" : "sips") : string(syntax.scheme).lowercased()
        self.user = nil
        self.password = syntax.password.map(string)
        self.host = string(syntax.host)
        self.port = syntax.port
        self.parameters = parameters
        self.headers = syntax.headers.map(string)
        self.opaque = syntax.opaque.map(string)
        if let user = syntax.user {
            let userBytes = bytes[user]
            self.user = userBytes.contains(UInt8(ascii: "%")) ? SIPURI.unescape(userBytes) : string(user)
        }
    }

    /// Where the parts of a URI are in its bytes.
    struct Syntax {
        var scheme: Range<Int>
        var isSIP: Bool
        var user: Range<Int>?
        var password: Range<Int>?
        var host: Range<Int> = 0..<0
        var port: Int?
        var headers: Range<Int>?
        /// Everything after the colon, for a scheme other than sip/sips.
        var opaque: Range<Int>?
    }

    /// Checks a URI (RFC 3261 §19.1 for sip/sips, any `scheme:` otherwise) without building
    /// strings; `parameter` sees every uri-parameter in order.
    static func syntax(
        _ bytes: UnsafeBufferPointer<UInt8>,
        parameter: (Range<Int>, Range<Int>?) -> Void
    ) -> Syntax? {
        guard let colon = bytes.firstIndex(of: .colon), colon > 0 else { return nil }
        let schemeBytes = bytes[..<colon]
        guard schemeBytes.first!.isASCIILetter,
            schemeBytes.allSatisfy({
                $0.isASCIILetter || $0.isASCIIDigit || $0 == UInt8(ascii: "+")
                    || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".")
            })
        else { return nil }
        let restStart = colon + 1
        let end = bytes.count
        guard restStart < end, !bytes[restStart...].contains(where: { $0 <= 0x20 || $0 == 0x7F }) else { return nil }
        let scheme = UnsafeBufferPointer(rebasing: bytes[..<colon])
        var syntax = Syntax(scheme: 0..<colon, isSIP: scheme.equalsLowercased("sip") || scheme.equalsLowercased("sips"))
        guard syntax.isSIP else {
            syntax.opaque = restStart..<end
            return syntax
        }

        // userinfo ends at the last '@': RFC 3261 §25.1 lets the user part hold ';', '?', '/'
        // (`user-unreserved`, RFC 4475 §3.1.1.2 and §3.1.1.9), while neither uri-parameters
        // (`paramchar`) nor headers (`hvalue`) nor hosts may hold an unescaped '@'.
        var index = restStart
        if let at = bytes[restStart...].lastIndex(of: .at) {
            var userEnd = at
            if let passwordColon = bytes[restStart..<at].firstIndex(of: .colon) {
                userEnd = passwordColon
                syntax.password = (passwordColon + 1)..<at
            }
            guard userEnd > restStart, SIPURI.isValidEscaping(bytes[restStart..<userEnd]) else { return nil }
            syntax.user = restStart..<userEnd
            index = at + 1
        }

        // hostport
        if index < end, bytes[index] == .openBracket {
            guard let close = bytes[index...].firstIndex(of: .closeBracket) else { return nil }
            let inner = bytes[(index + 1)..<close]
            guard !inner.isEmpty, inner.allSatisfy({ $0.isHexDigit || $0 == .colon || $0 == UInt8(ascii: ".") })
            else { return nil }
            syntax.host = index..<(close + 1)
            index = close + 1
        } else {
            let start = index
            while index < end, bytes[index].isHostCharacter { index += 1 }
            guard index > start, SIPURI.isValidHostName(bytes[start..<index]) else { return nil }
            syntax.host = start..<index
        }
        if index < end, bytes[index] == .colon {
            index += 1
            let start = index
            while index < end, bytes[index].isASCIIDigit { index += 1 }
            guard index - start <= 5, let port = UnsafeBufferPointer(rebasing: bytes[start..<index]).asciiDecimal,
                port <= 65535
            else { return nil }
            syntax.port = port
        }
        // uri-parameters and headers
        guard index < end else { return syntax }
        guard bytes[index] == .semicolon || bytes[index] == .questionMark else { return nil }
        while index < end, bytes[index] == .semicolon {
            index += 1
            let start = index
            while index < end, bytes[index] != .semicolon, bytes[index] != .questionMark { index += 1 }
            guard index > start else { return nil }
            if let equals = bytes[start..<index].firstIndex(of: .equals) {
                guard equals > start else { return nil }
                parameter(start..<equals, (equals + 1)..<index)
            } else {
                parameter(start..<index, nil)
            }
        }
        if index < end, bytes[index] == .questionMark { syntax.headers = (index + 1)..<end }
        return syntax
    }

    private static func isValidHostName(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        // A dotted name or IPv4 address: labels of alphanum and '-', not starting or ending with '-'.
        var labelStart = bytes.startIndex
        var index = bytes.startIndex
        while true {
            if index == bytes.endIndex || bytes[index] == UInt8(ascii: ".") {
                if labelStart == index {
                    // An empty label: only a trailing dot after at least one label is allowed.
                    return index == bytes.endIndex && index > bytes.startIndex
                }
                if bytes[labelStart] == UInt8(ascii: "-") || bytes[index - 1] == UInt8(ascii: "-") { return false }
                if index == bytes.endIndex { return true }
                labelStart = index + 1
            }
            index += 1
        }
    }

    /// `true` when every `%` starts a `%HH` escape.
    private static func isValidEscaping(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex, bytes[index + 1].isHexDigit, bytes[index + 2].isHexDigit else {
                    return false
                }
                index += 3
            } else {
                index += 1
            }
        }
        return true
    }

    static func unescape(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex, let high = bytes[index + 1].hexValue,
                    let low = bytes[index + 2].hexValue
                else { return nil }
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(byte)
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func escapeUser(_ user: String) -> String {
        var out = ""
        for byte in user.utf8 {
            if byte.isSIPTokenCharacter && byte != UInt8(ascii: "%") || byte == UInt8(ascii: "&")
                || byte == UInt8(ascii: "=")
                || byte == UInt8(ascii: "$") || byte == .comma || byte == .semicolon || byte == .questionMark
                || byte == .slash
            {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
            }
        }
        return out
    }
}

extension UInt8 {
    var isASCIILetter: Bool { (self | 0x20) >= UInt8(ascii: "a") && (self | 0x20) <= UInt8(ascii: "z") }
    var isASCIIDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
    var isHexDigit: Bool { hexValue != nil }
    var hexValue: UInt8? {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return self - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return self - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return self - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
    var isHostCharacter: Bool {
        isASCIILetter || isASCIIDigit || self == UInt8(ascii: "-") || self == UInt8(ascii: ".")
    }
}
