import Foundation
import SIPCore
import Testing

@testable import SIPAuth

/// The facade as the server uses it: challenge headers out, a request's headers in.
@Suite(.timeLimit(.minutes(1))) struct DigestAuthenticatorTests {
    let realm = "sip.busylamp.test"
    let alice = TestClient(username: "6495550201", password: "alice-secret")

    func ha1Lookup(_ username: String, _ algorithm: DigestAlgorithm) -> String? {
        username == alice.username ? algorithm.ha1(username: username, realm: realm, password: alice.password) : nil
    }

    func makeAuthenticator(_ policy: DigestPolicy = .default) -> DigestAuthenticator {
        DigestAuthenticator(realm: realm, secret: testSecret, policy: policy)
    }

    func register(to uri: String = "sip:sip.busylamp.test", _ headers: [(SIPHeaderName, String)]) -> SIPRequest {
        var fields: [(SIPHeaderName, String)] = [(.callID, "a84b4c76e66710"), (.cseq, "2 REGISTER")]
        fields.append(contentsOf: headers)
        return SIPRequest(method: .register, uri: SIPURI(uri)!, headers: SIPHeaders(fields))
    }

    @Test func challengeHeadersTextAndOrder() throws {
        let headers = makeAuthenticator().challengeHeaders(stale: false, now: testEpoch)
        #expect(headers.count == 2)
        let nonce = try #require(parameter("nonce", in: headers[0]))
        let opaque = try #require(parameter("opaque", in: headers[0]))
        #expect(
            headers[0]
                == #"Digest realm="sip.busylamp.test", nonce="\#(nonce)", opaque="\#(opaque)", algorithm=MD5, qop="auth""#
        )
        #expect(
            headers[1]
                == #"Digest realm="sip.busylamp.test", nonce="\#(nonce)", opaque="\#(opaque)", algorithm=SHA-256, qop="auth""#
        )

        let stale = makeAuthenticator().challengeHeaders(stale: true, now: testEpoch)
        #expect(stale.allSatisfy { $0.hasSuffix(", stale=TRUE") })
        let shaOnly = makeAuthenticator(DigestPolicy(algorithms: [.sha256])).challengeHeaders(
            stale: false,
            now: testEpoch
        )
        #expect(shaOnly.count == 1 && shaOnly[0].contains("algorithm=SHA-256"))
    }

    /// SIPp's REGISTER with digest: 401 with the challenges, then the REGISTER again with
    /// MD5, qop=auth, nc=00000001 and uri=sip:127.0.0.1:5060 (the server's address, not the
    /// Request-URI's domain).
    @Test func sippStyleExchange() throws {
        var authenticator = makeAuthenticator()
        let first = register([])
        #expect(
            authenticator.verify(request: first, headerName: .authorization, ha1Lookup: ha1Lookup, now: testEpoch)
                == .missingCredentials
        )

        let challenges = authenticator.challengeHeaders(stale: false, now: testEpoch)
        let sippTakesTheFirst = challenges[0]
        let authorization = alice.authorization(
            challenge: sippTakesTheFirst,
            method: "REGISTER",
            uri: "sip:127.0.0.1:5060"
        )
        #expect(authorization.contains(",nc=00000001,qop=auth,uri=\"sip:127.0.0.1:5060\","))
        let second = register(to: "sip:sip.busylamp.test", [(.authorization, authorization)])
        #expect(
            authenticator.verify(
                request: second,
                headerName: .authorization,
                ha1Lookup: ha1Lookup,
                now: testEpoch + 1,
                servesHost: { $0 == "127.0.0.1" }
            )
                == .authenticated(username: alice.username)
        )
        // The same message again (a replay, not a retransmission absorbed by the transaction layer).
        #expect(
            authenticator.verify(
                request: second,
                headerName: .authorization,
                ha1Lookup: ha1Lookup,
                now: testEpoch + 2,
                servesHost: { $0 == "127.0.0.1" }
            )
                == .replayed
        )
    }

    /// The digest `uri` may name the Request-URI (whatever its port and parameters) or this
    /// server without a user (SIPp, phones that write their registrar's address); the hash
    /// covers it.
    @Test func digestURIMayNameTheRequestOrTheServer() throws {
        var authenticator = makeAuthenticator()
        let servesHost: (String) -> Bool = { ["sip.busylamp.test", "127.0.0.1"].contains($0) }
        for (nc, uri) in ["sip:SIP.busylamp.test:5060;transport=tcp", "sip:127.0.0.1:5070"].enumerated() {
            let challenge = authenticator.challengeHeaders(stale: false, now: testEpoch)[0]
            let header = alice.authorization(challenge: challenge, method: "REGISTER", uri: uri, spacing: " ")
            let request = register(to: "sip:sip.busylamp.test", [(.authorization, header)])
            #expect(
                authenticator.verify(
                    request: request,
                    headerName: .authorization,
                    ha1Lookup: ha1Lookup,
                    now: testEpoch + Double(nc),
                    servesHost: servesHost
                ) == .authenticated(username: alice.username),
                "\(uri)"
            )
        }
        // Changing the uri after hashing breaks the response.
        let challenge = authenticator.challengeHeaders(stale: false, now: testEpoch)[0]
        let tampered = alice.authorization(challenge: challenge, method: "REGISTER", uri: "sip:sip.busylamp.test")
            .replacingOccurrences(of: "uri=\"sip:sip.busylamp.test\"", with: "uri=\"sip:127.0.0.1\"")
        #expect(
            authenticator.verify(
                request: register([(.authorization, tampered)]),
                headerName: .authorization,
                ha1Lookup: ha1Lookup,
                now: testEpoch,
                servesHost: servesHost
            )
                == .wrongCredentials
        )
    }

    /// Issue 9: credentials made for another resource (another line's SUBSCRIBE, another
    /// host) do not authenticate this request: 400, RFC 2617 §3.2.2.5.
    @Test(arguments: ["sip:202@sip.busylamp.test", "sip:201@elsewhere.example.com", "sip:old-proxy.example.com"])
    func digestURIForAnotherResourceIsRefused(_ uri: String) throws {
        var authenticator = makeAuthenticator()
        let challenge = authenticator.challengeHeaders(stale: false, now: testEpoch)[0]
        let header = alice.authorization(challenge: challenge, method: "SUBSCRIBE", uri: uri)
        let request = SIPRequest(
            method: .subscribe,
            uri: SIPURI("sip:201@sip.busylamp.test")!,
            headers: SIPHeaders([(.callID, "x"), (.cseq, "2 SUBSCRIBE"), (.authorization, header)])
        )
        let outcome = authenticator.verify(
            request: request,
            headerName: .authorization,
            ha1Lookup: ha1Lookup,
            now: testEpoch,
            servesHost: { $0 == "sip.busylamp.test" }
        )
        guard case .malformed(let error) = outcome else {
            Issue.record("\(uri): \(outcome)")
            return
        }
        #expect(error.code == .uriMismatch)
    }

    @Test func staleAfterExpiryThenANewNonceWorks() throws {
        var authenticator = makeAuthenticator()
        let old = authenticator.challengeHeaders(stale: false, now: testEpoch)[0]
        let late = register([
            (.authorization, alice.authorization(challenge: old, method: "REGISTER", uri: "sip:sip.busylamp.test"))
        ])
        let now = testEpoch + 301
        #expect(
            authenticator.verify(request: late, headerName: .authorization, ha1Lookup: ha1Lookup, now: now) == .stale
        )
        let renewed = authenticator.challengeHeaders(stale: true, now: now)
        #expect(renewed[0].hasSuffix("stale=TRUE"))
        let retry = register([
            (
                .authorization,
                alice.authorization(challenge: renewed[0], method: "REGISTER", uri: "sip:sip.busylamp.test")
            )
        ])
        #expect(
            authenticator.verify(request: retry, headerName: .authorization, ha1Lookup: ha1Lookup, now: now)
                == .authenticated(username: alice.username)
        )
    }

    @Test func sha256ChallengeIsAccepted() throws {
        var authenticator = makeAuthenticator()
        let sha = authenticator.challengeHeaders(stale: false, now: testEpoch)[1]
        let header = alice.authorization(challenge: sha, method: "REGISTER", uri: "sip:sip.busylamp.test")
        #expect(header.contains("algorithm=SHA-256"))
        #expect(
            authenticator.verify(
                request: register([(.authorization, header)]),
                headerName: .authorization,
                ha1Lookup: ha1Lookup,
                now: testEpoch
            )
                == .authenticated(username: alice.username)
        )
    }

    @Test func wrongPasswordNeverAuthenticates() throws {
        var authenticator = makeAuthenticator()
        let challenge = authenticator.challengeHeaders(stale: false, now: testEpoch)[0]
        for (index, password) in ["", "alice", "Alice-secret", "alice-secret "].enumerated() {
            let header = TestClient(username: alice.username, password: password)
                .authorization(challenge: challenge, method: "REGISTER", uri: "sip:sip.busylamp.test", nc: index + 1)
            #expect(
                authenticator.verify(
                    request: register([(.authorization, header)]),
                    headerName: .authorization,
                    ha1Lookup: ha1Lookup,
                    now: testEpoch
                )
                    == .wrongCredentials
            )
        }
    }

    /// A request carrying credentials for several realms (RFC 3261 §22.3): ours is found.
    @Test func picksTheCredentialsForOurRealm() throws {
        var authenticator = makeAuthenticator()
        let challenge = authenticator.challengeHeaders(stale: false, now: testEpoch)[0]
        let ours = alice.authorization(challenge: challenge, method: "REGISTER", uri: "sip:sip.busylamp.test")
        let theirs = ours.replacingOccurrences(of: realm, with: "upstream.example")
        let request = register([
            (.authorization, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), (.authorization, theirs), (.authorization, ours),
        ])
        #expect(
            authenticator.verify(request: request, headerName: .authorization, ha1Lookup: ha1Lookup, now: testEpoch)
                == .authenticated(username: alice.username)
        )
        // Only another realm's: realm mismatch. Only Basic: as good as none.
        #expect(
            authenticator.verify(
                request: register([(.authorization, theirs)]),
                headerName: .authorization,
                ha1Lookup: ha1Lookup,
                now: testEpoch
            )
                == .realmMismatch
        )
        #expect(
            authenticator.verify(
                request: register([(.authorization, "Basic eDp5")]),
                headerName: .authorization,
                ha1Lookup: ha1Lookup,
                now: testEpoch
            )
                == .missingCredentials
        )
        // Proxy-Authorization is a different header: the Authorization one is not looked at.
        #expect(
            authenticator.verify(
                request: register([(.authorization, ours)]),
                headerName: .proxyAuthorization,
                ha1Lookup: ha1Lookup,
                now: testEpoch
            )
                == .missingCredentials
        )
    }

    @Test func proxyAuthorizationIsVerified() throws {
        var authenticator = makeAuthenticator()
        let challenge = authenticator.challengeHeaders(stale: false, now: testEpoch)[0]
        let header = alice.authorization(challenge: challenge, method: "INVITE", uri: "sip:201@sip.busylamp.test")
        let invite = SIPRequest(
            method: .invite,
            uri: SIPURI("sip:201@sip.busylamp.test")!,
            headers: SIPHeaders([(.proxyAuthorization, header)])
        )
        #expect(
            authenticator.verify(request: invite, headerName: .proxyAuthorization, ha1Lookup: ha1Lookup, now: testEpoch)
                == .authenticated(username: alice.username)
        )
    }

    @Test(arguments: [
        "Digest", "Digest username=", "Digest \u{0}\u{0}\u{0}", "Digest realm=\"sip.busylamp.test\"",
        "Digest username=\"a\", username=\"a\", realm=\"sip.busylamp.test\"", String(repeating: "Digest ", count: 1000),
        "Digest username=\"" + String(repeating: "\\", count: 3000), "\u{FEFF}Digest username=\"a\"",
    ])
    func garbageAuthorizationIsMalformed(value: String) {
        var authenticator = makeAuthenticator()
        let outcome = authenticator.verify(
            request: register([(.authorization, value)]),
            headerName: .authorization,
            ha1Lookup: ha1Lookup,
            now: testEpoch
        )
        switch outcome {
        case .malformed(let error): #expect(!error.description.isEmpty)
        case .missingCredentials: #expect(!value.hasPrefix("Digest"))
        default: Issue.record("garbage gave \(outcome)")
        }
    }

    @Test func manyCredentialHeadersAreBounded() {
        var authenticator = makeAuthenticator()
        let other = #"Digest username="x", realm="other", nonce="n", uri="sip:r", response="00""#
        let junk = Array(repeating: (SIPHeaderName.authorization, other), count: 10_000)
        #expect(
            authenticator.verify(
                request: register(junk),
                headerName: .authorization,
                ha1Lookup: ha1Lookup,
                now: testEpoch
            ) == .realmMismatch
        )
    }
}
