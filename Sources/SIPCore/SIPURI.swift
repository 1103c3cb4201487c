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
        scheme: String = "sip", user: String? = nil, password: String? = nil, host: String, port: Int? = nil,
        parameters: SIPParameters = SIPParameters(), headers: String? = nil
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
        let bytes = Array(text.utf8)
        guard let colon = bytes.firstIndex(of: .colon), colon > 0 else { return nil }
        let schemeBytes = bytes[..<colon]
        guard schemeBytes.first.map({ $0.isASCIILetter }) == true,
            schemeBytes.allSatisfy({ $0.isASCIILetter || $0.isASCIIDigit || $0 == UInt8(ascii: "+")
                || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") })
        else { return nil }
        let scheme = String(decoding: schemeBytes, as: UTF8.self).lowercased()
        let rest = Array(bytes[(colon + 1)...])
        guard !rest.isEmpty, !rest.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else { return nil }

        self.scheme = scheme
        self.user = nil
        self.password = nil
        self.port = nil
        self.parameters = SIPParameters()
        self.headers = nil
        self.opaque = nil
        self.host = ""

        guard scheme == "sip" || scheme == "sips" else {
            self.opaque = String(decoding: rest, as: UTF8.self)
            return
        }

        // userinfo ends at the last '@': RFC 3261 §25.1 lets the user part hold ';', '?', '/'
        // (`user-unreserved`, RFC 4475 §3.1.1.2 and §3.1.1.9), while neither uri-parameters
        // (`paramchar`) nor headers (`hvalue`) nor hosts may hold an unescaped '@'.
        var hostStart = 0
        if let at = rest.lastIndex(of: .at) {
            let userinfo = rest[..<at]
            var userBytes = userinfo[...]
            if let passwordColon = userinfo.firstIndex(of: .colon) {
                userBytes = userinfo[..<passwordColon]
                self.password = String(decoding: userinfo[(passwordColon + 1)...], as: UTF8.self)
            }
            guard !userBytes.isEmpty, let user = SIPURI.unescape(userBytes) else { return nil }
            self.user = user
            hostStart = at + 1
        }

        // hostport
        var index = hostStart
        if index < rest.count, rest[index] == .openBracket {
            guard let close = rest[index...].firstIndex(of: .closeBracket) else { return nil }
            let inner = rest[(index + 1)..<close]
            guard !inner.isEmpty, inner.allSatisfy({ $0.isHexDigit || $0 == .colon || $0 == UInt8(ascii: ".") })
            else { return nil }
            self.host = String(decoding: rest[index...close], as: UTF8.self)
            index = close + 1
        } else {
            let start = index
            while index < rest.count, rest[index].isHostCharacter { index += 1 }
            guard index > start else { return nil }
            self.host = String(decoding: rest[start..<index], as: UTF8.self)
            guard SIPURI.isValidHostName(rest[start..<index]) else { return nil }
        }
        if index < rest.count, rest[index] == .colon {
            index += 1
            let start = index
            while index < rest.count, rest[index].isASCIIDigit { index += 1 }
            guard index > start, index - start <= 5, let port = Int(String(decoding: rest[start..<index], as: UTF8.self)),
                port <= 65535
            else { return nil }
            self.port = port
        }
        // uri-parameters and headers
        let tail = Array(rest[index...])
        var scanner = HeaderValueScanner(bytes: tail)
        if !tail.isEmpty {
            guard tail[0] == .semicolon || tail[0] == .questionMark else { return nil }
            var parameters = SIPParameters()
            while scanner.current == .semicolon {
                scanner.position += 1
                let start = scanner.position
                while let byte = scanner.current, byte != .semicolon, byte != .questionMark { scanner.position += 1 }
                let parameter = tail[start..<scanner.position]
                guard !parameter.isEmpty else { return nil }
                if let equals = parameter.firstIndex(of: .equals) {
                    let name = String(decoding: parameter[..<equals], as: UTF8.self)
                    guard !name.isEmpty else { return nil }
                    parameters.set(name, String(decoding: parameter[(equals + 1)...], as: UTF8.self))
                } else {
                    parameters.set(String(decoding: parameter, as: UTF8.self), nil)
                }
            }
            self.parameters = parameters
            if scanner.current == .questionMark {
                self.headers = String(decoding: tail[(scanner.position + 1)...], as: UTF8.self)
            }
        }
    }

    private static func isValidHostName(_ bytes: ArraySlice<UInt8>) -> Bool {
        // A dotted name or IPv4 address: labels of alphanum and '-', not starting or ending with '-'.
        let labels = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        for (offset, label) in labels.enumerated() {
            if label.isEmpty { return offset == labels.count - 1 && offset > 0 }  // trailing dot allowed
            if label.first == UInt8(ascii: "-") || label.last == UInt8(ascii: "-") { return false }
        }
        return true
    }

    static func unescape(_ bytes: ArraySlice<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex, let high = bytes[index + 1].hexValue, let low = bytes[index + 2].hexValue
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
            if byte.isSIPTokenCharacter && byte != UInt8(ascii: "%") || byte == UInt8(ascii: "&") || byte == UInt8(ascii: "=")
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
    var isHostCharacter: Bool { isASCIILetter || isASCIIDigit || self == UInt8(ascii: "-") || self == UInt8(ascii: ".") }
}
