import SIPCore
import Testing

@testable import BusyLampServer

/// The rule that spreads a server over shards: lines and calls on the line owner, a
/// subscription's refreshes and NOTIFY answers on the shard that marked them, the rest where it
/// arrived.
@Suite("Shard routing", .timeLimit(.minutes(1)))
struct ShardRoutingTests {
    let routing = ShardRouting(shardCount: 4)

    func request(_ method: String, toTag: String? = nil, branch: String = "z9hG4bK-phone-1") throws -> SIPMessage {
        let to = "<sip:221@example.com>" + (toTag.map { ";tag=\($0)" } ?? "")
        let text =
            "\(method) sip:221@example.com SIP/2.0\r\n"
            + "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=\(branch)\r\n"
            + "From: <sip:220@example.com>;tag=phone\r\n"
            + "To: \(to)\r\n"
            + "Call-ID: c1\r\n"
            + "CSeq: 1 \(method)\r\n"
            + "Content-Length: 0\r\n\r\n"
        return try SIPParser().parse(Array(text.utf8))
    }

    func response(to method: String, branch: String) throws -> SIPMessage {
        let text =
            "SIP/2.0 200 OK\r\n"
            + "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=\(branch)\r\n"
            + "From: <sip:221@example.com>;tag=ours\r\n"
            + "To: <sip:220@example.com>;tag=phone\r\n"
            + "Call-ID: c1\r\n"
            + "CSeq: 2 \(method)\r\n"
            + "Content-Length: 0\r\n\r\n"
        return try SIPParser().parse(Array(text.utf8))
    }

    @Test func linesAndCallsGoToTheLineOwner() throws {
        for method in ["REGISTER", "INVITE", "ACK", "CANCEL"] {
            #expect(routing.shard(for: try request(method), arrivedOn: 3) == ShardRouting.lineOwner, "\(method)")
        }
        // A request in a call's dialog, and the answer to a request a call sent.
        #expect(routing.shard(for: try request("BYE", toTag: "abc"), arrivedOn: 2) == 0)
        #expect(routing.shard(for: try response(to: "INVITE", branch: "z9hG4bKcall-s3"), arrivedOn: 2) == 0)
    }

    @Test func aNewSubscriptionStaysWhereItArrived() throws {
        #expect(routing.shard(for: try request("SUBSCRIBE"), arrivedOn: 2) == 2)
        #expect(routing.shard(for: try request("OPTIONS"), arrivedOn: 1) == 1)
        #expect(routing.shard(for: try request("MESSAGE"), arrivedOn: 3) == 3)
    }

    @Test func aRefreshAndANotifyAnswerGoToTheMarkedShard() throws {
        let tag = ShardRouting.mark("9f3a", shard: 3)
        #expect(routing.shard(for: try request("SUBSCRIBE", toTag: tag), arrivedOn: 1) == 3)
        let branch = ShardRouting.mark("z9hG4bK77ab", shard: 2)
        #expect(routing.shard(for: try response(to: "NOTIFY", branch: branch), arrivedOn: 0) == 2)
        #expect(routing.shard(ofDialogTag: tag) == 3)
    }

    /// Tags from before shards, or from a restart with fewer shards, belong to the line owner:
    /// where such subscriptions are restored.
    @Test func anUnusableMarkMeansTheLineOwner() throws {
        for tag in ["9f3a", ShardRouting.mark("9f3a", shard: 9), "x-s", "x-s-1"] {
            #expect(routing.shard(for: try request("SUBSCRIBE", toTag: tag), arrivedOn: 2) == 0, "\(tag)")
            #expect(routing.shard(ofDialogTag: tag) == 0, "\(tag)")
        }
    }

    @Test func oneShardHandlesEverything() throws {
        let single = ShardRouting(shardCount: 1)
        #expect(single.shard(for: try request("SUBSCRIBE", toTag: ShardRouting.mark("a", shard: 3)), arrivedOn: 0) == 0)
        #expect(single.shard(for: try request("INVITE"), arrivedOn: 0) == 0)
    }
}
