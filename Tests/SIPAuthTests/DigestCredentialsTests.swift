import SIPCore
import Testing

@testable import SIPAuth

@Suite(.timeLimit(.minutes(1))) struct DigestCredentialsTests {
    /// SIPp's format: no spaces after commas, qop and nc unquoted, algorithm last.
    static let sipp =
        #"Digest username="6495550201",realm="sip.busylamp.test",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:5060",nonce="abc",response="0123456789abcdef0123456789abcdef",algorithm=MD5"#

    @Test func parsesSIPpStyleCredentials() throws {
        let credentials = try DigestCredentials(parsing: Self.sipp)
        #expect(credentials.username == "6495550201")
        #expect(credentials.realm == "sip.busylamp.test")
        #expect(credentials.nonce == "abc")
        #expect(credentials.uri == "sip:127.0.0.1:5060")
        #expect(credentials.response == "0123456789abcdef0123456789abcdef")
        #expect(credentials.algorithm == .md5)
        #expect(credentials.cnonce == "6b8b4567")
        #expect(credentials.qop == "auth")
        #expect(credentials.nonceCountText == "00000001")
        #expect(credentials.nonceCount == 1)
        #expect(credentials.opaque == nil)
    }

    @Test(arguments: ["Digest", "digest", "DIGEST", "DiGeSt"])
    func schemeIsCaseInsensitive(scheme: String) throws {
        let credentials = try DigestCredentials(
            parsing: #"\#(scheme) username="a", realm="r", nonce="n", uri="sip:r", response="00""#
        )
        #expect(credentials.username == "a")
    }

    @Test func parametersInAnyOrderWithNamesCaseInsensitiveAndUnknownsIgnored() throws {
        let credentials = try DigestCredentials(
            parsing:
                #"Digest  RESPONSE="ff" ,Nonce=n1, foo=bar, realm = "r" , x-future="a, \"b\"" ,uri=sip:bob@r;transport=tcp, Username="bob""#
        )
        #expect(credentials.username == "bob")
        #expect(credentials.realm == "r")
        #expect(credentials.nonce == "n1")
        #expect(credentials.uri == "sip:bob@r;transport=tcp")
        #expect(credentials.response == "ff")
        #expect(credentials.algorithm == .md5, "MD5 when algorithm is absent")
        #expect(credentials.qop == nil)
    }

    @Test func quotedStringsUnescape() throws {
        let credentials = try DigestCredentials(
            parsing: #"Digest username="bob \"the builder\" \\ co", realm="a,b", nonce="n", uri="sip:r", response="00""#
        )
        #expect(credentials.username == #"bob "the builder" \ co"#)
        #expect(credentials.realm == "a,b")
    }

    @Test func utf8UserNamesAreKept() throws {
        let credentials = try DigestCredentials(
            parsing: #"Digest username="José", realm="r", nonce="n", uri="sip:r", response="00""#
        )
        #expect(credentials.username == "José")
    }

    @Test func quotedQOPAndAlgorithmAreAccepted() throws {
        let credentials = try DigestCredentials(
            parsing:
                #"Digest username="a", realm="r", nonce="n", uri="sip:r", response="00", qop="auth", nc="0000000a", cnonce="c", algorithm="sha-256""#
        )
        #expect(credentials.algorithm == .sha256)
        #expect(credentials.nonceCount == 10)
    }

    @Test(arguments: [
        (
            #"Digest username="a", username="b", realm="r", nonce="n", uri="sip:r", response="00""#,
            DigestCredentialsError.Code.duplicateParameter
        ),
        (#"Digest username="a", USERNAME="a", realm="r", nonce="n", uri="sip:r", response="00""#, .duplicateParameter),
        (#"Digest username="a", realm="r", nonce="n", uri="sip:r", response="00", foo=1, foo=2"#, .duplicateParameter),
        (#"Digest realm="r", nonce="n", uri="sip:r", response="00""#, .missingParameter),
        (#"Digest username="a", realm="r", nonce="n", uri="sip:r""#, .missingParameter),
        (#"Digest username="a", realm="r", nonce="n", response="00""#, .missingParameter),
        (
            #"Digest username="a", realm="r", nonce="n", uri="sip:r", response="00", qop=auth, nc=00000001"#,
            .missingParameter
        ),
        (
            #"Digest username="a", realm="r", nonce="n", uri="sip:r", response="00", qop=auth, cnonce="c""#,
            .missingParameter
        ),
        (
            #"Digest username="a", realm="r", nonce="n", uri="sip:r", response="00", qop=auth-int, nc=1, cnonce="c""#,
            .unsupportedQualityOfProtection
        ),
        (
            #"Digest username="a", realm="r", nonce="n", uri="sip:r", response="00", qop=auth, nc=xyz, cnonce="c""#,
            .invalidNonceCount
        ),
        (
            #"Digest username="a", realm="r", nonce="n", uri="sip:r", response="00", qop=auth, nc=123456789, cnonce="c""#,
            .invalidNonceCount
        ),
        (
            #"Digest username="a", realm="r", nonce="n", uri="sip:r", response="00", qop=auth, nc=00000000, cnonce="c""#,
            .invalidNonceCount
        ),
        (
            #"Digest username="a", realm="r", nonce="n", uri="sip:r", response="00", algorithm=SHA-512-256"#,
            .unsupportedAlgorithm
        ),
        (
            #"Digest username="a", realm="r", nonce="n", uri="sip:r", response="00", algorithm=MD5-sess"#,
            .unsupportedAlgorithm
        ),
        (#"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="#, .notDigest),
        ("", .notDigest),
        ("   ", .notDigest),
        ("Digestusername=\"a\"", .notDigest),
        ("Digest", .syntax),
        ("Digest ", .syntax),
        ("Digest ,,, ", .syntax),
        (#"Digest username"#, .syntax),
        (#"Digest username="#, .syntax),
        (#"Digest username=, realm="r""#, .syntax),
        (#"Digest username="a"#, .syntax),
        (#"Digest username="a\"#, .syntax),
        (#"Digest username="a" realm="r""#, .syntax),
        (#"Digest username="a";realm="r""#, .syntax),
        (#"Digest =a"#, .syntax),
        (#"Digest username=a"b"#, .syntax),
        ("Digest username=\"a\u{0}b\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"00\"", .syntax),
        ("Digest username=\"a\rb\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"00\"", .syntax),
        ("Digest username=a\u{7F}, realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"00\"", .syntax),
        ("Digest user\u{1}name=\"a\"", .syntax),
    ])
    func refusesMalformedCredentials(value: String, code: DigestCredentialsError.Code) {
        #expect(throws: DigestCredentialsError.self) { try DigestCredentials(parsing: value) }
        do {
            _ = try DigestCredentials(parsing: value)
        } catch {
            #expect(error.code == code, "\(error)")
        }
    }

    @Test func repairedUTF8IsCarriedAsText() {
        let bytes: [UInt8] =
            Array(#"Digest username=""#.utf8) + [0xC3, 0x28]
            + Array(#"", realm="r", nonce="n", uri="sip:r", response="00""#.utf8)
        // String(decoding:) repairs invalid UTF-8 with U+FFFD; the parser must still cope.
        let value = String(decoding: bytes, as: UTF8.self)
        #expect((try? DigestCredentials(parsing: value))?.username == "\u{FFFD}(")
    }

    @Test func limitsBoundWhatIsAccepted() {
        let longValue = String(repeating: "a", count: DigestCredentials.Limits.maximumParameterValueLength + 1)
        #expect(throws: DigestCredentialsError(.tooLong, "username too long")) {
            try DigestCredentials(parsing: #"Digest username="\#(longValue)", realm="r""#)
        }
        #expect(throws: DigestCredentialsError(.tooLong, "username too long")) {
            try DigestCredentials(parsing: #"Digest username=\#(longValue), realm="r""#)
        }
        let huge = "Digest " + String(repeating: "x=1, ", count: 2000)
        #expect(throws: DigestCredentialsError.self) { try DigestCredentials(parsing: huge) }
        let many =
            "Digest " + (0...DigestCredentials.Limits.maximumParameterCount).map { "p\($0)=1" }.joined(separator: ", ")
        #expect(
            throws: DigestCredentialsError(
                .tooLong,
                "more than \(DigestCredentials.Limits.maximumParameterCount) parameters"
            )
        ) {
            try DigestCredentials(parsing: many)
        }
        let longName = "Digest " + String(repeating: "n", count: DigestCredentials.Limits.maximumNameLength + 1) + "=1"
        #expect(throws: DigestCredentialsError(.tooLong, "parameter name too long")) {
            try DigestCredentials(parsing: longName)
        }
    }

    /// Random bytes and random mutations of a valid header: every one parses or throws, and
    /// anything that parses has all the required fields.
    @Test(arguments: 0..<4)
    func garbageNeverCrashes(seed: Int) {
        var generator = SplitMix64(seed: UInt64(seed) &* 7919 &+ 1)
        let alphabet = Array(#"Digest usernamrlcoq=",\ "#.utf8) + [0, 9, 10, 13, 0x7F, 0xC3, 0xFF]
        var parsed = 0
        var refused = 0
        for round in 0..<2000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...120, using: &generator)).map { _ in
                    alphabet.randomElement(using: &generator)!
                }
            } else {
                bytes = Array(Self.sipp.utf8)
                for _ in 0..<Int.random(in: 1...6, using: &generator) {
                    let position = Int.random(in: 0..<bytes.count, using: &generator)
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0: bytes[position] = alphabet.randomElement(using: &generator)!
                    case 1: bytes.remove(at: position)
                    default: bytes.insert(alphabet.randomElement(using: &generator)!, at: position)
                    }
                }
            }
            do {
                let credentials = try DigestCredentials(parsing: String(decoding: bytes, as: UTF8.self))
                #expect(credentials.response.utf8.count <= DigestCredentials.Limits.maximumParameterValueLength)
                if credentials.qop != nil { #expect(credentials.nonceCount != nil && credentials.cnonce != nil) }
                parsed += 1
            } catch {
                #expect(!error.detail.isEmpty)
                refused += 1
            }
        }
        #expect(parsed + refused == 2000)
        #expect(refused > 0)
    }
}
