import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal HTTP/1.1 client over a non-blocking loopback socket, for the admin API tests: one
/// request per connection (`Connection: close`), Content-Length and chunked bodies, and an
/// event stream read as it arrives. Nothing of the server's own HTTP stack is in the way.
struct HTTPTestClient: Sendable {
    let port: Int
    var token: String?

    struct Response: Sendable, CustomStringConvertible {
        var status: Int
        /// Header names lower-cased.
        var headers: [String: String]
        var body: [UInt8]

        var text: String { String(decoding: body, as: UTF8.self) }
        /// The body as a JSON object (an empty one when it is not).
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
        }
        var description: String { "HTTP \(status) \(headers) \(text.prefix(2000))" }
    }

    func get(_ path: String, headers: [String: String] = [:]) async throws -> Response {
        try await request("GET", path, headers: headers)
    }

    func send(_ method: String, _ path: String, json: String) async throws -> Response {
        try await request(method, path, body: Array(json.utf8), headers: ["Content-Type": "application/json"])
    }

    func request(
        _ method: String,
        _ path: String,
        body: [UInt8] = [],
        headers: [String: String] = [:],
        within timeout: Duration = .seconds(10)
    ) async throws -> Response {
        let connection = try Connection(port: port)
        try await connection.write(head(method, path, headers: headers, bodyLength: body.count) + body)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            if let response = try Self.parse(connection.received, complete: connection.closed) { return response }
            if connection.closed { throw EndToEndFailure("HTTP \(method) \(path): connection closed mid-response") }
            if clock.now >= deadline {
                throw EndToEndFailure("HTTP \(method) \(path): no whole response in \(timeout)")
            }
            try await connection.read()
        }
    }

    func head(_ method: String, _ path: String, headers: [String: String], bodyLength: Int) -> [UInt8] {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if let token, headers["Authorization"] == nil { text += "Authorization: Bearer \(token)\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if bodyLength > 0 || method == "POST" || method == "PATCH" { text += "Content-Length: \(bodyLength)\r\n" }
        return Array((text + "\r\n").utf8)
    }

    /// A whole response in `bytes`, or nil while more is needed.
    static func parse(_ bytes: [UInt8], complete: Bool) throws -> Response? {
        guard let headEnd = find([13, 10, 13, 10], in: bytes) else { return nil }
        let head = String(decoding: bytes[..<headEnd], as: UTF8.self).components(separatedBy: "\r\n")
        let statusWords = head[0].split(separator: " ")
        guard statusWords.count >= 2, let status = Int(statusWords[1]) else {
            throw EndToEndFailure("not an HTTP status line: \(head[0])")
        }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces
            )
        }
        let rest = Array(bytes[(headEnd + 4)...])
        if let length = headers["content-length"].flatMap(Int.init) {
            return rest.count >= length
                ? Response(status: status, headers: headers, body: Array(rest.prefix(length))) : nil
        }
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            guard let (body, finished) = dechunk(rest), finished else { return nil }
            return Response(status: status, headers: headers, body: body)
        }
        if status == 204 || status == 304 { return Response(status: status, headers: headers, body: []) }
        return complete ? Response(status: status, headers: headers, body: rest) : nil
    }

    /// The chunks decoded so far, and whether the last (empty) chunk was seen.
    static func dechunk(_ bytes: [UInt8]) -> ([UInt8], Bool)? {
        var body: [UInt8] = []
        var index = 0
        while true {
            guard let lineEnd = find([13, 10], in: bytes, from: index) else { return (body, false) }
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
            if size == 0 { return (body, true) }
            let start = lineEnd + 2
            guard bytes.count >= start + size + 2 else {
                body += bytes[start..<min(bytes.count, start + size)]
                return (body, false)
            }
            body += bytes[start..<(start + size)]
            index = start + size + 2
        }
    }

    static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int = 0) -> Int? {
        guard bytes.count >= needle.count, start <= bytes.count - needle.count else { return nil }
        for index in start...(bytes.count - needle.count) where Array(bytes[index..<(index + needle.count)]) == needle {
            return index
        }
        return nil
    }

    // MARK: Server-Sent Events

    /// One event of a stream: its `event:`, `id:` and `data:` fields.
    struct Event: Sendable {
        var event: String
        var id: String?
        var data: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:] }
    }

    /// An open event stream: `next(within:)` returns the next event (comments skipped).
    final class EventStream: @unchecked Sendable {
        // @unchecked: used by one test task at a time.
        let connection: Connection
        let status: Int
        private var consumed = 0

        init(connection: Connection, status: Int) {
            self.connection = connection
            self.status = status
        }

        /// Every event received so far and not yet returned is parsed from the decoded body.
        func next(within timeout: Duration) async throws -> Event? {
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: timeout)
            while true {
                let bytes = connection.received
                if let headEnd = HTTPTestClient.find([13, 10, 13, 10], in: bytes),
                    let (body, _) = HTTPTestClient.dechunk(Array(bytes[(headEnd + 4)...]))
                {
                    let text = String(decoding: body, as: UTF8.self)
                    let blocks = text.components(separatedBy: "\n\n")
                    // The last block may be incomplete.
                    while consumed < blocks.count - 1 {
                        let block = blocks[consumed]
                        consumed += 1
                        var event = Event(event: "message", id: nil, data: "")
                        var isEvent = false
                        for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
                            if line.hasPrefix("event: ") {
                                event.event = String(line.dropFirst(7))
                                isEvent = true
                            }
                            if line.hasPrefix("id: ") { event.id = String(line.dropFirst(4)) }
                            if line.hasPrefix("data: ") {
                                event.data += String(line.dropFirst(6))
                                isEvent = true
                            }
                        }
                        if isEvent { return event }
                    }
                }
                if connection.closed || clock.now >= deadline { return nil }
                try await connection.read()
            }
        }

        /// Comments (`: heartbeat`) seen so far in the stream.
        var commentCount: Int {
            let bytes = connection.received
            guard let headEnd = HTTPTestClient.find([13, 10, 13, 10], in: bytes),
                let (body, _) = HTTPTestClient.dechunk(Array(bytes[(headEnd + 4)...]))
            else { return 0 }
            // Lines of the decoded stream (split on the byte: "\r\n" is one Character in Swift).
            return body.split(separator: 10).filter { $0.first == UInt8(ascii: ":") }.count
        }
    }

    func events(_ path: String, headers: [String: String] = [:]) async throws -> EventStream {
        let connection = try Connection(port: port)
        try await connection.write(
            head("GET", path, headers: ["Accept": "text/event-stream"].merging(headers) { $1 }, bodyLength: 0)
        )
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(10))
        while HTTPTestClient.find([13, 10, 13, 10], in: connection.received) == nil {
            if connection.closed || clock.now >= deadline { throw EndToEndFailure("no event stream head from \(path)") }
            try await connection.read()
        }
        let statusLine = String(decoding: connection.received.prefix(12), as: UTF8.self)
        let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
        return EventStream(connection: connection, status: status)
    }

    /// One TCP connection to 127.0.0.1:`port`.
    final class Connection: @unchecked Sendable {
        // @unchecked: used by one task at a time.
        private let descriptor: Int32
        private(set) var received: [UInt8] = []
        private(set) var closed = false

        init(port: Int) throws {
            descriptor = try LoopbackSocket.connectedDescriptor(.tcp, to: port)
        }

        deinit { close(descriptor) }

        func write(_ bytes: [UInt8]) async throws {
            var offset = 0
            while offset < bytes.count {
                let count = bytes[offset...].withUnsafeBytes {
                    Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
                }
                if count > 0 {
                    offset += count
                } else if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                    try await Task.sleep(for: .milliseconds(2))
                } else {
                    throw EndToEndFailure("HTTP send: errno \(errno)")
                }
            }
        }

        /// Reads what is there, or waits a little.
        func read() async throws {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                received += chunk[0..<count]
            } else if count == 0 {
                closed = true
            } else if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                try await Task.sleep(for: .milliseconds(5))
            } else if errno == ECONNRESET {
                closed = true
            } else {
                throw EndToEndFailure("HTTP read: errno \(errno)")
            }
        }
    }
}
