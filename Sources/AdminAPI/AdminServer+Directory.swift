import BusyLampCore
import Foundation
import Hummingbird

/// Accounts and lines: read from the store, changed through ``DirectoryEditor`` (one store
/// transaction each, then applied to live traffic, then answered).
extension AdminServer {
    static let accountFields: Set<String> = ["id", "name", "presence", "same_network_only", "pickup"]
    static let pickupFields: Set<String> = ["directed", "group"]
    static let lineFields: Set<String> = ["extension", "number", "name", "password", "group", "presence"]

    // MARK: Accounts

    func listAccounts() async throws -> Response {
        let directory = try await editor.directory()
        return try JSONBody.response(
            API.AccountList(accounts: directory.accounts.map { API.AccountBody($0, in: directory) })
        )
    }

    func getAccount(_ id: String) async throws -> Response {
        let directory = try await editor.directory()
        guard let account = directory.account(id: id) else { throw APIError.notFound("no account \"\(id)\"") }
        return try JSONBody.response(API.AccountBody(account, in: directory))
    }

    func createAccount(_ request: Request) async throws -> Response {
        let body = try await JSONObjectBody.read(request, allowed: Self.accountFields)
        var draft = Account(id: try body.requiredString("id", validate: FieldRules.accountID))
        try apply(body, to: &draft)
        let account = draft
        let (_, directory) = try await editor.edit { store, _ in try store.insertAccount(account) }
        return try JSONBody.response(API.AccountBody(account, in: directory), status: .created)
    }

    func updateAccount(_ id: String, _ request: Request) async throws -> Response {
        let body = try await JSONObjectBody.read(request, allowed: Self.accountFields)
        if let newID = try body.string("id"), newID != id {
            throw APIError.badField("id", "an account's id cannot change")
        }
        let (account, directory) = try await editor.edit { store, current -> Account in
            guard var account = current.account(id: id) else {
                throw DirectoryStoreError(.accountNotFound, subject: id)
            }
            try apply(body, to: &account)
            try store.updateAccount(account)
            return account
        }
        return try JSONBody.response(API.AccountBody(account, in: directory))
    }

    func deleteAccount(_ id: String) async throws -> Response {
        let (deleted, _) = try await editor.edit { store, _ in try store.deleteAccount(id: id) }
        guard deleted else { throw APIError.notFound("no account \"\(id)\"") }
        return Response(status: .noContent)
    }

    /// The settable fields of an account, each checked (docs/admin-api.md).
    private func apply(_ body: JSONObjectBody, to account: inout Account) throws {
        if let name = try body.string("name", validate: FieldRules.name) { account.name = name }
        if case .some(let presence) = try body.optionalBool("presence") { account.presence = presence }
        if let sameNetwork = try body.bool("same_network_only") { account.sameNetworkOnly = sameNetwork }
        if let pickup = try body.object("pickup", allowed: Self.pickupFields) {
            if let directed = try pickup.string("directed", validate: FieldRules.pickupCode) {
                account.pickup.directed = directed
            }
            if let group = try pickup.string("group", validate: FieldRules.pickupCode) { account.pickup.group = group }
            if account.pickup.directed == account.pickup.group {
                throw APIError.badField("pickup.group", "must differ from the directed pickup code")
            }
        }
    }

    // MARK: Lines

    func listLines(_ accountID: String) async throws -> Response {
        let directory = try await editor.directory()
        guard directory.account(id: accountID) != nil else { throw APIError.notFound("no account \"\(accountID)\"") }
        return try JSONBody.response(
            API.LineList(lines: directory.lines(accountID: accountID).map { API.LineBody($0, in: directory) })
        )
    }

    func getLine(_ accountID: String, _ extensionNumber: String) async throws -> Response {
        let directory = try await editor.directory()
        let line = try Self.line(accountID, extensionNumber, in: directory)
        return try JSONBody.response(API.LineBody(line, in: directory))
    }

    func createLine(_ accountID: String, _ request: Request) async throws -> Response {
        let body = try await JSONObjectBody.read(request, allowed: Self.lineFields)
        let extensionNumber = try body.requiredString("extension", validate: FieldRules.extensionNumber)
        let number = try body.requiredString("number", validate: FieldRules.number)
        let password = try body.requiredString("password", validate: FieldRules.password)
        let name = try body.string("name", validate: FieldRules.name) ?? ""
        let group = try body.string("group", validate: FieldRules.group) ?? Line.defaultGroup
        let presence = try body.optionalBool("presence") ?? nil
        let (line, directory) = try await editor.edit { store, current -> Line in
            guard current.account(id: accountID) != nil else {
                throw DirectoryStoreError(.accountNotFound, subject: accountID)
            }
            let line = Line(
                accountID: accountID,
                extensionNumber: extensionNumber,
                number: number,
                name: name,
                group: group,
                presence: presence,
                credentials: Line.credentials(number: number, realm: current.platform.domain, password: password)
            )
            try store.insertLine(line)
            return line
        }
        return try JSONBody.response(API.LineBody(line, in: directory), status: .created)
    }

    func updateLine(_ accountID: String, _ extensionNumber: String, _ request: Request) async throws -> Response {
        let body = try await JSONObjectBody.read(request, allowed: Self.lineFields)
        if let newExtension = try body.string("extension"), newExtension != extensionNumber {
            throw APIError.badField("extension", "a line's extension cannot change: create a new line")
        }
        let name = try body.string("name", validate: FieldRules.name)
        let group = try body.string("group", validate: FieldRules.group)
        let presence = try body.optionalBool("presence")
        let password = try body.string("password", validate: FieldRules.password)
        let number = try body.string("number", validate: FieldRules.number)
        let (line, directory) = try await editor.edit { store, current -> Line in
            var line = try Self.line(accountID, extensionNumber, in: current)
            if let name { line.name = name }
            if let group { line.group = group }
            if case .some(let presence) = presence { line.presence = presence }
            if let number, number != line.number {
                // The digest hashes cover the number (the user name): a new number needs the
                // password to compute them again.
                guard password != nil else {
                    throw APIError.badField("password", "is required when the number changes")
                }
                line.number = number
            }
            if let password {
                line.credentials = Line.credentials(
                    number: line.number,
                    realm: current.platform.domain,
                    password: password
                )
            }
            try store.updateLine(line)
            return line
        }
        return try JSONBody.response(API.LineBody(line, in: directory))
    }

    func deleteLine(_ accountID: String, _ extensionNumber: String) async throws -> Response {
        let (deleted, _) = try await editor.edit { store, current -> Bool in
            guard current.account(id: accountID) != nil else {
                throw DirectoryStoreError(.accountNotFound, subject: accountID)
            }
            return try store.deleteLine(accountID: accountID, extensionNumber: extensionNumber)
        }
        guard deleted else { throw APIError.notFound("no line \(extensionNumber) in account \"\(accountID)\"") }
        return Response(status: .noContent)
    }

    static func line(_ accountID: String, _ extensionNumber: String, in directory: Directory) throws -> Line {
        guard directory.account(id: accountID) != nil else { throw APIError.notFound("no account \"\(accountID)\"") }
        guard let line = directory.line(accountID: accountID, extensionNumber: extensionNumber) else {
            throw APIError.notFound("no line \(extensionNumber) in account \"\(accountID)\"")
        }
        return line
    }
}
