import Foundation

/// The SIP messages baresip printed with `-s` (its SIP trace), read back from its output.
///
/// baresip 1.0 prints each message it sends or receives as one block:
/// `ESC[36;1m#\n`, the line `UDP <source> -> <destination>\n`, the message as it went on the
/// wire, then `ESC[;m\n`. Anything between blocks is its ordinary log (`info` lines). The tests
/// read the trace, not our own parser, so that what they check is what baresip itself saw.
struct BaresipTrace {
    struct Message {
        /// True when the server sent it (its source is the server's address).
        var fromServer: Bool
        /// The transport baresip names in the trace: `UDP`, `TCP` or `TLS`.
        var transport: String
        /// `REGISTER sip:… SIP/2.0` or `SIP/2.0 200 OK`.
        var startLine: String
        var headers: [(name: String, value: String)]
        var body: String

        /// The method of a request, nil for a response.
        var method: String? {
            startLine.hasPrefix("SIP/2.0 ") ? nil : startLine.split(separator: " ").first.map(String.init)
        }

        /// The status code of a response, nil for a request.
        var statusCode: Int? {
            guard startLine.hasPrefix("SIP/2.0 ") else { return nil }
            return Int(startLine.dropFirst("SIP/2.0 ".count).prefix(3))
        }

        /// The method named by CSeq: what a response answers.
        var cseqMethod: String? {
            header("CSeq")?.split(separator: " ").last.map(String.init)
        }

        /// The first value of a header, by full or compact name (RFC 3261 §7.3.3), case-insensitively.
        func header(_ name: String) -> String? {
            allHeaders(name).first
        }

        func allHeaders(_ name: String) -> [String] {
            let names = Set([name.lowercased()] + (Self.compactNames[name.lowercased()].map { [$0] } ?? []))
            return headers.filter { names.contains($0.name.lowercased()) }.map(\.value)
        }

        private static let compactNames = [
            "call-id": "i", "contact": "m", "content-length": "l", "content-type": "c", "event": "o",
            "from": "f", "to": "t", "via": "v", "supported": "k",
        ]

        /// One line for a failure message: direction, start line and the headers that explain it.
        var summary: String {
            var line = (fromServer ? "server -> baresip: " : "baresip -> server: ") + startLine
            for name in ["CSeq", "Event", "Expires", "Subscription-State", "Content-Type"] {
                if let value = header(name) { line += " | \(name): \(value)" }
            }
            for challenge in allHeaders("WWW-Authenticate") + allHeaders("Proxy-Authenticate") {
                line += " | challenge algorithm=\(Self.algorithm(of: challenge) ?? "(none, MD5)")"
            }
            if let basic = BaresipTrace.basicStatus(in: body) { line += " | <basic>\(basic)</basic>" }
            return line
        }

        static func algorithm(of challenge: String) -> String? {
            guard let range = challenge.range(of: "algorithm=", options: .caseInsensitive) else { return nil }
            let rest = challenge[range.upperBound...]
            return
                rest.prefix { $0 != "," && $0 != " " }
                .trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
    }

    static let blockStart = "\u{1B}[36;1m#\n"
    static let blockEnd = "\u{1B}[;m"

    var messages: [Message]

    /// Parses every complete trace block of `output`; `serverPort` tells which side sent it.
    init(_ output: String, serverPort: Int) {
        let server = "127.0.0.1:\(serverPort)"
        var messages: [Message] = []
        for block in output.components(separatedBy: Self.blockStart).dropFirst() {
            guard let end = block.range(of: Self.blockEnd) else { continue }  // still being written
            let text = String(block[..<end.lowerBound])
            guard let firstLineEnd = text.range(of: "\n") else { continue }
            // `UDP 127.0.0.1:a -> 127.0.0.1:b`
            let route = text[..<firstLineEnd.lowerBound].split(separator: " ")
            guard route.count == 4, route[2] == "->" else { continue }
            let wire = String(text[firstLineEnd.upperBound...])
            let head: String
            let body: String
            if let separator = wire.range(of: "\r\n\r\n") {
                head = String(wire[..<separator.lowerBound])
                body = String(wire[separator.upperBound...])
            } else {
                head = wire
                body = ""
            }
            var lines = head.components(separatedBy: "\r\n")
            guard !lines.isEmpty else { continue }
            let startLine = lines.removeFirst()
            var headers: [(name: String, value: String)] = []
            for line in lines {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers.append(
                    (
                        String(line[..<colon]).trimmingCharacters(in: .whitespaces),
                        String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
                    )
                )
            }
            messages.append(
                Message(
                    fromServer: route[1] == server,
                    transport: String(route[0]),
                    startLine: startLine,
                    headers: headers,
                    body: body
                )
            )
        }
        self.messages = messages
    }

    /// The final responses the server sent to requests of `method`.
    func responses(to method: String) -> [Message] {
        messages.filter { $0.fromServer && $0.cseqMethod == method && ($0.statusCode ?? 0) >= 200 }
    }

    /// The requests of `method` the server sent, each with baresip's final answer if it gave one
    /// (matched by CSeq and Call-ID).
    func serverRequests(_ method: String) -> [(request: Message, answer: Message?)] {
        messages.enumerated().compactMap { index, message in
            guard message.fromServer, message.method == method else { return nil }
            let answer = messages[(index + 1)...].first {
                !$0.fromServer && ($0.statusCode ?? 0) >= 200 && $0.header("CSeq") == message.header("CSeq")
                    && $0.header("Call-ID") == message.header("Call-ID")
            }
            return (message, answer)
        }
    }

    /// The `<basic>` status of a PIDF body (RFC 3863 §4.1.4), the way baresip reads it: the text
    /// of the first `<basic>` element (baresip matches `<basic>[^<]+</basic>` literally).
    static func basicStatus(in body: String) -> String? {
        guard let open = body.range(of: "<basic>"),
            let close = body.range(of: "</basic>", range: open.upperBound..<body.endIndex)
        else { return nil }
        return String(body[open.upperBound..<close.lowerBound])
    }

    /// One line per message, for failure messages.
    var summary: String {
        messages.isEmpty ? "(no SIP messages traced)" : messages.map(\.summary).joined(separator: "\n")
    }
}
