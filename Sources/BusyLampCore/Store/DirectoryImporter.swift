import Foundation

/// `busylamp import FILE`: validates a directory file and replaces the stored directory with it.
///
/// It promises all or nothing: a file with any problem changes nothing (the error names the file
/// and line), and a valid one replaces the whole directory in one transaction of the store.
public enum DirectoryImporter {
    /// What an import wrote, for the command's one-line report.
    public struct Summary: Sendable, Hashable, CustomStringConvertible {
        public var accounts: Int
        public var lines: Int
        public var trunks: Int

        public init(accounts: Int, lines: Int, trunks: Int) {
            self.accounts = accounts
            self.lines = lines
            self.trunks = trunks
        }

        public var description: String {
            "imported \(accounts) account\(accounts == 1 ? "" : "s"), \(lines) line\(lines == 1 ? "" : "s"), \(trunks) trunk\(trunks == 1 ? "" : "s")"
        }
    }

    /// Loads the file at `url` (throwing ``DirectoryFileError``) and stores it.
    @discardableResult
    public static func importFile(at url: URL, into store: some DirectoryStore) throws -> Summary {
        let directory = try DirectoryFile.load(contentsOf: url)
        return try importDirectory(directory, into: store)
    }

    /// Stores an already validated directory.
    @discardableResult
    public static func importDirectory(_ directory: Directory, into store: some DirectoryStore) throws -> Summary {
        try store.replaceDirectory(with: directory)
        return Summary(accounts: directory.accounts.count, lines: directory.lines.count, trunks: directory.trunks.count)
    }
}
