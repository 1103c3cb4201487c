import Foundation
import SIPCore
import Testing

extension EndToEnd {
    /// Hostile and broken input over UDP and TCP never crashes or hangs the server, and its
    /// memory stays bounded (issue 2, "Done when"). After each input, sent `repetitions` times,
    /// the server still answers an OPTIONS within `Liveness.probeTimeout`, its process is alive
    /// and its resident memory is under `maximumResidentMemory` and grew by less than
    /// `maximumResidentGrowth`. Where Via, From, To, Call-ID and CSeq are readable and the fault
    /// is the message's (not the stream's), the answer is a 400 whose reason phrase names it.
    @Suite("Malformed input", .timeLimit(.minutes(3)))
    struct MalformedInput {
        /// Bound on the server's RSS (VmRSS) at any check: a debug build idles well under 100 MiB.
        static let maximumResidentMemory = 256 * 1024 * 1024
        /// Bound on RSS growth from just after `ready` to after the abuse: a leak of even 1 KiB
        /// per message over the repetitions, or one buffer per connection kept, shows up here.
        static let maximumResidentGrowth = 64 * 1024 * 1024
        /// How often each input is sent (UDP datagrams; TCP connections).
        static let repetitions = 40

        enum Input: String, CaseIterable, CustomTestStringConvertible, Sendable {
            /// 4 KiB of pseudo-random bytes.
            case garbage
            /// A request cut in the middle of a header line: no end of headers.
            case truncatedHeaders
            /// Content-Length 200, 20 bytes of body.
            case truncatedBody
            /// A 60 KiB message (within the 64 KiB limit, far above any UDP MTU).
            case oversized
            /// `Content-Length: twelve`.
            case badContentLength
            /// A NUL byte in the Request-URI.
            case nulInStartLine
            /// A NUL byte in a header value the server only carries.
            case nulInHeaderValue
            /// 10,000 header fields after readable Via, From, To, Call-ID and CSeq.
            case tenThousandHeaders
            // Issue 9's corpus of nasty messages, each with the answer it must get.
            /// A display name that is not UTF-8 (0xFF 0xFE, then an overlong "/").
            case invalidUTF8DisplayName
            /// `CSeq: -1 OPTIONS`.
            case negativeCSeq
            /// `CSeq: 4294967296 OPTIONS` (RFC 3261 §8.1.1.5: below 2**31).
            case hugeCSeq
            /// A REGISTER with `Expires: -1`.
            case negativeExpires
            /// A top Via that claims `received` and `rport` for itself (127.0.0.9, port 9).
            case forgedReceived
            /// 100 Via headers.
            case hundredVias
            /// `Content-Length: 5` before an 11-byte body.
            case contentLengthShort
            /// A PUBLISH whose PIDF declares entities that expand a thousandfold ("billion laughs").
            case publishExpandingEntities
            /// A NOTIFY out of any dialog with 2,000 nested elements.
            case notifyDeeplyNested
            /// A NOTIFY whose XML body is not UTF-8.
            case notifyInvalidUTF8Body

            var testDescription: String { rawValue }

            func bytes(_ transport: Transport, localPort: Int, callID: String) -> [UInt8] {
                let head = SIPRequests.readableHead(transport, localPort: localPort, callID: callID)
                switch self {
                case .garbage:
                    var generator = SplitMix64(seed: 0xB0_5E_1A_A9)
                    return (0..<4096).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                case .truncatedHeaders:
                    return Array((head + "Content-Le").utf8)
                case .truncatedBody:
                    return Array((head + "Content-Type: text/plain\r\nContent-Length: 200\r\n\r\n").utf8)
                        + Array(repeating: UInt8(ascii: "x"), count: 20)
                case .oversized:
                    let prefix = head + "Content-Type: text/plain\r\nContent-Length: "
                    let total = 60 * 1024
                    let bodyLength = total - prefix.utf8.count - "00000\r\n\r\n".utf8.count
                    return Array((prefix + String(format: "%05d", bodyLength) + "\r\n\r\n").utf8)
                        + Array(repeating: UInt8(ascii: "a"), count: bodyLength)
                case .badContentLength:
                    return Array((head + "Content-Type: text/plain\r\nContent-Length: twelve\r\n\r\nhello world!").utf8)
                case .nulInStartLine:
                    let requestLine = "OPTIONS sip:201\u{0}evil@\(DirectoryFixture.domain) SIP/2.0"
                    return Array(
                        (SIPRequests.readableHead(
                            transport,
                            localPort: localPort,
                            requestLine: requestLine,
                            callID: callID
                        )
                            + "Content-Length: 0\r\n\r\n").utf8
                    )
                case .nulInHeaderValue:
                    return Array((head + "Subject: before\u{0}after\r\nContent-Length: 0\r\n\r\n").utf8)
                case .tenThousandHeaders:
                    return Array(
                        (head + String(repeating: "X:1\r\n", count: 10_000) + "Content-Length: 0\r\n\r\n").utf8
                    )
                case .invalidUTF8DisplayName:
                    return Array((head + "Subject: ").utf8) + [0xFF, 0xFE, 0xC0, 0xAF]
                        + Array("\r\nContent-Length: 0\r\n\r\n".utf8)
                case .negativeCSeq, .hugeCSeq:
                    let cseq = self == .negativeCSeq ? "-1" : "4294967296"
                    let text = head.replacingOccurrences(of: "CSeq: 7 OPTIONS", with: "CSeq: \(cseq) OPTIONS")
                    return Array((text + "Content-Length: 0\r\n\r\n").utf8)
                case .negativeExpires:
                    let register = SIPRequests.readableHead(
                        transport,
                        localPort: localPort,
                        requestLine: "REGISTER sip:\(DirectoryFixture.domain) SIP/2.0",
                        callID: callID
                    ).replacingOccurrences(of: "CSeq: 7 OPTIONS", with: "CSeq: 7 REGISTER")
                    let contact = "Contact: <sip:\(DirectoryFixture.alice.number)@127.0.0.1:\(localPort)>\r\n"
                    return Array((register + contact + "Expires: -1\r\nContent-Length: 0\r\n\r\n").utf8)
                case .forgedReceived:
                    let forged = head.replacingOccurrences(of: ";rport\r\n", with: ";received=127.0.0.9;rport=9\r\n")
                    return Array((forged + "Content-Length: 0\r\n\r\n").utf8)
                case .hundredVias:
                    let vias = (1..<100).map {
                        "Via: SIP/2.0/UDP 192.0.2.\($0 % 250 + 1):5060;branch=z9hG4bK-v\($0)\r\n"
                    }
                    return Array((head + vias.joined() + "Content-Length: 0\r\n\r\n").utf8)
                case .contentLengthShort:
                    return Array((head + "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello world").utf8)
                case .publishExpandingEntities:
                    let entities = (1...3).map { level in
                        "<!ENTITY e\(level) \"" + String(repeating: "&e\(level - 1);", count: 10) + "\">"
                    }
                    let body =
                        "<?xml version=\"1.0\"?><!DOCTYPE presence [<!ENTITY e0 \"lol\">\(entities.joined())]>"
                        + "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:202@x\">&e3;</presence>"
                    return Self.request(
                        "PUBLISH",
                        transport,
                        localPort,
                        callID,
                        body: Array(body.utf8),
                        type: "pidf+xml"
                    )
                case .notifyDeeplyNested:
                    let body =
                        String(repeating: "<dialog-info>", count: 2_000)
                        + String(repeating: "</dialog-info>", count: 2_000)
                    return Self.request(
                        "NOTIFY",
                        transport,
                        localPort,
                        callID,
                        body: Array(body.utf8),
                        type: "dialog-info+xml"
                    )
                case .notifyInvalidUTF8Body:
                    let body = Array("<dialog-info entity=\"".utf8) + [0xFF, 0xC0, 0xAF] + Array("\"/>".utf8)
                    return Self.request("NOTIFY", transport, localPort, callID, body: body, type: "dialog-info+xml")
                }
            }

            /// A `method` request to line 202 with an XML `body` of `application/TYPE`.
            static func request(
                _ method: String,
                _ transport: Transport,
                _ localPort: Int,
                _ callID: String,
                body: [UInt8],
                type: String
            ) -> [UInt8] {
                let head = SIPRequests.readableHead(
                    transport,
                    localPort: localPort,
                    requestLine: "\(method) sip:202@\(DirectoryFixture.domain) SIP/2.0",
                    callID: callID
                ).replacingOccurrences(of: "CSeq: 7 OPTIONS", with: "CSeq: 7 \(method)")
                let event = method == "PUBLISH" ? "presence" : "dialog"
                let fields = "Event: \(event)\r\nSubscription-State: active\r\nContent-Type: application/\(type)\r\n"
                return Array((head + fields + "Content-Length: \(body.count)\r\n\r\n").utf8) + body
            }

            enum Expectation {
                /// A 400 (or another 4xx/5xx refusal) whose reason phrase contains the word.
                case refusal(reasonContaining: String)
                /// A response with this status, to our request, on our socket.
                case answer(status: Int)
                /// Any answer, or none: only liveness and memory are checked.
                case survival
            }

            func expectation(over transport: Transport) -> Expectation {
                switch (self, transport) {
                // RFC 3261 §18.3: "If the transport packet ends before the end of the message
                // body, this is considered an error. [...] If the message is a request, the
                // element SHOULD generate a 400 (Bad Request) response."
                case (.truncatedBody, .udp): .refusal(reasonContaining: "Content-Length")
                case (.badContentLength, .udp): .refusal(reasonContaining: "Content-Length")
                // On a stream a bad Content-Length loses the message boundary.
                // Then the close; the 400 first (issue 9).
                case (.badContentLength, .tcp): .refusal(reasonContaining: "Content-Length")
                case (.nulInStartLine, _): .refusal(reasonContaining: "Control Character")
                // Issue 9: accepted before (a NUL in a display name got a 200).
                case (.nulInHeaderValue, _): .refusal(reasonContaining: "Control Character")
                case (.tenThousandHeaders, _): .refusal(reasonContaining: "Header")
                // RFC 3261 §25.1: TEXT-UTF8.
                case (.invalidUTF8DisplayName, _): .refusal(reasonContaining: "UTF-8")
                case (.negativeCSeq, _), (.hugeCSeq, _): .refusal(reasonContaining: "CSeq")
                case (.negativeExpires, _): .refusal(reasonContaining: "Expires")
                // The answer comes back to where the request came from, not where its Via
                // claims (issue 9: a forged received would aim our responses anywhere).
                case (.forgedReceived, _): .answer(status: 200)
                case (.hundredVias, _): .answer(status: 200)
                // RFC 3261 §18.3: on a datagram, bytes past the Content-Length are discarded;
                // on a stream they begin the next message.
                case (.contentLengthShort, .udp): .answer(status: 200)
                // Issue 9: a PUBLISH or NOTIFY body is never parsed, let alone with entity
                // expansion: BusyLamp is the notifier and takes neither (405, with Allow).
                case (.publishExpandingEntities, _), (.notifyDeeplyNested, _), (.notifyInvalidUTF8Body, _):
                    .answer(status: 405)
                default: .survival
                }
            }
        }

        @Test(arguments: Input.allCases, Transport.allCases)
        func serverSurvives(_ input: Input, over transport: Transport) async throws {
            try await withServer("malformed-\(input)-\(transport)") { server in
                let baseline = try server.residentMemory()
                let callID = "malformed-\(input)-\(UUID().uuidString)"

                // First delivery: check the answer.
                let socket = try LoopbackSocket(transport, to: transport.port(of: server))
                try await socket.send(input.bytes(transport, localPort: socket.localPort, callID: callID))
                if transport == .tcp, input == .truncatedHeaders || input == .truncatedBody {
                    // The peer gives up half-way: the server sees end of file inside a message.
                    socket.shutdownWrite()
                }
                try await check(
                    input.expectation(over: transport),
                    on: socket,
                    callID: callID,
                    input: input,
                    transport: transport,
                    server: server
                )

                // Then the same again and again, each TCP one on its own connection.
                for _ in 1..<Self.repetitions {
                    let again =
                        transport == .udp ? socket : try LoopbackSocket(transport, to: transport.port(of: server))
                    try await again.send(input.bytes(transport, localPort: again.localPort, callID: UUID().uuidString))
                }

                try await Liveness.expectAnswersOptions(server, over: transport, after: "\(input) ×\(Self.repetitions)")
                try await Liveness.expectAnswersOptions(
                    server,
                    over: transport == .udp ? .tcp : .udp,
                    after: "\(input) ×\(Self.repetitions) over \(transport)"
                )
                #expect(server.isRunning, "busylamp serve died after \(input) over \(transport)")
                let resident = try server.residentMemory()
                #expect(
                    resident < Self.maximumResidentMemory,
                    "RSS \(resident / 1024) KiB after \(input) over \(transport) exceeds \(Self.maximumResidentMemory / 1024) KiB"
                )
                #expect(
                    resident - baseline < Self.maximumResidentGrowth,
                    "RSS grew \((resident - baseline) / 1024) KiB (from \(baseline / 1024) KiB) after \(input) over \(transport)"
                )
            }
        }

        /// A TCP peer that sends half a message and then waits neither blocks other peers nor the
        /// server: while it holds its connection open, OPTIONS over UDP and TCP are answered.
        @Test func halfMessageOverTCPThenWait() async throws {
            try await withServer("malformed-half-tcp") { server in
                let baseline = try server.residentMemory()
                var waiting: [LoopbackSocket] = []
                for _ in 0..<Self.repetitions {
                    let socket = try LoopbackSocket(.tcp, to: server.tcpPort)
                    let head = SIPRequests.readableHead(.tcp, localPort: socket.localPort, callID: UUID().uuidString)
                    try await socket.send(Array(head.utf8.prefix(head.utf8.count / 2)))
                    waiting.append(socket)
                }
                try await Task.sleep(for: .milliseconds(500))
                try await Liveness.expectAnswersOptions(
                    server,
                    over: .tcp,
                    after: "\(Self.repetitions) half messages held open"
                )
                try await Liveness.expectAnswersOptions(
                    server,
                    over: .udp,
                    after: "\(Self.repetitions) half messages held open"
                )
                #expect(server.isRunning)
                let resident = try server.residentMemory()
                #expect(
                    resident < Self.maximumResidentMemory,
                    "RSS \(resident / 1024) KiB with half messages held open"
                )
                #expect(
                    resident - baseline < Self.maximumResidentGrowth,
                    "RSS grew \((resident - baseline) / 1024) KiB"
                )
                // The server must not have answered a half message.
                let first = try await waiting[0].receive(within: .milliseconds(100))
                if case .message(let message) = first {
                    Issue.record("the server answered half a message: \(message)")
                }
                waiting.removeAll()
            }
        }

        /// A 400 whose reason phrase names `word`, answering `callID`, even if a header it
        /// copies from the request (a malformed CSeq) keeps it from parsing.
        static func isRefusal(_ bytes: [UInt8], naming word: String, callID: String) -> Bool {
            let text = String(decoding: bytes, as: UTF8.self)
            let statusLine = text.prefix { $0 != "\r" }
            return statusLine.hasPrefix("SIP/2.0 400 ") && statusLine.range(of: word, options: .caseInsensitive) != nil
                && text.contains("Call-ID: \(callID)\r\n")
        }

        private func check(
            _ expectation: Input.Expectation,
            on socket: LoopbackSocket,
            callID: String,
            input: Input,
            transport: Transport,
            server: ServerProcess
        ) async throws {
            switch expectation {
            case .survival:
                // Whatever comes (or not) within the probe time is acceptable, but a crash is not.
                _ = try await socket.receive(within: .milliseconds(300))
            case .answer(let status):
                let received = try await socket.receive(within: Liveness.probeTimeout)
                guard case .message(.response(let response)) = received else {
                    Issue.record("\(input) over \(transport): no \(status) on our socket but \(received)")
                    return
                }
                #expect(
                    response.statusCode == status && response.callID == callID,
                    "\(input) over \(transport): expected \(status), got \(response.statusCode) \(response.reasonPhrase)"
                )
            case .refusal(let word):
                let received = try await socket.receive(within: Liveness.probeTimeout)
                switch received {
                case .message(.response(let response)):
                    #expect(
                        response.statusCode == 400,
                        "\(input) over \(transport): expected 400, got \(response.statusCode) \(response.reasonPhrase)"
                    )
                    #expect(
                        response.reasonPhrase.range(of: word, options: .caseInsensitive) != nil,
                        "\(input) over \(transport): the reason phrase \"\(response.reasonPhrase)\" should name the fault (\(word))"
                    )
                    #expect(response.callID == callID, "\(input) over \(transport): the 400 answers our request")
                case .closed:
                    Issue.record("\(input) over \(transport): connection closed instead of a 400 (\(word))")
                case .timedOut:
                    Issue.record(
                        "\(input) over \(transport): no 400 within \(Liveness.probeTimeout); server output:\n\(server.output)"
                    )
                case .message(.request(let request)):
                    Issue.record("\(input) over \(transport): a request instead of a 400: \(request.method)")
                case .unparsable(let bytes, _)
                where Self.isRefusal(bytes, naming: word, callID: callID):
                    // RFC 3261 §8.2.6.2 copies the CSeq into the 400: a malformed one stays so.
                    break
                case .unparsable(let bytes, let error):
                    Issue.record(
                        "\(input) over \(transport): an unparsable answer (\(String(describing: error))): \(String(decoding: bytes.prefix(300), as: UTF8.self))"
                    )
                }
            }
        }
    }
}
