/// One digest challenge: the value of a `WWW-Authenticate` (401) or `Proxy-Authenticate` (407)
/// header field (RFC 3261 §22.1, §25.1 `challenge`; RFC 7616 §3.3).
///
/// `headerValue` is the text we send, e.g.
/// `Digest realm="sip.example", nonce="…", opaque="…", algorithm=MD5, qop="auth"`, followed by
/// `, stale=TRUE` when the request's nonce had expired.
public struct DigestChallenge: Sendable, Hashable {
    public var realm: String
    public var nonce: String
    public var opaque: String?
    public var algorithm: DigestAlgorithm
    /// Whether `qop="auth"` is offered. We never offer `auth-int`.
    public var offersQualityOfProtection: Bool
    /// RFC 7616 §3.3: "A case-insensitive flag indicating that the previous request from the
    /// client was rejected because the nonce value was stale." We write `TRUE`, as RFC 2617 did.
    public var stale: Bool

    public init(
        realm: String,
        nonce: String,
        opaque: String? = nil,
        algorithm: DigestAlgorithm,
        offersQualityOfProtection: Bool = true,
        stale: Bool = false
    ) {
        self.realm = realm
        self.nonce = nonce
        self.opaque = opaque
        self.algorithm = algorithm
        self.offersQualityOfProtection = offersQualityOfProtection
        self.stale = stale
    }

    /// The header field value, in the order phones are known to accept.
    public var headerValue: String {
        var text = "Digest realm=\(quoted(realm)), nonce=\(quoted(nonce))"
        if let opaque { text += ", opaque=\(quoted(opaque))" }
        text += ", algorithm=\(algorithm.rawValue)"
        if offersQualityOfProtection { text += ", qop=\"auth\"" }
        if stale { text += ", stale=TRUE" }
        return text
    }
}

/// RFC 3261 §25.1 `quoted-string`: `"` and `\` are escaped with a backslash.
func quoted(_ text: String) -> String {
    // Realms and nonces never hold either: no scalar-by-scalar copy for them.
    if !text.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
        return "\"" + text + "\""
    }
    var out = "\""
    for character in text.unicodeScalars {
        if character == "\"" || character == "\\" { out.unicodeScalars.append("\\") }
        out.unicodeScalars.append(character)
    }
    out += "\""
    return out
}
