/// Why an `Authorization` / `Proxy-Authorization` value could not be used. Answered with 400
/// (or a new challenge); `description` names the fault without echoing secrets.
public struct DigestCredentialsError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// The scheme is not `Digest` (e.g. `Basic`), or there is no scheme.
        case notDigest
        /// The auth-param list does not follow RFC 3261 §25.1 (`digest-response`).
        case syntax
        /// A parameter appears twice (RFC 7616 §3.4: each directive at most once).
        case duplicateParameter
        /// A required parameter is absent (`username`, `realm`, `nonce`, `uri`, `response`;
        /// with `qop`, also `cnonce` and `nc`).
        case missingParameter
        /// A named limit of `DigestCredentials.Limits` was exceeded.
        case tooLong
        /// `algorithm` names an algorithm we do not implement.
        case unsupportedAlgorithm
        /// `qop` is other than `auth` (we never offer `auth-int`).
        case unsupportedQualityOfProtection
        /// `nc` is not 1 to 8 hex digits.
        case invalidNonceCount
        /// The policy requires `qop=auth` and the credential has no `qop`.
        case qualityOfProtectionRequired
        /// `algorithm` is one we implement but the policy does not offer.
        case algorithmNotOffered
        /// The digest `uri` names another resource than the Request-URI (RFC 2617 §3.2.2.5:
        /// "the server SHOULD check ... If they do not match, the server SHOULD return 400").
        case uriMismatch
    }

    public var code: Code
    /// A short diagnostic; it names parameters, never their values.
    public var detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code.rawValue): \(detail)" }
}
