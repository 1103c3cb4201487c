import BusyLampCore
import BusyLampServer
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle

/// What the server knows live: lamps, subscriptions, refusals, the diagnosis, and the event
/// stream. Read through the server's query seam and its feed, never from the store.
extension AdminServer {
    func live(_ accountID: String) async throws -> AccountLiveState {
        guard let state = await server.liveState(accountID: accountID) else {
            throw APIError.notFound("no account \"\(accountID)\"")
        }
        return state
    }

    func lineState(_ accountID: String, _ extensionNumber: String) async throws -> Response {
        let live = try await live(accountID)
        guard let entry = live.lines.first(where: { $0.line.extensionNumber == extensionNumber }) else {
            throw APIError.notFound("no line \(extensionNumber) in account \"\(accountID)\"")
        }
        return try JSONBody.response(API.LineStateBody(entry.line, entry.state))
    }

    func accountLamps(_ accountID: String) async throws -> Response {
        let live = try await live(accountID)
        return try JSONBody.response(API.LampList(lamps: live.lines.map { API.LineStateBody($0.line, $0.state) }))
    }

    func subscriptions(_ accountID: String, _ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let target = try Self.extensionQuery(query.get("target"), name: "target")
        let watcher = try Self.extensionQuery(query.get("watcher"), name: "watcher")
        let live = try await live(accountID)
        let now = Date()
        let bodies = live.subscriptions
            .map { API.SubscriptionBody($0, in: live.directory, now: now) }
            .filter { (target == nil || $0.target == target) && (watcher == nil || $0.watcher == watcher) }
            .sorted { ($0.target, $0.watcher, $0.id) < ($1.target, $1.watcher, $1.id) }
        return try JSONBody.response(API.SubscriptionList(subscriptions: bodies))
    }

    func refusals(_ accountID: String) async throws -> Response {
        let live = try await live(accountID)
        return try JSONBody.response(API.RefusalList(refusals: live.refusals.map(API.RefusalBody.init)))
    }

    func diagnose(_ accountID: String, _ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        guard let watcher = try Self.extensionQuery(query.get("watcher"), name: "watcher") else {
            throw APIError.badField("watcher", "is required (?watcher=EXT&target=EXT)")
        }
        guard let target = try Self.extensionQuery(query.get("target"), name: "target") else {
            throw APIError.badField("target", "is required (?watcher=EXT&target=EXT)")
        }
        let live = try await live(accountID)
        return try JSONBody.response(
            API.DiagnosisBody(live.diagnose(watcherExtension: watcher, targetExtension: target))
        )
    }

    static func extensionQuery(_ value: String?, name: String) throws -> String? {
        guard let value else { return nil }
        if let problem = FieldRules.digits(value, length: 1...20) { throw APIError.badField(name, problem) }
        return value
    }

    // MARK: Server-Sent Events

    /// One `lamp` event per change of a line of the account, after a `snapshot` (or the changes
    /// missed since `Last-Event-ID`), with a heartbeat comment while nothing happens.
    ///
    /// Event ids are `EPOCH-SEQUENCE`: an id from before a restart (another epoch) or older
    /// than the feed's history gets a fresh snapshot, never a silent gap.
    func events(_ accountID: String, _ request: Request) async throws -> Response {
        let feed = server.lineStateFeed
        let lastSeen = Self.sequence(
            fromEventID: request.headers[HTTPField.Name("Last-Event-ID")!]
                ?? request.uri.queryParameters.get("last_event_id").map { String($0) },
            epoch: feed.epoch
        )
        _ = try await live(accountID)  // 404 for an unknown account, before subscribing
        // Subscribe before reading the snapshot: a change in between is then both in the
        // snapshot and sent after it (harmless: every event is a line's whole state), never lost.
        let subscription = feed.subscribe(accountID: accountID, after: lastSeen)
        let snapshot = await server.liveState(accountID: accountID)
        let epoch = feed.epoch
        let heartbeat = configuration.heartbeatInterval
        var opening = "retry: 2000\n\n"
        if let missed = subscription.missed {
            for change in missed { opening += try Self.frame(change, epoch: epoch) }
        } else {
            let lamps = API.LampList(lamps: (snapshot?.lines ?? []).map { API.LineStateBody($0.line, $0.state) })
            opening += try Self.frame(
                event: "snapshot",
                id: "\(epoch)-\(subscription.sequenceAtStart)",
                data: lamps
            )
        }
        let changes = subscription.changes
        let firstFrames = opening
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: firstFrames))
            // One writer, two sources (changes and the heartbeat clock): merged into one stream.
            let (frames, output) = AsyncStream.makeStream(of: String.self)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await change in changes {
                        if let frame = try? Self.frame(change, epoch: epoch) { output.yield(frame) }
                    }
                    output.finish()  // the feed ended this subscriber (too slow): the client resumes
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: heartbeat)
                        output.yield(": heartbeat\n\n")
                    }
                }
                // A stream never ends by itself: on graceful shutdown (SIGTERM) it is closed, so
                // that the server stops at once (the browser reconnects to the next server).
                try await withGracefulShutdownHandler {
                    for await frame in frames {
                        try await writer.write(ByteBuffer(string: frame))
                    }
                } onGracefulShutdown: {
                    output.finish()
                }
                group.cancelAll()
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-store",
                HTTPField.Name("X-Accel-Buffering")!: "no",
            ],
            body: body
        )
    }

    static func sequence(fromEventID id: String?, epoch: String) -> UInt64? {
        guard let id, let dash = id.lastIndex(of: "-"), id[..<dash] == epoch else { return nil }
        return UInt64(id[id.index(after: dash)...])
    }

    static func frame(_ change: LineStateChange, epoch: String) throws -> String {
        try frame(event: "lamp", id: "\(epoch)-\(change.sequence)", data: API.LineStateBody(change))
    }

    static func frame(event: String, id: String, data: some Encodable) throws -> String {
        let json = String(decoding: try JSONBody.encoder.encode(data), as: UTF8.self)
        // JSON from the encoder has no raw newlines, so one `data:` line carries it.
        return "event: \(event)\nid: \(id)\ndata: \(json)\n\n"
    }
}
