import Foundation
import SIPCore

/// The server's entry point to digest authentication for one realm (the platform domain):
/// the challenge headers for a 401/407, and the verdict on a request's credentials.
///
/// ```swift
/// switch authenticator.verify(request: request, headerName: .authorization, ha1Lookup: directory.ha1, now: now) {
/// case .authenticated(let username): …
/// case .stale: respond 401 with authenticator.challengeHeaders(stale: true, now: now)
/// case …: respond 401 with authenticator.challengeHeaders(stale: false, now: now)
/// }
/// ```
/// A value the server holds and mutates on its event loop (verification updates replay counts).
public struct DigestAuthenticator: Sendable {
    public var realm: String
    public private(set) var verifier: DigestVerifier

    public init(realm: String, secret: [UInt8], policy: DigestPolicy = .default) {
        self.realm = realm
        self.verifier = DigestVerifier(policy: policy, secret: secret)
    }

    public var policy: DigestPolicy { verifier.policy }

    /// `WWW-Authenticate` / `Proxy-Authenticate` values, one per offered algorithm in the
    /// policy's order (MD5 first by default), sharing one new nonce.
    public func challengeHeaders(stale: Bool, now: Date) -> [String] {
        var generator = SystemRandomNumberGenerator()
        return challengeHeaders(realm: realm, stale: stale, now: now, using: &generator)
    }

    /// As `challengeHeaders(stale:now:)`, for another realm and with given randomness.
    public func challengeHeaders<R: RandomNumberGenerator>(
        realm: String,
        stale: Bool,
        now: Date,
        using generator: inout R
    ) -> [String] {
        verifier.challenges(realm: realm, stale: stale, now: now, using: &generator).map(\.headerValue)
    }

    /// Judges the request's `headerName` (`.authorization` for a UAS or registrar,
    /// `.proxyAuthorization` for a proxy) credentials for our realm.
    ///
    /// `servesHost(host)` says whether a host means this server: a digest `uri` may name the
    /// Request-URI, or the server itself without a user (SIPp's `sip:IP:PORT`, phones that
    /// write their registrar's address), but not another resource (``digestURI(_:names:servesHost:)``).
    public mutating func verify(
        request: SIPRequest,
        headerName: SIPHeaderName,
        ha1Lookup: DigestHA1Lookup,
        now: Date,
        servesHost: (String) -> Bool = { _ in false }
    ) -> DigestOutcome {
        verify(
            request: request,
            headerName: headerName,
            realm: realm,
            ha1Lookup: ha1Lookup,
            now: now,
            servesHost: servesHost
        )
    }

    /// As `verify(request:headerName:ha1Lookup:now:)` for `realm`.
    ///
    /// A request may carry several credentials (RFC 3261 §22.3: one per realm a proxy chain
    /// challenged); the first parseable one for `realm` is judged. When none is for `realm`,
    /// the answer is `.malformed` if one could not be parsed (it may have been ours),
    /// `.realmMismatch` if all were for other realms, and `.missingCredentials` if there were
    /// none.
    public mutating func verify(
        request: SIPRequest,
        headerName: SIPHeaderName,
        realm: String,
        ha1Lookup: DigestHA1Lookup,
        now: Date,
        servesHost: (String) -> Bool = { _ in false }
    ) -> DigestOutcome {
        var firstError: DigestCredentialsError?
        var sawOtherRealm = false
        for value in request.headers.values(headerName).prefix(Self.maximumCredentialsExamined) {
            do {
                let credentials = try DigestCredentials(parsing: value)
                guard credentials.realm == realm else {
                    sawOtherRealm = true
                    continue
                }
                guard Self.digestURI(credentials.uri, names: request.uri, servesHost: servesHost) else {
                    // Credentials made for another request (a captured header replayed on
                    // another line's SUBSCRIBE): they prove nothing about this one.
                    return .malformed(DigestCredentialsError(.uriMismatch, "uri is not the Request-URI"))
                }
                return verifier.verify(
                    credentials,
                    method: request.method.rawValue,
                    realm: realm,
                    now: now,
                    ha1Lookup: ha1Lookup
                )
            } catch  where error.code == .notDigest {
                continue  // a Basic (or other) credential alone is as good as none
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { return .malformed(firstError) }
        if sawOtherRealm { return .realmMismatch }
        return .missingCredentials
    }

    /// Whether the digest `uri` names the Request-URI (the same scheme, user and host, the
    /// host without case, RFC 3261 §19.1.4; phones differ in port and parameters), or this
    /// server without a user (`servesHost`). Credentials made for another line's URI do not
    /// name this request. A `uri` that is not a SIP URI must be the Request-URI exactly.
    static func digestURI(_ text: String, names requestURI: SIPURI, servesHost: (String) -> Bool) -> Bool {
        guard let uri = SIPURI(text) else { return text == requestURI.description }
        if uri.user == nil, servesHost(uri.hostWithoutBrackets) { return true }
        return uri.scheme.lowercased() == requestURI.scheme.lowercased() && uri.user == requestURI.user
            && uri.host.lowercased() == requestURI.host.lowercased()
    }

    /// Credentials header fields examined per request: a proxy chain adds one per hop that
    /// challenged; more than this is an attack on our CPU, not a real request.
    public static let maximumCredentialsExamined = 16
}
