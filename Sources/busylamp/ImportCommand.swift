import ArgumentParser
import Foundation

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Load a directory file into the store, replacing its directory."
    )

    @Argument(help: "The directory file (YAML).")
    var file: String

    @Option(help: "The data folder of the embedded store (default ./busylamp-data).")
    var data: String?

    @Option(help: "sqlite:PATH or postgres://USER@HOST:PORT/DB.")
    var store: String?

    func run() async throws {
        var options = try ServerOptions.parse([])
        options.data = data
        options.store = store
        let resolved = try options.resolve()
        let directory = try ServerLauncher.loadDirectoryFile(file)
        let sqlite = try ServerLauncher.openStore(resolved.storeLocation)
        try sqlite.replaceDirectory(with: directory)
        try sqlite.close()
        print(
            "imported \(directory.accounts.count) accounts, \(directory.lines.count) lines, "
                + "\(directory.trunks.count) trunks into \(sqlite.path)"
        )
    }
}
