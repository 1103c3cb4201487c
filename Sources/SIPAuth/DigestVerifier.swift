import Foundation

/// What became of a request's digest credentials, and so what the server answers.
public enum DigestOutcome: Sendable, Hashable {
    /// The response is right, the nonce fresh and its count new: the request is from `username`.
    case authenticated(username: String)
    /// The response is right but the nonce has expired (or may have been used and forgotten):
    /// challenge again with `stale=TRUE`, and the client retries without asking its user.
    ///
    /// RFC 2617 §3.2.1: "The server should only set stale to TRUE if it receives a request for
    /// which the nonce is invalid but with a valid digest for that nonce (indicating that the
    /// client knows the correct username/password)."
    case stale
    /// Unknown user or wrong response hash: challenge again (or refuse), never `stale`.
    case wrongCredentials
    /// The credentials cannot be judged: 400, or a new challenge.
    case malformed(DigestCredentialsError)
    /// A right response with a nonce-count already seen for that nonce.
    case replayed
    /// The credentials are for another realm: challenge for ours.
    case realmMismatch
    /// The nonce is not one we issued for this realm (forged, mangled, or from before a restart):
    /// challenge again, not stale.
    case invalidNonce
    /// The request has no credentials of the scheme and header asked for: challenge.
    case missingCredentials
}

/// Looks up the stored HA1 (lower-case hex) for a user name and algorithm; `nil` for an
/// unknown user. Only HA1 values are stored (RFC 7616 §3.4.2), never passwords.
public typealias DigestHA1Lookup = (_ username: String, _ algorithm: DigestAlgorithm) -> String?

/// Verifies digest credentials against stored HA1 values, and issues the challenges that
/// precede them. Holds the `NonceManager` (the only state: replay-protection counts).
///
/// What it promises:
/// - The digest `uri` is not compared here: ``DigestAuthenticator`` compares it with the
///   Request-URI (scheme, user, host) before it calls `verify`, and the response hash covers
///   it (HA2 = H(method ":" digest-uri), RFC 3261 §22.4, RFC 7616 §3.4.3).
/// - The response is compared in constant time.
/// - Counts are recorded only after the response proved right, so forged requests cannot
///   use up a nonce's counts.
/// - Nothing is logged; neither HA1 nor the response leaves this type.
public struct DigestVerifier: Sendable {
    public var policy: DigestPolicy
    public private(set) var nonces: NonceManager

    public init(policy: DigestPolicy = .default, secret: [UInt8]) {
        self.policy = policy
        self.nonces = NonceManager(
            secret: secret,
            lifetime: policy.nonceLifetime,
            maximumTrackedNonces: policy.maximumTrackedNonces
        )
    }

    /// One challenge per offered algorithm, in the policy's order, all with one new nonce.
    public func challenges<R: RandomNumberGenerator>(
        realm: String,
        stale: Bool,
        now: Date,
        using generator: inout R
    ) -> [DigestChallenge] {
        let nonce = nonces.issueNonce(realm: realm, now: now, using: &generator)
        let opaque = nonces.opaque(realm: realm)
        return policy.algorithms.map { algorithm in
            DigestChallenge(
                realm: realm,
                nonce: nonce,
                opaque: opaque,
                algorithm: algorithm,
                offersQualityOfProtection: true,
                stale: stale
            )
        }
    }

    /// Judges `credentials` for a request with `method`, in `realm`, at `now`.
    public mutating func verify(
        _ credentials: DigestCredentials,
        method: String,
        realm: String,
        now: Date,
        ha1Lookup: DigestHA1Lookup
    ) -> DigestOutcome {
        guard credentials.realm == realm else { return .realmMismatch }
        guard policy.algorithms.contains(credentials.algorithm) else {
            return .malformed(
                DigestCredentialsError(
                    .algorithmNotOffered,
                    "algorithm \(credentials.algorithm.rawValue) is not offered"
                )
            )
        }
        let qop = credentials.qop.flatMap { value in
            credentials.nonceCountText.flatMap { nc in
                credentials.cnonce.map {
                    DigestAlgorithm.QualityOfProtection(nonceCount: nc, cnonce: $0, value: value)
                }
            }
        }
        if credentials.qop != nil, qop == nil || credentials.nonceCount == nil {
            // DigestCredentials(parsing:) refuses this; a hand-built value may not.
            return .malformed(DigestCredentialsError(.missingParameter, "qop without a valid nc or a cnonce"))
        }
        if qop == nil, policy.requiresQualityOfProtection {
            return .malformed(DigestCredentialsError(.qualityOfProtectionRequired, "qop=auth is required"))
        }

        let validity = nonces.validate(nonce: credentials.nonce, realm: realm, now: now)
        guard validity != .invalid else { return .invalidNonce }

        guard let ha1 = ha1Lookup(credentials.username, credentials.algorithm) else { return .wrongCredentials }
        let expected = credentials.algorithm.response(
            ha1: ha1,
            nonce: credentials.nonce,
            method: method,
            digestURI: credentials.uri,
            qop: qop
        )
        guard constantTimeEqual(expected.utf8, credentials.response.lowercased().utf8) else { return .wrongCredentials }

        // RFC 7616 §3.3 stale: "the previous request from the client was rejected because the
        // nonce value was stale" — only now that the digest proved right.
        guard validity == .fresh else { return .stale }

        let decision: NonceManager.NonceCountDecision
        if let count = credentials.nonceCount, qop != nil {
            decision = nonces.acceptNonceCount(count, for: credentials.nonce, realm: realm, now: now)
        } else {
            decision = nonces.acceptWithoutCount(for: credentials.nonce)
        }
        switch decision {
        case .accepted: return .authenticated(username: credentials.username)
        case .replayed: return .replayed
        case .forgotten: return .stale
        }
    }
}
