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

    /// At start: imports the file unless it is unchanged since its last import.
    func applyAtStart(to store: SQLiteStore) throws -> Outcome {
        let text = try read()
        if (try store.loadDirectory()) != nil, (try? String(contentsOf: marker, encoding: .utf8)) == text {
            return .keptStore
        }
        try importText(text, into: store)
        return .imported
    }

    /// SIGHUP: the operator edited the file and wants it applied. Returns the new directory.
    @discardableResult
    func importNow(into store: SQLiteStore) throws -> Directory {
        try importText(try read(), into: store)
    }

    @discardableResult
    private func importText(_ text: String, into store: SQLiteStore) throws -> Directory {
        let directory = try ServerLauncher.loadDirectoryFile(file)
        try store.replaceDirectory(with: directory)
        try text.write(to: marker, atomically: true, encoding: .utf8)
        return directory
    }

    private func read() throws -> String {
        do {
            return try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw OperatorError(message: "\(file): cannot read the directory file")
        }
    }
}
