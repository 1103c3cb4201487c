import BusyLampCore
import Foundation
import GRDB
import SIPCore
import SIPTransactions

extension SQLiteStore: CallTeardownStore {
    public func saveCallTeardowns(_ teardowns: [CallTeardown], removing: [String]) throws {
        guard !teardowns.isEmpty || !removing.isEmpty else { return }
        try writer.write { db in
            for teardown in teardowns { try CallTeardownRecord(teardown).upsert(db) }
            if !removing.isEmpty {
                try CallTeardownRecord.filter(removing.contains(CallTeardownRecord.Columns.callID)).deleteAll(db)
            }
        }
    }

    public func allCallTeardowns() throws -> [CallTeardown] {
        try writer.read { db in try CallTeardownRecord.order(Column.rowID).fetchAll(db).map(\.teardown) }
    }
}

/// A row of `call_teardowns`: the call id and its steps as JSON. Each message is kept as its
/// parts (method or status, URI, header fields in order, body), not as wire text: the requests
/// of a teardown have no Via yet (the driver writes one as it sends), so a parser would refuse
/// them. A peer is kept without its connection id, which means nothing to the next process.
struct CallTeardownRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "call_teardowns"

    enum Columns {
        static let callID = Column("call_id")
        static let steps = Column("steps")
    }

    var teardown: CallTeardown

    init(_ teardown: CallTeardown) { self.teardown = teardown }

    init(row: Row) throws {
        let callID: String = row[Columns.callID]
        let text: String = row[Columns.steps]
        let corrupt = { (problem: String) in
            StoreCorruption(table: Self.databaseTableName, problem: "call \(callID): \(problem)")
        }
        let stored: [StoredStep]
        do {
            stored = try JSONDecoder().decode([StoredStep].self, from: Data(text.utf8))
        } catch {
            throw corrupt("steps are not the JSON written: \(error)")
        }
        teardown = CallTeardown(callID: callID, steps: try stored.map { try $0.step(orThrow: corrupt) })
    }

    func encode(to container: inout PersistenceContainer) throws {
        container[Columns.callID] = teardown.callID
        let json = try JSONEncoder().encode(teardown.steps.map(StoredStep.init))
        container[Columns.steps] = String(decoding: json, as: UTF8.self)
    }
}

/// One ``CallTeardown/Step`` as JSON.
private struct StoredStep: Codable {
    enum Kind: String, Codable { case answer, request, cancel }

    var kind: Kind
    var message: StoredRequest
    /// `cancel`: the fork's INVITE, whose 487 we acknowledge.
    var invite: StoredRequest?
    var peer: StoredPeer
    /// `answer`: the final response's status, reason and To tag.
    var status: Int?
    var reason: String?
    var toTag: String?
    /// `cancel`: the INVITE's branch, which the CANCEL must carry.
    var branch: String?

    init(_ step: CallTeardown.Step) {
        switch step {
        case .answer(let invite, let peer, let status, let reason, let toTag):
            self.init(kind: .answer, message: StoredRequest(invite), peer: StoredPeer(peer))
            self.status = status
            self.reason = reason
            self.toTag = toTag
        case .request(let request, let peer):
            self.init(kind: .request, message: StoredRequest(request), peer: StoredPeer(peer))
        case .cancel(let cancel, let invite, let branch, let peer):
            self.init(kind: .cancel, message: StoredRequest(cancel), peer: StoredPeer(peer))
            self.invite = StoredRequest(invite)
            self.branch = branch
        }
    }

    private init(kind: Kind, message: StoredRequest, peer: StoredPeer) {
        self.kind = kind
        self.message = message
        self.peer = peer
    }

    func step(orThrow corrupt: (String) -> StoreCorruption) throws -> CallTeardown.Step {
        let request = try message.request(orThrow: corrupt)
        let peer = try peer.peer(orThrow: corrupt)
        switch kind {
        case .answer:
            guard let status, let reason, let toTag else { throw corrupt("an answer without status, reason or tag") }
            return .answer(invite: request, from: peer, status: status, reason: reason, toTag: toTag)
        case .request:
            return .request(request, to: peer)
        case .cancel:
            guard let invite, let branch else { throw corrupt("a CANCEL without its INVITE or branch") }
            return .cancel(request, invite: try invite.request(orThrow: corrupt), branch: branch, to: peer)
        }
    }
}

private struct StoredRequest: Codable {
    var method: String
    var uri: String
    /// Name and value of each field, in order.
    var headers: [[String]]
    var body: Data

    init(_ request: SIPRequest) {
        method = request.method.rawValue
        uri = request.uri.description
        headers = request.headers.fields.map { [$0.name.description, $0.value] }
        body = Data(request.body)
    }

    func request(orThrow corrupt: (String) -> StoreCorruption) throws -> SIPRequest {
        guard let parsedURI = SIPURI(uri) else { throw corrupt("unreadable Request-URI \"\(uri)\"") }
        var fields = SIPHeaders()
        for field in headers {
            guard field.count == 2 else { throw corrupt("a header that is not a name and a value") }
            fields.add(SIPHeaderName(field[0]), field[1])
        }
        return SIPRequest(method: SIPMethod(method), uri: parsedURI, headers: fields, body: Array(body))
    }
}

private struct StoredPeer: Codable {
    var transport: String
    var host: String
    var port: Int
    var listener: UInt16?

    init(_ peer: SIPPeer) {
        transport = peer.transport.rawValue
        host = peer.host
        port = peer.port
        listener = peer.listener
    }

    func peer(orThrow corrupt: (String) -> StoreCorruption) throws -> SIPPeer {
        guard let kind = SIPPeer.Transport(rawValue: transport) else { throw corrupt("unknown transport \(transport)") }
        return SIPPeer(transport: kind, host: host, port: port, listener: listener)
    }
}
