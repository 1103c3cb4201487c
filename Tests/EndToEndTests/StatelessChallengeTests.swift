import Foundation
import Testing

extension EndToEnd {
    /// A phone's first REGISTER or SUBSCRIBE carries no credentials: its 401 is sent without a
    /// transaction (RFC 3261 §8.2.7, issue 10), while a request with credentials that fail keeps
    /// its transaction (it may be retransmitted and must get the same answer).
    @Suite("Stateless challenges", .timeLimit(.minutes(3)))
    struct StatelessChallenges {
        static let domain = DirectoryFixture.domain
        static let alice = DirectoryFixture.alice
        static let bob = DirectoryFixture.bob

        static func subscribe(localPort: Int, callID: String, authorization: String? = nil) -> String {
            """
            SUBSCRIBE sip:\(bob.extensionNumber)@\(domain) SIP/2.0\r
            \(SIPRequests.via(.udp, localPort: localPort))\r
            Max-Forwards: 70\r
            From: <sip:\(alice.number)@\(domain)>;tag=\(callID.prefix(8))\r
            To: <sip:\(bob.extensionNumber)@\(domain)>\r
            Call-ID: \(callID)\r
            CSeq: 1 SUBSCRIBE\r
            Contact: <sip:\(alice.number)@127.0.0.1:\(localPort)>\r
            Event: dialog\r
            Accept: application/dialog-info+xml\r
            Expires: 600\r
            \(authorization.map { "Authorization: \($0)\r\n" } ?? "")Content-Length: 0\r
            \r

            """
        }

        @Test func aSubscribeWithoutCredentialsLeavesNoTransaction() async throws {
            try await withServer("stateless-challenge") { server in
                let api = HTTPTestClient(port: try #require(server.httpPort))
                let socket = try LoopbackSocket(.udp, to: server.udpPort)
                // In batches: a 401 is near a kilobyte, and a socket's default receive buffer
                // holds about a hundred datagrams of that size.
                var challenged = 0
                for batch in 0..<5 {
                    for index in 0..<20 {
                        try await socket.send(
                            Self.subscribe(localPort: socket.localPort, callID: "stateless-\(batch)-\(index)")
                        )
                    }
                    for _ in 0..<20 {
                        guard let response = try await socket.receiveResponse(within: .seconds(5)) else { break }
                        #expect(response.statusCode == 401)
                        #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Digest realm=") == true)
                        challenged += 1
                    }
                }
                #expect(challenged == 100)
                // The gauges are reported once a second.
                try await Task.sleep(for: .milliseconds(1_500))
                #expect(try await Self.transactions(api) == 0)

                // Credentials that fail: stateful, the transaction absorbs retransmissions for 32 s.
                let wrong =
                    "Digest username=\"\(Self.alice.number)\", realm=\"\(Self.domain)\", nonce=\"bogus\", "
                    + "uri=\"sip:\(Self.bob.extensionNumber)@\(Self.domain)\", response=\"00000000000000000000000000000000\""
                try await socket.send(
                    Self.subscribe(localPort: socket.localPort, callID: "stateful", authorization: wrong)
                )
                let answer = try await socket.receiveResponse(within: .seconds(5))
                #expect(answer?.statusCode == 401)
                try await Task.sleep(for: .milliseconds(1_500))
                #expect(try await Self.transactions(api) == 1)
            }
        }

        /// The sum of `busylamp_shard_transactions` over the shards.
        static func transactions(_ api: HTTPTestClient) async throws -> Double {
            let text = try await api.get("/metrics").text
            let values = text.split(separator: "\n")
                .filter { $0.hasPrefix("busylamp_shard_transactions{") }
                .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            try #require(!values.isEmpty, "no busylamp_shard_transactions in /metrics:\n\(text.prefix(2000))")
            return values.reduce(0, +)
        }
    }
}
