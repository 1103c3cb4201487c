import Crypto

/// A digest algorithm of RFC 7616 §3.4.1 / RFC 8760, as named in `algorithm=` parameters.
public enum DigestAlgorithm: String, Sendable, Hashable, CaseIterable {
    case md5 = "MD5"
    case sha256 = "SHA-256"

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
