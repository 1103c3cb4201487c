/// The platform-wide settings of a directory: the SIP domain and the registrar's expiry limits.
///
/// The domain is also the digest realm (INTERFACE.md), so the lines' stored HA1 values are only
/// valid for the domain they were computed with: changing the domain needs every password again.
public struct PlatformSettings: Sendable, Hashable {
    /// The default of `presence_default`: accounts show presence unless they say otherwise.
    public static let defaultPresence = true
    /// The default of `min_expires`, in seconds. RFC 3261 §10.3: a REGISTER (and later a
    /// SUBSCRIBE) asking for less gets 423 with `Min-Expires`.
    public static let defaultMinimumExpires = 60
    /// The default of `max_expires`, in seconds: a longer expiry is shortened to this.
    public static let defaultMaximumExpires = 3600

    /// The platform's SIP domain and digest realm, e.g. `sip.busylamp.test`.
    public var domain: String
    /// Whether an account whose own `presence` is unset shows presence.
    public var presenceDefault: Bool
    /// The shortest expiry accepted, in seconds (`min_expires`).
    public var minimumExpires: Int
    /// The longest expiry granted, in seconds (`max_expires`).
    public var maximumExpires: Int

    public init(
        domain: String,
        presenceDefault: Bool = PlatformSettings.defaultPresence,
        minimumExpires: Int = PlatformSettings.defaultMinimumExpires,
        maximumExpires: Int = PlatformSettings.defaultMaximumExpires
    ) {
        self.domain = domain
        self.presenceDefault = presenceDefault
        self.minimumExpires = minimumExpires
        self.maximumExpires = maximumExpires
    }
}
