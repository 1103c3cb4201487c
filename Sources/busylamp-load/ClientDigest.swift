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

    /// Parses `Digest realm="…", nonce="…", opaque="…", algorithm=MD5, qop="auth,auth-int"`.
    /// Returns nil for another scheme, a missing realm or nonce, or an unknown algorithm.
    init?(headerValue: String) {
        var bytes = Substring(headerValue)
        while bytes.first == " " { bytes.removeFirst() }
        guard bytes.prefix(7).lowercased() == "digest " else { return nil }
        bytes = bytes.dropFirst(7)
        var parameters: [String: String] = [:]
        while !bytes.isEmpty {
            while let first = bytes.first, first == " " || first == "," || first == "\t" { bytes.removeFirst() }
            guard let equals = bytes.firstIndex(of: "=") else { break }
            let name = bytes[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            bytes = bytes[bytes.index(after: equals)...]
            while bytes.first == " " { bytes.removeFirst() }
            var value = ""
            if bytes.first == "\"" {
                bytes.removeFirst()
                var escaped = false
                while let character = bytes.first {
                    bytes.removeFirst()
                    if escaped {
                        value.append(character)
                        escaped = false
                    } else if character == "\\" {
                        escaped = true
                    } else if character == "\"" {
                        break
                    } else {
                        value.append(character)
                    }
                }
            } else {
                let end = bytes.firstIndex(of: ",") ?? bytes.endIndex
                value = bytes[..<end].trimmingCharacters(in: .whitespaces)
                bytes = bytes[end...]
            }
            parameters[name] = value
        }
        guard let realm = parameters["realm"], let nonce = parameters["nonce"] else { return nil }
        let algorithm = parameters["algorithm"].map { DigestAlgorithm(parameterValue: $0) } ?? .md5
        guard let algorithm else { return nil }
        self.realm = realm
        self.nonce = nonce
        self.opaque = parameters["opaque"]
        self.algorithm = algorithm
        self.qopAuth =
            parameters["qop"].map {
                $0.split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces) == "auth" }
            }
            ?? false
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
