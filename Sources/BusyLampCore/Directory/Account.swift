/// A customer account: a set of lines that can watch each other's lamps and pick up each
/// other's calls. Lines of different accounts never see each other.
public struct Account: Sendable, Hashable, Identifiable {
    /// The account's identifier, e.g. `acme`; unique on the platform.
    public var id: String
    public var name: String
    /// Whether the account's lines show presence; `nil` follows the platform's `presenceDefault`.
    public var presence: Bool?
    /// When true, a watcher only sees a line if both registered from the same network.
    public var sameNetworkOnly: Bool
    public var pickup: PickupCodes

    public init(
        id: String,
        name: String = "",
        presence: Bool? = nil,
        sameNetworkOnly: Bool = false,
        pickup: PickupCodes = PickupCodes()
    ) {
        self.id = id
        self.name = name
        self.presence = presence
        self.sameNetworkOnly = sameNetworkOnly
        self.pickup = pickup
    }
}

/// The feature codes an account's phones dial to pick up a ringing call.
public struct PickupCodes: Sendable, Hashable {
    /// The default directed pickup prefix: `*89` followed by the ringing extension.
    public static let defaultDirected = "*89"
    /// The default group pickup code: picks up any ringing line of the caller's group.
    public static let defaultGroup = "*88"

    public var directed: String
    public var group: String

    public init(directed: String = PickupCodes.defaultDirected, group: String = PickupCodes.defaultGroup) {
        self.directed = directed
        self.group = group
    }
}
