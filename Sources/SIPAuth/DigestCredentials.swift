/// The digest credentials of one `Authorization` or `Proxy-Authorization` header field value
/// (RFC 3261 §22.2, §25.1 `credentials`; RFC 7616 §3.4).
///
/// Parsing promises: the scheme `Digest` is matched case-insensitively; auth-params come in any
/// order, as tokens or quoted strings (with `\` escapes); unknown parameters are ignored;
/// a parameter given twice is an error; every input, however hostile, yields either a value or
/// a `DigestCredentialsError`, within the bounds of `Limits`.
public struct DigestCredentials: Sendable, Hashable {
    public var username: String
    public var realm: String
    public var nonce: String
    /// The `uri` the client hashed (RFC 3261 §22.4 `digest-uri`). It may differ from the
    /// Request-URI; see `DigestVerifier`.
    public var uri: String
    public var response: String
    /// `MD5` when absent (RFC 7616 §3.4: "If this is not present, it is assumed to be MD5").
    public var algorithm: DigestAlgorithm
    public var cnonce: String?
    public var opaque: String?
    /// `auth` when present: any other value is refused while parsing.
    public var qop: String?
    /// The `nc` value exactly as written (it enters the hash as text).
    public var nonceCountText: String?

    public init(
        username: String,
        realm: String,
        nonce: String,
        uri: String,
        response: String,
        algorithm: DigestAlgorithm = .md5,
        cnonce: String? = nil,
        opaque: String? = nil,
        qop: String? = nil,
        nonceCountText: String? = nil
    ) {
        self.username = username
        self.realm = realm
        self.nonce = nonce
        self.uri = uri
        self.response = response
        self.algorithm = algorithm
        self.cnonce = cnonce
        self.opaque = opaque
        self.qop = qop
        self.nonceCountText = nonceCountText
    }

    /// The numeric nonce-count, when `nc` is present.
    public var nonceCount: UInt32? { nonceCountText.flatMap { UInt32($0, radix: 16) } }

    /// Bounds on what the parser accepts, so that a hostile header costs little.
    public enum Limits {
        /// Whole header value. RFC 3261 sets none; real credentials are under 1 KiB
        /// (a SHA-256 response is 64 characters, our nonces 72).
        public static let maximumValueLength = 4096
        /// Auth-params in one value; RFC 7616 defines 12 directives.
        public static let maximumParameterCount = 32
        /// One parameter's name.
        public static let maximumNameLength = 32
        /// One parameter's value after unquoting (a `uri` may be long; all else is short).
        public static let maximumParameterValueLength = 1024
    }

    /// Parses a header field value such as
    /// `Digest username="bob", realm="biloxi.com", nonce="…", uri="sip:bob@biloxi.com", response="…"`.
    public init(parsing value: String) throws(DigestCredentialsError) {
        let bytes = Array(value.utf8)
        guard bytes.count <= Limits.maximumValueLength else {
            throw DigestCredentialsError(.tooLong, "credentials longer than \(Limits.maximumValueLength) bytes")
        }
        var scanner = AuthParamScanner(bytes: bytes)
        let parameters = try scanner.digestParameters()

        func required(_ name: String) throws(DigestCredentialsError) -> String {
            guard let value = parameters[name] else {
                throw DigestCredentialsError(.missingParameter, "no \(name) parameter")
            }
            return value
        }

        username = try required("username")
        realm = try required("realm")
        nonce = try required("nonce")
        uri = try required("uri")
        response = try required("response")
        cnonce = parameters["cnonce"]
        opaque = parameters["opaque"]

        if let name = parameters["algorithm"] {
            guard let algorithm = DigestAlgorithm(parameterValue: name) else {
                throw DigestCredentialsError(.unsupportedAlgorithm, "algorithm is not MD5 or SHA-256")
            }
            self.algorithm = algorithm
        } else {
            algorithm = .md5
        }

        if let qop = parameters["qop"] {
            // RFC 7616 §3.4: qop "MUST be one of the alternatives the server indicated it
            // supports"; we offer only "auth".
            guard qop.lowercased() == "auth" else {
                throw DigestCredentialsError(.unsupportedQualityOfProtection, "qop is not auth")
            }
            self.qop = qop
            // RFC 2617 §3.2.2: cnonce and nc "MUST be specified if a qop directive is sent".
            cnonce = try required("cnonce")
            let nc = try required("nc")
            guard (1...8).contains(nc.utf8.count), nc.utf8.allSatisfy(\.isHexDigit) else {
                throw DigestCredentialsError(.invalidNonceCount, "nc is not 1 to 8 hex digits")
            }
            // RFC 7616 §3.4: nc counts requests "including the current request", so it starts at 1.
            guard UInt32(nc, radix: 16) != 0 else {
                throw DigestCredentialsError(.invalidNonceCount, "nc is zero")
            }
            nonceCountText = nc
        } else {
            qop = nil
            nonceCountText = parameters["nc"]
        }
    }
}

extension UInt8 {
    var isHexDigit: Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
            || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(self)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(self)
    }
}

/// Reads `scheme 1*LWS auth-param *(COMMA auth-param)` (RFC 3261 §25.1) from bytes.
///
/// Lenient where phones are sloppy: values may be tokens or quoted strings for every parameter,
/// an unquoted value may contain any visible character but `,` and `"` (some phones leave the
/// `uri` unquoted), and empty list elements (`a=1,,b=2`) are skipped. Strict where it matters:
/// control characters, unterminated quotes, invalid UTF-8 and duplicates are errors.
struct AuthParamScanner {
    private let bytes: [UInt8]
    private var index = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// Lower-cased parameter names to unquoted values.
    mutating func digestParameters() throws(DigestCredentialsError) -> [String: String] {
        skipWhitespace()
        let scheme = readToken()
        guard !scheme.isEmpty else { throw DigestCredentialsError(.notDigest, "no authentication scheme") }
        guard String(decoding: scheme, as: UTF8.self).lowercased() == "digest" else {
            throw DigestCredentialsError(.notDigest, "scheme is not Digest")
        }
        guard index < bytes.count, isWhitespace(bytes[index]) else {
            throw DigestCredentialsError(.syntax, "no space after Digest")
        }

        var parameters: [String: String] = [:]
        while true {
            skipWhitespace()
            while index < bytes.count, bytes[index] == UInt8(ascii: ",") {
                index += 1
                skipWhitespace()
            }
            if index == bytes.count { break }

            let nameBytes = readToken()
            guard !nameBytes.isEmpty else {
                throw DigestCredentialsError(.syntax, "expected a parameter name at byte \(index)")
            }
            guard nameBytes.count <= DigestCredentials.Limits.maximumNameLength else {
                throw DigestCredentialsError(.tooLong, "parameter name too long")
            }
            let name = String(decoding: nameBytes, as: UTF8.self).lowercased()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "=") else {
                throw DigestCredentialsError(.syntax, "expected = after \(name)")
            }
            index += 1
            skipWhitespace()
            let value = try readValue(for: name)

            guard parameters[name] == nil else {
                throw DigestCredentialsError(.duplicateParameter, "\(name) appears twice")
            }
            guard parameters.count < DigestCredentials.Limits.maximumParameterCount else {
                throw DigestCredentialsError(
                    .tooLong,
                    "more than \(DigestCredentials.Limits.maximumParameterCount) parameters"
                )
            }
            parameters[name] = value

            skipWhitespace()
            if index == bytes.count { break }
            guard bytes[index] == UInt8(ascii: ",") else {
                throw DigestCredentialsError(.syntax, "expected , after \(name)")
            }
        }
        guard !parameters.isEmpty else { throw DigestCredentialsError(.syntax, "no parameters") }
        return parameters
    }

    private mutating func readValue(for name: String) throws(DigestCredentialsError) -> String {
        var value: [UInt8] = []
        if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
            index += 1
            var closed = false
            while index < bytes.count {
                var byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "\"") {
                    closed = true
                    break
                }
                if byte == UInt8(ascii: "\\") {
                    // RFC 3261 §25.1 quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                    guard index < bytes.count else { break }
                    byte = bytes[index]
                    index += 1
                }
                guard !isControl(byte) else {
                    throw DigestCredentialsError(.syntax, "control character in \(name)")
                }
                value.append(byte)
                guard value.count <= DigestCredentials.Limits.maximumParameterValueLength else {
                    throw DigestCredentialsError(.tooLong, "\(name) too long")
                }
            }
            guard closed else { throw DigestCredentialsError(.syntax, "unterminated quoted string in \(name)") }
        } else {
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: ",") || isWhitespace(byte) { break }
                guard byte != UInt8(ascii: "\""), !isControl(byte) else {
                    throw DigestCredentialsError(.syntax, "bad character in \(name)")
                }
                value.append(byte)
                index += 1
                guard value.count <= DigestCredentials.Limits.maximumParameterValueLength else {
                    throw DigestCredentialsError(.tooLong, "\(name) too long")
                }
            }
            guard !value.isEmpty else { throw DigestCredentialsError(.syntax, "empty value for \(name)") }
        }
        guard let text = String(validating: value, as: UTF8.self) else {
            throw DigestCredentialsError(.syntax, "invalid UTF-8 in \(name)")
        }
        return text
    }

    /// RFC 3261 §25.1 `token` characters.
    private mutating func readToken() -> ArraySlice<UInt8> {
        let start = index
        while index < bytes.count, isTokenCharacter(bytes[index]) { index += 1 }
        return bytes[start..<index]
    }

    private mutating func skipWhitespace() {
        while index < bytes.count, isWhitespace(bytes[index]) { index += 1 }
    }

    /// Folded lines arrive joined by the SIPCore parser, but a value built by hand may hold
    /// CR LF followed by space (LWS); treat all of them as white space.
    private func isWhitespace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r")
            || byte == UInt8(ascii: "\n")
    }

    private func isControl(_ byte: UInt8) -> Bool {
        (byte < 0x20 && byte != UInt8(ascii: "\t")) || byte == 0x7F
    }

    private func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "!"), UInt8(ascii: "%"), UInt8(ascii: "*"),
            UInt8(ascii: "_"), UInt8(ascii: "+"), UInt8(ascii: "`"), UInt8(ascii: "'"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
