import Foundation
import SIPCore
import Testing

@testable import SIPAuth

@Suite(.timeLimit(.minutes(1))) struct DigestVerifierTests {
    let realm = "sip.busylamp.test"
    let alice = TestClient(username: "6495550201", password: "alice-secret")

    /// The HA1 values the store holds for Alice, one per algorithm; nothing else.
    func ha1Lookup(_ username: String, _ algorithm: DigestAlgorithm) -> String? {
        username == alice.username ? algorithm.ha1(username: username, realm: realm, password: alice.password) : nil
    }

    func makeVerifier(_ policy: DigestPolicy = .default) -> DigestVerifier {
        DigestVerifier(policy: policy, secret: testSecret)
    }

    func challenge(_ verifier: DigestVerifier, at now: Date, algorithm: DigestAlgorithm = .md5) -> String {
        var generator = SplitMix64(seed: 42)
        return verifier.challenges(realm: realm, stale: false, now: now, using: &generator)
            .first { $0.algorithm == algorithm }!.headerValue
    }

    func verify(
        _ verifier: inout DigestVerifier,
        _ header: String,
        method: String = "REGISTER",
        at now: Date
    ) throws -> DigestOutcome {
        verifier.verify(
            try DigestCredentials(parsing: header),
            method: method,
            realm: realm,
            now: now,
            ha1Lookup: ha1Lookup
        )
    }

    @Test func challengesFollowThePolicyOrderAndShareOneNonce() {
        var generator = SplitMix64(seed: 1)
        let challenges = makeVerifier().challenges(realm: realm, stale: false, now: testEpoch, using: &generator)
        #expect(challenges.map(\.algorithm) == [.md5, .sha256])
        #expect(Set(challenges.map(\.nonce)).count == 1)
        let reversed = makeVerifier(DigestPolicy(algorithms: [.sha256, .md5]))
            .challenges(realm: realm, stale: true, now: testEpoch, using: &generator)
        #expect(reversed.map(\.algorithm) == [.sha256, .md5])
        #expect(reversed.allSatisfy { $0.stale })
    }

    @Test(arguments: [DigestAlgorithm.md5, .sha256])
    func correctResponseAuthenticates(algorithm: DigestAlgorithm) throws {
        var verifier = makeVerifier()
        let header = alice.authorization(
            challenge: challenge(verifier, at: testEpoch, algorithm: algorithm),
            method: "REGISTER",
            uri: "sip:sip.busylamp.test"
        )
        #expect(try verify(&verifier, header, at: testEpoch + 1) == .authenticated(username: alice.username))
    }

    @Test func wrongPasswordAndUnknownUserAreWrongCredentials() throws {
        var verifier = makeVerifier()
        let challenge = challenge(verifier, at: testEpoch)
        let wrong = TestClient(username: alice.username, password: "guess").authorization(
            challenge: challenge,
            method: "REGISTER",
            uri: "sip:r"
        )
        #expect(try verify(&verifier, wrong, at: testEpoch) == .wrongCredentials)
        let stranger = TestClient(username: "999", password: "alice-secret").authorization(
            challenge: challenge,
            method: "REGISTER",
            uri: "sip:r"
        )
        #expect(try verify(&verifier, stranger, at: testEpoch) == .wrongCredentials)
        // The wrong attempts did not use up Alice's counts.
        let right = alice.authorization(challenge: challenge, method: "REGISTER", uri: "sip:r")
        #expect(try verify(&verifier, right, at: testEpoch) == .authenticated(username: alice.username))
    }

    @Test func responseCoversTheMethod() throws {
        var verifier = makeVerifier()
        let header = alice.authorization(
            challenge: challenge(verifier, at: testEpoch),
            method: "REGISTER",
            uri: "sip:r"
        )
        #expect(try verify(&verifier, header, method: "INVITE", at: testEpoch) == .wrongCredentials)
    }

    @Test func upperCaseHexResponseIsAccepted() throws {
        var verifier = makeVerifier()
        let header = alice.authorization(
            challenge: challenge(verifier, at: testEpoch),
            method: "REGISTER",
            uri: "sip:r"
        )
        var credentials = try DigestCredentials(parsing: header)
        credentials.response = credentials.response.uppercased()
        #expect(
            verifier.verify(credentials, method: "REGISTER", realm: realm, now: testEpoch, ha1Lookup: ha1Lookup)
                == .authenticated(username: alice.username)
        )
    }

    /// RFC 2617 §3.2.1: stale only when the digest is right for the expired nonce.
    @Test func expiredNonceIsStaleOnlyWithTheRightDigest() throws {
        var verifier = makeVerifier()
        let challenge = challenge(verifier, at: testEpoch)
        let right = alice.authorization(challenge: challenge, method: "REGISTER", uri: "sip:r")
        #expect(try verify(&verifier, right, at: testEpoch + 301) == .stale)
        let wrong = TestClient(username: alice.username, password: "guess").authorization(
            challenge: challenge,
            method: "REGISTER",
            uri: "sip:r"
        )
        #expect(try verify(&verifier, wrong, at: testEpoch + 301) == .wrongCredentials)
    }

    @Test func replayedNonceCountIsRefused() throws {
        var verifier = makeVerifier()
        let challenge = challenge(verifier, at: testEpoch)
        let first = alice.authorization(challenge: challenge, method: "REGISTER", uri: "sip:r", nc: 1)
        #expect(try verify(&verifier, first, at: testEpoch) == .authenticated(username: alice.username))
        #expect(try verify(&verifier, first, at: testEpoch + 1) == .replayed)
        let second = alice.authorization(challenge: challenge, method: "REGISTER", uri: "sip:r", nc: 2)
        #expect(try verify(&verifier, second, at: testEpoch + 2) == .authenticated(username: alice.username))
        #expect(try verify(&verifier, first, at: testEpoch + 3) == .replayed)
    }

    @Test func forgedNonceIsInvalidNotStale() throws {
        var verifier = makeVerifier()
        let forged =
            #"Digest realm="sip.busylamp.test", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", algorithm=MD5, qop="auth""#
        let header = alice.authorization(challenge: forged, method: "REGISTER", uri: "sip:r")
        #expect(try verify(&verifier, header, at: testEpoch) == .invalidNonce)
        // A nonce from another server (another secret) likewise.
        let other = DigestVerifier(policy: .default, secret: Array("a different secret, 32 bytes....".utf8))
        let foreign = alice.authorization(
            challenge: self.challenge(other, at: testEpoch),
            method: "REGISTER",
            uri: "sip:r"
        )
        #expect(try verify(&verifier, foreign, at: testEpoch) == .invalidNonce)
    }

    @Test func realmMismatch() throws {
        var verifier = makeVerifier()
        let header = alice.authorization(
            challenge: challenge(verifier, at: testEpoch),
            method: "REGISTER",
            uri: "sip:r"
        )
        .replacingOccurrences(of: "realm=\"sip.busylamp.test\"", with: "realm=\"elsewhere.test\"")
        #expect(try verify(&verifier, header, at: testEpoch) == .realmMismatch)
    }

    /// RFC 2069-style credentials (no qop) are accepted while the nonce is fresh, unless the
    /// policy requires qop.
    @Test func withoutQOPAcceptedWhileFreshUnlessRequired() throws {
        var verifier = makeVerifier()
        let challenge = challenge(verifier, at: testEpoch)
        let header = alice.authorization(challenge: challenge, method: "REGISTER", uri: "sip:r", useQOP: false)
        #expect(try verify(&verifier, header, at: testEpoch) == .authenticated(username: alice.username))
        #expect(try verify(&verifier, header, at: testEpoch + 100) == .authenticated(username: alice.username))
        #expect(try verify(&verifier, header, at: testEpoch + 300) == .stale)

        var strict = makeVerifier(DigestPolicy(requiresQualityOfProtection: true))
        let outcome = try verify(&strict, header, at: testEpoch)
        #expect(outcome == .malformed(DigestCredentialsError(.qualityOfProtectionRequired, "qop=auth is required")))
    }

    @Test func algorithmNotOfferedIsRefused() throws {
        var verifier = makeVerifier(DigestPolicy(algorithms: [.sha256]))
        var generator = SplitMix64(seed: 3)
        let offered = verifier.challenges(realm: realm, stale: false, now: testEpoch, using: &generator)[0].headerValue
        let md5 = alice.authorization(
            challenge: offered.replacingOccurrences(of: "SHA-256", with: "MD5"),
            method: "REGISTER",
            uri: "sip:r"
        )
        guard case .malformed(let error) = try verify(&verifier, md5, at: testEpoch) else {
            Issue.record("MD5 accepted although not offered")
            return
        }
        #expect(error.code == .algorithmNotOffered)
    }
}

extension DigestVerifierTests {
    /// The qop token is compared case-insensitively but hashed as written.
    @Test func upperCaseQOPIsHashedAsWritten() throws {
        var verifier = makeVerifier()
        let challenge = challenge(verifier, at: testEpoch)
        let nonce = try #require(parameter("nonce", in: challenge))
        let ha1 = DigestAlgorithm.md5.ha1(username: alice.username, realm: realm, password: alice.password)
        let response = DigestAlgorithm.md5.hash(
            "\(ha1):\(nonce):00000001:c0ffee:AUTH:\(DigestAlgorithm.md5.hash("REGISTER:sip:r"))"
        )
        let header =
            #"Digest username="\#(alice.username)", realm="\#(realm)", nonce="\#(nonce)", uri="sip:r", "#
            + #"response="\#(response)", qop=AUTH, nc=00000001, cnonce="c0ffee""#
        #expect(try verify(&verifier, header, at: testEpoch) == .authenticated(username: alice.username))
    }

    /// A hand-built credential whose nc is not hex is refused rather than treated as count-less.
    @Test func handBuiltCredentialsWithoutAValidCountAreMalformed() {
        var verifier = makeVerifier()
        let credentials = DigestCredentials(
            username: alice.username,
            realm: realm,
            nonce: "n",
            uri: "sip:r",
            response: "00",
            cnonce: "c",
            qop: "auth",
            nonceCountText: "zz"
        )
        let outcome = verifier.verify(
            credentials,
            method: "REGISTER",
            realm: realm,
            now: testEpoch,
            ha1Lookup: ha1Lookup
        )
        guard case .malformed(let error) = outcome else {
            Issue.record("expected malformed, got \(outcome)")
            return
        }
        #expect(error.code == .missingParameter)
    }
}
