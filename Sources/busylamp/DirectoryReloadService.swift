import BusyLampCore
import BusyLampServer
import BusyLampStore
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// `kill -HUP`: reads the `--directory` file again, replaces the stored directory with it and
/// applies it to the running server, so that rule changes reach live subscriptions at once
/// (presence turned off, a line moved to another group or deleted: its watchers get a final
/// NOTIFY). A file with an error changes nothing and is logged with its line.
struct DirectoryReloadService: Service {
    let fileImport: DirectoryFileImport
    let store: SQLiteStore
    let server: SIPServer
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                let directory = try fileImport.importNow(into: store)
                server.directoryChanged(directory)
                logger.info("Directory reloaded", metadata: [LogKey.file: "\(fileImport.file)"])
            } catch {
                logger.error(
                    "Directory not reloaded",
                    metadata: [LogKey.file: "\(fileImport.file)", LogKey.error: "\(error)"]
                )
            }
        }
    }
}
