import Testing

@testable import SIPAuth

@Suite(.timeLimit(.minutes(1))) struct DigestChallengeTests {
    @Test func headerText() {
        let challenge = DigestChallenge(realm: "sip.busylamp.test", nonce: "n0nce", opaque: "0paque", algorithm: .md5)
        #expect(
            challenge.headerValue
                == #"Digest realm="sip.busylamp.test", nonce="n0nce", opaque="0paque", algorithm=MD5, qop="auth""#
        )
    }

    @Test func staleAndSHA256() {
        let challenge = DigestChallenge(realm: "r", nonce: "n", opaque: "o", algorithm: .sha256, stale: true)
        #expect(
            challenge.headerValue
                == #"Digest realm="r", nonce="n", opaque="o", algorithm=SHA-256, qop="auth", stale=TRUE"#
        )
    }

    @Test func withoutOpaqueOrQOP() {
        let challenge = DigestChallenge(realm: "r", nonce: "n", algorithm: .md5, offersQualityOfProtection: false)
        #expect(challenge.headerValue == #"Digest realm="r", nonce="n", algorithm=MD5"#)
    }

    @Test func realmIsEscapedInItsQuotedString() {
        let challenge = DigestChallenge(realm: #"a"b\c"#, nonce: "n", algorithm: .md5, offersQualityOfProtection: false)
        #expect(challenge.headerValue == #"Digest realm="a\"b\\c", nonce="n", algorithm=MD5"#)
    }
}
