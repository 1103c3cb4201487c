import Foundation

/// One dialog of a line, as the lamps and the dialog-info documents see it (RFC 4235 §4.1).
///
/// The call layer owns the real dialogs; this is what it reports of each to the line state
/// model. The ids and tags are the ones a phone may put in a `Replaces` header to pick the call
/// up, so they name the leg BusyLamp itself can replace.
public struct LineDialog: Sendable, Hashable, Identifiable {
    /// RFC 4235 §4.1.2 `direction`: who sent the INVITE, seen from the watched line.
    public enum Direction: String, Sendable, Hashable {
        /// The line called out.
        case initiator
        /// The line is being called.
        case recipient
    }

    /// RFC 4235 §3.7.1 dialog states (the FSM's `trying … terminated`).
    public enum State: String, Sendable, Hashable {
        case trying
        case proceeding
        case early
        case confirmed
        case terminated
    }

    /// One end of the dialog: `<local>` (the watched line) or `<remote>` (the other party).
    public struct Party: Sendable, Hashable {
        public var identity: String
        public var displayName: String?
        public var target: String?

        public init(identity: String, displayName: String? = nil, target: String? = nil) {
            self.identity = identity
            self.displayName = displayName
            self.target = target
        }
    }

    /// RFC 4235 §4.1.1: unique among the line's dialogs; mandatory (Grandstream, kamailio PR#99).
    public var id: String
    public var callID: String
    public var localTag: String?
    public var remoteTag: String?
    public var direction: Direction
    public var state: State
    public var local: Party
    public var remote: Party
    /// When the dialog began: group pickup takes the most recently started ringing call.
    public var startedAt: Date

    public init(
        id: String,
        callID: String,
        localTag: String?,
        remoteTag: String?,
        direction: Direction,
        state: State,
        local: Party,
        remote: Party,
        startedAt: Date
    ) {
        self.id = id
        self.callID = callID
        self.localTag = localTag
        self.remoteTag = remoteTag
        self.direction = direction
        self.state = state
        self.local = local
        self.remote = remote
        self.startedAt = startedAt
    }

    /// An incoming call that has not been answered: the lamp blinks and the key picks it up.
    public var isRinging: Bool { direction == .recipient && isEarly }

    var isEarly: Bool { state == .trying || state == .proceeding || state == .early }
}

/// What a lamp shows for a line (PRODUCT.md "Lamp states"), derived from its dialogs.
public enum Lamp: String, Sendable, Hashable {
    case idle
    /// An incoming call is ringing and nothing is answered.
    case ringing
    /// The line is calling out and nothing is answered.
    case dialing
    /// At least one call is answered.
    case busy
}

/// A line's state: the set of its live dialogs and whether it is registered. Everything the
/// lamps show is derived from it, so it cannot disagree with itself.
public struct LineState: Sendable, Hashable {
    /// The line's number (its address-of-record user).
    public var number: String
    public var isRegistered: Bool
    /// Live dialogs in the order they started. Terminated dialogs are removed.
    public private(set) var dialogs: [LineDialog]

    public init(number: String, isRegistered: Bool = false, dialogs: [LineDialog] = []) {
        self.number = number
        self.isRegistered = isRegistered
        self.dialogs = dialogs.filter { $0.state != .terminated }
    }

    /// Busy wins over ringing (a second call while talking still shows busy: Polycom ignores
    /// ringing after in-use, asterisk#2159), and ringing over dialing.
    public var lamp: Lamp {
        if dialogs.contains(where: { $0.state == .confirmed }) { return .busy }
        if dialogs.contains(where: \.isRinging) { return .ringing }
        if dialogs.contains(where: { $0.direction == .initiator && $0.isEarly }) { return .dialing }
        return .idle
    }

    /// The most recently started ringing dialog: what group pickup (`*88`) takes.
    public var latestRingingDialog: LineDialog? {
        dialogs.filter(\.isRinging).max { $0.startedAt < $1.startedAt }
    }

    /// Adds or replaces `dialog` (by id); a terminated dialog is removed. Returns whether
    /// anything a watcher sees changed.
    @discardableResult
    public mutating func apply(_ dialog: LineDialog) -> Bool {
        if let index = dialogs.firstIndex(where: { $0.id == dialog.id }) {
            if dialog.state == .terminated {
                dialogs.remove(at: index)
                return true
            }
            guard dialogs[index] != dialog else { return false }
            dialogs[index] = dialog
            return true
        }
        guard dialog.state != .terminated else { return false }
        dialogs.append(dialog)
        return true
    }

    /// Registration feeds PIDF open/closed. Returns whether it changed.
    @discardableResult
    public mutating func setRegistered(_ registered: Bool) -> Bool {
        guard isRegistered != registered else { return false }
        isRegistered = registered
        return true
    }
}
