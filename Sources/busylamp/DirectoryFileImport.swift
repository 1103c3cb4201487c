import BusyLampCore
import BusyLampStore
import Foundation

/// How `serve --directory FILE` and the admin API share one directory without losing either's
/// changes (PRODUCT.md, "Nothing lost": what the API accepted survives a restart).
///
/// The file is imported into the store when the store has no directory yet or when the file
/// differs from the one last imported (its text is kept beside the database). A restart with
/// the same, unedited file keeps the store as the API left it; an edited file, or SIGHUP,
/// replaces the directory with the file, as the operator asked.
struct DirectoryFileImport {
    let file: String
    /// The text of the file at its last import.
    let marker: URL

    init(file: String, dataDirectory: URL) {
        self.file = file
        self.marker = dataDirectory.appendingPathComponent("directory-file.last-import")
    }

    enum Outcome {
        case imported
        /// The file is the one last imported: the store (and the API's changes) were kept.
        case keptStore
    }

    /// The file read and checked: what a start applies once the store is open.
    struct CheckedFile {
        let text: String
        let directory: Directory
    }

    /// Reads and checks the file, before anything is opened or made: a bad file stops the
    /// start with its file and line, leaving no data folder behind.
    func check() throws -> CheckedFile {
        let text = try read()
        return CheckedFile(text: text, directory: try ServerLauncher.loadDirectoryFile(file))
    }

    /// At start: imports the checked file unless it is unchanged since its last import.
    func applyAtStart(_ checked: CheckedFile, to store: SQLiteStore) throws -> Outcome {
        if (try store.loadDirectory()) != nil, (try? String(contentsOf: marker, encoding: .utf8)) == checked.text {
            return .keptStore
        }
        try save(checked, into: store)
        return .imported
    }

    /// SIGHUP: the operator edited the file and wants it applied. Returns the new directory.
    @discardableResult
    func importNow(into store: SQLiteStore) throws -> Directory {
        let checked = try check()
        try save(checked, into: store)
        return checked.directory
    }

    private func save(_ checked: CheckedFile, into store: SQLiteStore) throws {
        try store.replaceDirectory(with: checked.directory)
        try checked.text.write(to: marker, atomically: true, encoding: .utf8)
    }

    private func read() throws -> String {
        do {
            return try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw OperatorError(message: "\(file): cannot read the directory file")
        }
    }
}
