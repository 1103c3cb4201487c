/// Where the directory is kept: the SQLite file of `--data`, later PostgreSQL.
///
/// Every method is synchronous and thread-safe, and a write is durable when it returns (the
/// admin API answers only after it). A method that changes several rows does so in one
/// transaction: a reader sees the directory before or after it, never between.
///
/// Conflicts are reported as ``DirectoryStoreError`` so that the admin API can answer 404 or
/// 409 without knowing the database.
public protocol DirectoryStore: Sendable {
    /// The whole directory, or `nil` when none was ever imported (no platform settings yet).
    func loadDirectory() throws -> Directory?

    /// Replaces everything (platform settings, accounts, lines, trunks) by `directory`, in one
    /// transaction: `busylamp import`. Registration bindings are not touched.
    func replaceDirectory(with directory: Directory) throws

    // MARK: Platform settings
    func platformSettings() throws -> PlatformSettings?
    func savePlatformSettings(_ settings: PlatformSettings) throws

    // MARK: Accounts
    func accounts() throws -> [Account]
    func account(id: String) throws -> Account?
    /// Throws ``DirectoryStoreError/Code/duplicateAccount`` if the id is taken.
    func insertAccount(_ account: Account) throws
    /// Throws ``DirectoryStoreError/Code/accountNotFound`` if there is no account with this id.
    func updateAccount(_ account: Account) throws
    /// Deletes the account and all its lines. Returns false if there was no such account.
    @discardableResult func deleteAccount(id: String) throws -> Bool

    // MARK: Lines
    /// The account's lines, in the order they were created (file order after an import).
    func lines(accountID: String) throws -> [Line]
    func line(accountID: String, extensionNumber: String) throws -> Line?
    func line(number: String) throws -> Line?
    /// Throws `accountNotFound`, `duplicateExtension` or `duplicateNumber`.
    func insertLine(_ line: Line) throws
    /// Replaces the line with the same account and extension. Throws `lineNotFound` or
    /// `duplicateNumber` (when the number changes to one that is taken).
    ///
    /// The HA1 values cover the number (the digest user name): a caller that changes the number
    /// must compute new credentials from a password, or the line can no longer authenticate.
    func updateLine(_ line: Line) throws
    /// Returns false if there was no such line.
    @discardableResult func deleteLine(accountID: String, extensionNumber: String) throws -> Bool

    // MARK: Trunks
    func trunks() throws -> [Trunk]
    /// Inserts the trunk, or replaces the one with the same name.
    func saveTrunk(_ trunk: Trunk) throws
    @discardableResult func deleteTrunk(name: String) throws -> Bool
}

/// A directory change the store refused: a duplicate or a missing row.
public struct DirectoryStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        case duplicateAccount
        case duplicateExtension
        case duplicateNumber
        case accountNotFound
        case lineNotFound
    }

    public var code: Code
    /// What was duplicate or missing, e.g. the account id or the number.
    public var subject: String

    public init(_ code: Code, subject: String) {
        self.code = code
        self.subject = subject
    }

    public var description: String {
        switch code {
        case .duplicateAccount: return "duplicate account \"\(subject)\""
        case .duplicateExtension: return "duplicate extension \"\(subject)\""
        case .duplicateNumber: return "duplicate number \"\(subject)\""
        case .accountNotFound: return "no account \"\(subject)\""
        case .lineNotFound: return "no line \"\(subject)\""
        }
    }
}
