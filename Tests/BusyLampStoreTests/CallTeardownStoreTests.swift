import BusyLampCore
import Foundation
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampStore

/// The teardowns of calls in progress (``CallTeardown``) survive the process: written, replaced,
/// removed, and read back exactly by the next one, every kind of step and every header in order.
@Suite("SQLite store: call teardowns", .timeLimit(.minutes(1)))
struct CallTeardownStoreTests {
    /// Parses `lines`; a request of ours has no Via yet (the driver adds it as it sends), so
    /// one is added for the parser and removed again.
    static func parse(_ lines: [String], body: String = "") throws -> SIPRequest {
        let hasVia = lines.contains { $0.hasPrefix("Via:") }
        let withVia = hasVia ? lines : [lines[0], "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-x"] + lines.dropFirst()
        let text = withVia.joined(separator: "\r\n") + "\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        guard case .request(let request) = try SIPParser().parse(Array(text.utf8)) else {
            throw StoreTestFailure("not a request")
        }
        var stripped = request
        if !hasVia { stripped.headers.remove(.via) }
        return stripped
    }

    /// A ringing call's teardown (480 to the caller, CANCEL to a fork over TLS) and an answered
    /// call's (a BYE each way).
    static func teardowns() throws -> [CallTeardown] {
        let callerInvite = try parse(
            [
                "INVITE sip:202@pbx.example.test SIP/2.0",
                "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-a1;rport=5060;received=192.0.2.10",
                "Max-Forwards: 70",
                #"From: "Reception \"Front\"" <sip:201@pbx.example.test>;tag=a"#,
                "To: <sip:202@pbx.example.test>",
                "Call-ID: call-1@192.0.2.10",
                "CSeq: 2 INVITE",
                "Contact: <sip:201@192.0.2.10:5060>",
                "Content-Type: application/sdp",
            ],
            body: "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\n"
        )
        let forkInvite = try parse([
            "INVITE sips:202@192.0.2.20:5061;transport=tls SIP/2.0",
            "Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK-f1",
            "Route: <sips:edge.example.test;lr>",
            "From: <sip:201@pbx.example.test>;tag=t3",
            "To: <sip:202@pbx.example.test>",
            "Call-ID: t2@busylamp",
            "CSeq: 1 INVITE",
        ])
        let cancel = try parse([
            "CANCEL sips:202@192.0.2.20:5061;transport=tls SIP/2.0",
            "From: <sip:201@pbx.example.test>;tag=t3",
            "To: <sip:202@pbx.example.test>",
            "Call-ID: t2@busylamp",
            "CSeq: 1 CANCEL",
        ])
        let byeToCaller = try parse([
            "BYE sip:201@192.0.2.10:5060 SIP/2.0",
            "From: <sip:202@pbx.example.test>;tag=t1",
            "To: <sip:201@pbx.example.test>;tag=a",
            "Call-ID: call-2@192.0.2.10",
            "CSeq: 101 BYE",
        ])
        let byeToCallee = try parse([
            "BYE sip:202@192.0.2.30:5062 SIP/2.0",
            "From: <sip:201@pbx.example.test>;tag=t3",
            "To: <sip:202@pbx.example.test>;tag=callee",
            "Call-ID: t4@busylamp",
            "CSeq: 102 BYE",
        ])
        let phone = SIPPeer(transport: .udp, host: "192.0.2.10", port: 5060, listener: 1)
        return [
            CallTeardown(
                callID: "c1",
                steps: [
                    .answer(invite: callerInvite, from: phone, status: 480, reason: "Call Lost", toTag: "t1"),
                    .cancel(
                        cancel,
                        invite: forkInvite,
                        branch: "z9hG4bK-f1",
                        to: SIPPeer(transport: .tls, host: "192.0.2.20", port: 5061)
                    ),
                ]
            ),
            CallTeardown(
                callID: "c2",
                steps: [
                    .request(byeToCaller, to: phone),
                    .request(byeToCallee, to: SIPPeer(transport: .udp, host: "192.0.2.30", port: 5062)),
                ]
            ),
        ]
    }

    @Test func teardownsSurviveReopening() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let teardowns = try Self.teardowns()
        do {
            let store = try SQLiteStore.open(dataDirectory: folder.url)
            try store.saveCallTeardowns(teardowns, removing: [])
            try store.close()
        }
        let reopened = try SQLiteStore.open(dataDirectory: folder.url)
        #expect(try reopened.allCallTeardowns() == teardowns)
    }

    @Test func aCallIsRewrittenAndRemoved() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        var teardowns = try Self.teardowns()
        try store.saveCallTeardowns(teardowns, removing: [])
        // The ringing call was answered: its record is replaced, in place.
        teardowns[0].steps = teardowns[1].steps
        try store.saveCallTeardowns([teardowns[0]], removing: [])
        #expect(try store.allCallTeardowns() == teardowns)
        // The answered call ended, and a call that never had a record is removed harmlessly.
        try store.saveCallTeardowns([], removing: ["c2", "never-written"])
        #expect(try store.allCallTeardowns() == [teardowns[0]])
    }

    @Test func aConnectionIDIsNotKept() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        let bye = try Self.teardowns()[1].steps[0]
        guard case .request(let request, _) = bye else { throw StoreTestFailure("not a request") }
        let overTCP = SIPPeer(transport: .tcp, host: "192.0.2.10", port: 5060, connectionID: 42)
        try store.saveCallTeardowns([CallTeardown(callID: "c3", steps: [.request(request, to: overTCP)])], removing: [])
        let restored = try store.allCallTeardowns()
        let expected = SIPPeer(transport: .tcp, host: "192.0.2.10", port: 5060)
        #expect(restored == [CallTeardown(callID: "c3", steps: [.request(request, to: expected)])])
    }

    @Test func unreadableStepsAreReportedAsCorruption() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteStore.open(dataDirectory: folder.url)
        try store.writer.write { db in
            try db.execute(sql: "INSERT INTO call_teardowns (call_id, steps) VALUES ('c9', '[{\"kind\":\"dance\"}]')")
        }
        #expect(throws: StoreCorruption.self) { try store.allCallTeardowns() }
    }
}
