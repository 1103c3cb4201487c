import SIPAuth

/// The client side of digest authentication (RFC 2617 §3.2.2, RFC 3261 §22.4): reads a
/// `WWW-Authenticate` / `Proxy-Authenticate` challenge and writes the matching credentials.
/// The hashes are SIPAuth's (`DigestAlgorithm.ha1` and `.response`), so the tool and the
/// server agree on them by construction.
struct ClientChallenge: Sendable, Hashable {
    var realm: String
    var nonce: String
    var opaque: String?
    var algorithm: DigestAlgorithm
    /// Whether the server offered `qop=auth`; without it the RFC 2069 form is used.
    var qopAuth: Bool

    /// RFC 7616 §3.3: the previous request's nonce had expired; authenticate again.
    var stale = false

    /// Parses `Digest realm="…", nonce="…", opaque="…", algorithm=MD5, qop="auth,auth-int"`
    /// over its UTF-8 bytes (a challenge a subscription: no Foundation on this path).
    /// Returns nil for another scheme, a missing realm or nonce, or an unknown algorithm.
    init?(headerValue: String) {
        var parameters: [String: String] = [:]
        let parsed = headerValue.utf8.withContiguousStorageIfAvailable { Self.parameters(of: $0, into: &parameters) }
        guard parsed ?? Self.parameters(of: Array(headerValue.utf8), into: &parameters) else { return nil }
        guard let realm = parameters["realm"], let nonce = parameters["nonce"] else { return nil }
        let algorithm = parameters["algorithm"].map { DigestAlgorithm(parameterValue: $0) } ?? .md5
        guard let algorithm else { return nil }
        self.realm = realm
        self.nonce = nonce
        self.opaque = parameters["opaque"]
        self.algorithm = algorithm
        self.qopAuth =
            parameters["qop"].map { $0.split(separator: ",").contains { $0.lowercased() == "auth" } } ?? false
        self.stale = parameters["stale"]?.lowercased() == "true"
    }

    /// `Digest` then `name=value` or `name="quoted"` pairs, names lower-cased; false when the
    /// scheme is not Digest.
    private static func parameters(
        of bytes: some RandomAccessCollection<UInt8>,
        into parameters: inout [String: String]
    )
        -> Bool
    {
        let space = UInt8(ascii: " ")
        let tab = UInt8(ascii: "\t")
        let comma = UInt8(ascii: ",")
        let quote = UInt8(ascii: "\"")
        var index = bytes.startIndex
        func skip(_ set: (UInt8) -> Bool) {
            while index < bytes.endIndex, set(bytes[index]) { index = bytes.index(after: index) }
        }
        skip { $0 == space || $0 == tab }
        let schemeStart = index
        skip { $0 != space && $0 != tab }
        guard String(decoding: bytes[schemeStart..<index], as: UTF8.self).lowercased() == "digest" else { return false }
        while index < bytes.endIndex {
            skip { $0 == space || $0 == tab || $0 == comma }
            let nameStart = index
            skip { $0 != UInt8(ascii: "=") && $0 != space && $0 != comma }
            let name = String(decoding: bytes[nameStart..<index], as: UTF8.self).lowercased()
            skip { $0 == space || $0 == tab }
            guard index < bytes.endIndex, bytes[index] == UInt8(ascii: "=") else { break }
            index = bytes.index(after: index)
            skip { $0 == space || $0 == tab }
            var value: [UInt8] = []
            if index < bytes.endIndex, bytes[index] == quote {
                index = bytes.index(after: index)
                while index < bytes.endIndex, bytes[index] != quote {
                    if bytes[index] == UInt8(ascii: "\\") { index = bytes.index(after: index) }
                    if index < bytes.endIndex { value.append(bytes[index]) }
                    index = bytes.index(after: index)
                }
                if index < bytes.endIndex { index = bytes.index(after: index) }
            } else {
                while index < bytes.endIndex, bytes[index] != comma, bytes[index] != space, bytes[index] != tab {
                    value.append(bytes[index])
                    index = bytes.index(after: index)
                }
            }
            if !name.isEmpty { parameters[name] = String(decoding: value, as: UTF8.self) }
        }
        return true
    }

    init(realm: String, nonce: String, opaque: String? = nil, algorithm: DigestAlgorithm = .md5, qopAuth: Bool) {
        self.realm = realm
        self.nonce = nonce
        self.opaque = opaque
        self.algorithm = algorithm
        self.qopAuth = qopAuth
    }

    /// The credentials header value for one request. `nc` is always 1: every challenge the
    /// tool answers is fresh, and it answers each once.
    func credentials(
        username: String,
        password: String,
        method: String,
        uri: String,
        cnonce: String,
        ha1: String? = nil
    ) -> String {
        let ha1 = ha1 ?? algorithm.ha1(username: username, realm: realm, password: password)
        let nc = "00000001"
        let qop = qopAuth ? DigestAlgorithm.QualityOfProtection(nonceCount: nc, cnonce: cnonce) : nil
        let response = algorithm.response(ha1: ha1, nonce: nonce, method: method, digestURI: uri, qop: qop)
        var text =
            "Digest username=\"\(username)\", realm=\"\(realm)\", nonce=\"\(nonce)\", uri=\"\(uri)\", response=\"\(response)\", algorithm=\(algorithm.rawValue)"
        if let opaque { text += ", opaque=\"\(opaque)\"" }
        if qopAuth { text += ", qop=auth, nc=\(nc), cnonce=\"\(cnonce)\"" }
        return text
    }
}
