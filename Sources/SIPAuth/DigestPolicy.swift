/// The operator's choices for digest authentication: which algorithms are offered and in which
/// order, how long a nonce lives, and whether `qop=auth` is required.
///
/// The defaults fit the phones in the field: MD5 first, because most phones and SIPp speak only
/// MD5 and some answer the first challenge whatever its algorithm; SHA-256 second for the
/// phones that follow RFC 8760.
public struct DigestPolicy: Sendable, Hashable {
    /// Algorithms offered, most preferred first; one challenge header is sent per algorithm, in
    /// this order. A credential with an algorithm outside this list is refused.
    ///
    /// RFC 8760 §2.4 (paraphrased): a UAS that supports several algorithms sends one challenge
    /// per algorithm, in its order of preference.
    public var algorithms: [DigestAlgorithm]

    /// How long after it is issued a nonce is accepted. A correct response with an older nonce
    /// is answered with a new challenge carrying `stale=TRUE` (RFC 7616 §3.3).
    public var nonceLifetime: Duration

    /// Whether a credential without `qop` (RFC 2069 style, which has no nonce-count and so no
    /// replay protection within the nonce's lifetime) is refused.
    public var requiresQualityOfProtection: Bool

    /// How many nonces' highest nonce-count are remembered for replay protection (see
    /// `NonceManager`). Beyond it the oldest entries are forgotten, and a credential that may
    /// have used a forgotten nonce is answered `stale` so that the client takes a new nonce.
    public var maximumTrackedNonces: Int

    public init(
        algorithms: [DigestAlgorithm] = [.md5, .sha256],
        nonceLifetime: Duration = .seconds(300),
        requiresQualityOfProtection: Bool = false,
        maximumTrackedNonces: Int = DigestPolicy.defaultMaximumTrackedNonces
    ) {
        self.algorithms = algorithms
        self.nonceLifetime = nonceLifetime
        self.requiresQualityOfProtection = requiresQualityOfProtection
        self.maximumTrackedNonces = maximumTrackedNonces
    }

    /// The default policy: MD5 then SHA-256, nonces for 300 s, `qop` optional, 10,000 nonces
    /// tracked (about 1 MB; far more than a deployment registers within one nonce lifetime).
    public static let `default` = DigestPolicy()

    /// 100,000 nonces: a nonce is tracked from its first use until it expires, so this bounds
    /// authentications with distinct nonces per `nonceLifetime` (300 s), not phones. Past it the
    /// oldest are forgotten, and with them every nonce issued in the same second or before
    /// (answered `stale=true`): 10,000 did that to challenges answered a second late under a
    /// 10,000 SUBSCRIBE/s burst. About 150 bytes each, so 15 MB at most.
    public static let defaultMaximumTrackedNonces = 100_000
}
