import Foundation

/// A fresh folder under the system's temporary directory, removed by `remove()`.
struct TemporaryFolder {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("busylamp-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }

    /// The bytes of every file in the folder (the database, its WAL and shared-memory files).
    func allBytes() throws -> [Data] {
        try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)
            .map { try Data(contentsOf: $0) }
    }
}
