import BusyLampCore
import BusyLampServer
import Foundation

/// Every change of the directory through the API: one store transaction, then the server is
/// given the new directory (the path SIGHUP takes), and only then the client gets its 2xx.
///
/// An actor so that two changes never apply out of order: each reads back the directory it
/// wrote before the next one writes, and the server sees them in the order the store did.
actor DirectoryEditor {
    let store: any DirectoryStore
    let server: SIPServer

    init(store: any DirectoryStore, server: SIPServer) {
        self.store = store
        self.server = server
    }

    /// The directory as stored now.
    func directory() throws -> Directory {
        guard let directory = try store.loadDirectory() else {
            throw APIError(.serviceUnavailable, "no_directory", "no directory has been imported")
        }
        return directory
    }

    /// Runs `change` (one store transaction), then applies the stored directory to live traffic.
    func edit<Result: Sendable>(
        _ change: @Sendable (any DirectoryStore, Directory) throws -> Result
    ) async throws -> (Result, Directory) {
        let before = try directory()
        let result: Result
        do {
            result = try change(store, before)
        } catch let error as DirectoryStoreError {
            throw Self.apiError(error)
        }
        let after = try directory()
        await server.applyDirectory(after)
        return (result, after)
    }

    static func apiError(_ error: DirectoryStoreError) -> APIError {
        switch error.code {
        case .duplicateAccount: return .conflict("an account \"\(error.subject)\" exists already", field: "id")
        case .duplicateExtension:
            return .conflict("extension \(error.subject) is taken in this account", field: "extension")
        case .duplicateNumber: return .conflict("number \(error.subject) is taken on the platform", field: "number")
        case .accountNotFound: return .notFound("no account \"\(error.subject)\"")
        case .lineNotFound: return .notFound("no line \"\(error.subject)\"")
        }
    }
}
