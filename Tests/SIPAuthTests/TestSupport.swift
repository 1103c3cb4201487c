import Foundation
import SIPCore

@testable import SIPAuth

/// A fixed instant for tests: 2025-01-01T00:00:00Z.
let testEpoch = Date(timeIntervalSince1970: 1_735_689_600)

let testSecret = Array("0123456789abcdef0123456789abcdef".utf8)

/// The value of `name` in a challenge or credentials header, as a client would read it
/// (quoted or not). Test-side, deliberately independent of the parser under test.
func parameter(_ name: String, in header: String) -> String? {
    for part in header.dropFirst("Digest ".count).split(separator: ",") {
        let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard pair.count == 2, pair[0].lowercased() == name else { continue }
        return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }
    return nil
}

/// What a SIP phone or SIPp sends after a challenge, computed independently of `DigestVerifier`
/// from the password (as a client does).
struct TestClient {
    var username: String
    var password: String

    func authorization(
        challenge: String,
        method: String,
        uri: String,
        nc: Int = 1,
        cnonce: String = "6b8b4567",
        useQOP: Bool = true,
        spacing: String = ""
    ) -> String {
        let realm = parameter("realm", in: challenge)!
        let nonce = parameter("nonce", in: challenge)!
        let algorithm = DigestAlgorithm(parameterValue: parameter("algorithm", in: challenge) ?? "MD5")!
        let ha1 = algorithm.hash("\(username):\(realm):\(password)")
        let ha2 = algorithm.hash("\(method):\(uri)")
        let ncText = String(format: "%08x", nc)
        let sep = "," + spacing
        if useQOP {
            let response = algorithm.hash("\(ha1):\(nonce):\(ncText):\(cnonce):auth:\(ha2)")
            // SIPp's order: username, realm, cnonce, nc, qop, uri, nonce, response, algorithm.
            return "Digest username=\"\(username)\"\(sep)realm=\"\(realm)\"\(sep)cnonce=\"\(cnonce)\"\(sep)"
                + "nc=\(ncText)\(sep)qop=auth\(sep)uri=\"\(uri)\"\(sep)nonce=\"\(nonce)\"\(sep)"
                + "response=\"\(response)\"\(sep)algorithm=\(algorithm.rawValue)"
        } else {
            let response = algorithm.hash("\(ha1):\(nonce):\(ha2)")
            return "Digest username=\"\(username)\"\(sep)realm=\"\(realm)\"\(sep)nonce=\"\(nonce)\"\(sep)"
                + "uri=\"\(uri)\"\(sep)response=\"\(response)\"\(sep)algorithm=\(algorithm.rawValue)"
        }
    }
}
