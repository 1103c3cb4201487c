import Crypto

/// A digest algorithm of RFC 7616 §3.4.1 / RFC 8760, as named in `algorithm=` parameters.
///
/// The `-sess` variants and SHA-512-256 are not offered: no phone we serve needs them, and a
/// credential naming one is refused as malformed rather than guessed at.
public enum DigestAlgorithm: String, Sendable, Hashable, CaseIterable {
    case md5 = "MD5"
    case sha256 = "SHA-256"

    /// Parses an `algorithm=` value. RFC 7616 §3.3: the names are case-insensitive tokens.
    public init?(parameterValue: String) {
        switch parameterValue.lowercased() {
        case "md5": self = .md5
        case "sha-256": self = .sha256
        default: return nil
        }
    }

    /// The lower-case hex digest of `text`.
    public func hash(_ text: String) -> String {
        switch self {
        case .md5: return Insecure.MD5.hash(data: Array(text.utf8)).hexString
        case .sha256: return SHA256.hash(data: Array(text.utf8)).hexString
        }
    }

    /// RFC 7616 §3.4.2: HA1 = H(username ":" realm ":" password). Only this is stored, never
    /// the password.
    public func ha1(username: String, realm: String, password: String) -> String {
        hash("\(username):\(realm):\(password)")
    }

    /// How many hex digits a digest of this algorithm has (32 for MD5, 64 for SHA-256).
    public var hexLength: Int {
        switch self {
        case .md5: return 32
        case .sha256: return 64
        }
    }

    /// The `response` a client computes (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1, RFC 3261 §22.4).
    ///
    /// With `qop=auth`:
    /// ```
    /// response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2),  HA2 = H(method ":" digest-uri)
    /// ```
    /// Without `qop` (RFC 2069 compatibility, RFC 2617 §3.2.2.1):
    /// ```
    /// response = H(HA1 ":" nonce ":" HA2)
    /// ```
    /// `nc` and `cnonce` are used exactly as the client wrote them.
    public func response(
        ha1: String,
        nonce: String,
        method: String,
        digestURI: String,
        qop: QualityOfProtection?
    ) -> String {
        let ha2 = hash("\(method):\(digestURI)")
        switch qop {
        case .none:
            return hash("\(ha1):\(nonce):\(ha2)")
        case .some(let qop):
            return hash("\(ha1):\(nonce):\(qop.nonceCount):\(qop.cnonce):\(qop.value):\(ha2)")
        }
    }

    /// The values `qop=auth` adds to the response computation.
    public struct QualityOfProtection: Sendable, Hashable {
        /// The `nc` value as written (8 hex digits in RFC 2617).
        public var nonceCount: String
        public var cnonce: String
        /// The `qop` value as the client wrote it (`auth`; a client writing `AUTH` hashed that).
        public var value: String

        public init(nonceCount: String, cnonce: String, value: String = "auth") {
            self.nonceCount = nonceCount
            self.cnonce = cnonce
            self.value = value
        }
    }
}

extension Sequence where Element == UInt8 {
    var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Compares two byte strings in time that depends only on their lengths, so that a wrong
/// `response` does not leak through timing how many of its leading digits were right.
func constantTimeEqual(_ lhs: some Collection<UInt8>, _ rhs: some Collection<UInt8>) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for (left, right) in zip(lhs, rhs) { difference |= left ^ right }
    return difference == 0
}
