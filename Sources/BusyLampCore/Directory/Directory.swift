import SIPTransactions

/// The whole directory: the platform settings, accounts, their lines, and the trusted trunks.
///
/// A value: the registrar and later machines read a `Directory` snapshot and never see a
/// half-applied change. It promises that its lookups are consistent with its arrays; it does not
/// validate uniqueness itself (``DirectoryFile`` and the stores do), and when two lines share a
/// number the first one wins the lookup.
public struct Directory: Sendable, Hashable {
    public var platform: PlatformSettings
    public private(set) var accounts: [Account]
    public private(set) var lines: [Line]
    public var trunks: [Trunk]

    private var accountIndexByID: [String: Int]
    private var lineIndexByNumber: [String: Int]
    private var lineIndexByExtension: [AccountExtension: Int]

    private struct AccountExtension: Hashable, Sendable {
        var accountID: String
        var extensionNumber: String
    }

    public init(platform: PlatformSettings, accounts: [Account] = [], lines: [Line] = [], trunks: [Trunk] = []) {
        self.platform = platform
        self.accounts = accounts
        self.lines = lines
        self.trunks = trunks
        self.accountIndexByID = [:]
        self.lineIndexByNumber = [:]
        self.lineIndexByExtension = [:]
        self.reindex()
    }

    private mutating func reindex() {
        accountIndexByID = [:]
        lineIndexByNumber = [:]
        lineIndexByExtension = [:]
        for (index, account) in accounts.enumerated() where accountIndexByID[account.id] == nil {
            accountIndexByID[account.id] = index
        }
        for (index, line) in lines.enumerated() {
            if lineIndexByNumber[line.number] == nil { lineIndexByNumber[line.number] = index }
            let key = AccountExtension(accountID: line.accountID, extensionNumber: line.extensionNumber)
            if lineIndexByExtension[key] == nil { lineIndexByExtension[key] = index }
        }
    }

    public static func == (lhs: Directory, rhs: Directory) -> Bool {
        lhs.platform == rhs.platform && lhs.accounts == rhs.accounts && lhs.lines == rhs.lines
            && lhs.trunks == rhs.trunks
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(platform)
        hasher.combine(accounts)
        hasher.combine(lines)
        hasher.combine(trunks)
    }

    // MARK: Lookups

    public func account(id: String) -> Account? {
        accountIndexByID[id].map { accounts[$0] }
    }

    /// The line whose number is `number`: the digest user name and AOR user part.
    public func line(number: String) -> Line? {
        lineIndexByNumber[number].map { lines[$0] }
    }

    /// The line that `extensionNumber` dials within `accountID`.
    public func line(accountID: String, extensionNumber: String) -> Line? {
        lineIndexByExtension[AccountExtension(accountID: accountID, extensionNumber: extensionNumber)].map { lines[$0] }
    }

    /// The lines of one account, in directory order.
    public func lines(accountID: String) -> [Line] {
        lines.filter { $0.accountID == accountID }
    }

    /// The trunk a message from `peer` belongs to, if any (see ``Trunk/matches(_:)``).
    public func trunk(from peer: SIPPeer) -> Trunk? {
        trunks.first { $0.matches(peer) }
    }

    /// Where a line's effective presence setting comes from (PRODUCT.md rule 2).
    public enum PresenceSource: String, Sendable, Hashable {
        case line, account, platform
    }

    /// `line`'s presence: its own setting, else its account's, else the platform's, and which.
    public func presenceSetting(of line: Line) -> (value: Bool, source: PresenceSource) {
        if let presence = line.presence { return (presence, .line) }
        if let presence = account(id: line.accountID)?.presence { return (presence, .account) }
        return (platform.presenceDefault, .platform)
    }

    /// Whether `line` shows presence.
    public func showsPresence(_ line: Line) -> Bool { presenceSetting(of: line).value }

    // MARK: Changes (used by stores that keep a Directory in memory, and by tests)

    public mutating func setAccounts(_ accounts: [Account], lines: [Line]) {
        self.accounts = accounts
        self.lines = lines
        reindex()
    }
}

extension Directory: CustomStringConvertible {
    /// A summary without the lines' credentials, so that a directory can be logged.
    public var description: String {
        "directory \(platform.domain): \(accounts.count) accounts, \(lines.count) lines, \(trunks.count) trunks"
    }
}
