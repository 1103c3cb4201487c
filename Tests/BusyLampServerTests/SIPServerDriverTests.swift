import BusyLampCore
import BusyLampStore
import Foundation
import SIPAuth
import SIPCore
import SIPTransportNIO
import Testing

@testable import BusyLampServer

/// The driver's own promises, checked inside the process on real sockets (issue 9: two defects
/// found by reading it): state a flood must not grow, and the socket a request leaves from.
@Suite("Server driver", .timeLimit(.minutes(1)))
struct SIPServerDriverTests {
    static func options(branch: String, to port: Int, from phone: UDPPhone) -> String {
        """
        OPTIONS sip:127.0.0.1:\(port) SIP/2.0\r
        Via: SIP/2.0/UDP 127.0.0.1:\(phone.port);branch=z9hG4bK\(branch);rport\r
        Max-Forwards: 70\r
        From: <sip:probe@127.0.0.1>;tag=\(branch)\r
        To: <sip:127.0.0.1:\(port)>\r
        Call-ID: \(branch)@driver\r
        CSeq: 1 OPTIONS\r
        Content-Length: 0\r
        \r

        """
    }

    /// A full transaction table answers 503 and keeps nothing for the refused request: before,
    /// each refused branch left its flow in `inboundFlows` for ever (no transaction, so no
    /// `.terminated` to remove it).
    @Test func aFullTransactionTableKeepsNothingForWhatItRefuses() async throws {
        let harness = try await DriverHarness.start { $0.maximumTransactions = 4 }
        let phone = try await UDPPhone.open(group: harness.group)
        let port = harness.port(ofListener: 0)
        let offered = 40
        for index in 0..<offered {
            try await phone.send(Self.options(branch: "flood\(index)", to: port, from: phone), to: port)
        }
        let answers = try await phone.awaitCount(offered).compactMap(\.message.response)
        let refused = answers.filter { $0.statusCode == 503 }
        #expect(answers.count == offered)
        #expect(refused.count >= offered - 4, "the table holds 4: the rest are refused")
        #expect(refused.allSatisfy { $0.headers[.retryAfter] != nil })
        let (flows, transactions) = try await harness.onShard { ($0.inboundFlows.count, $0.transactions.count) }
        #expect(transactions <= 4)
        #expect(flows <= transactions, "a flow entry only for a transaction that exists")
        try await phone.close()
        try await harness.stop()
    }

    /// With two UDP listeners, the NOTIFY of a subscription leaves from the socket its SUBSCRIBE
    /// reached (a phone's NAT lets only that one back in), not the transport's first listener.
    @Test func aNotifyLeavesFromTheListenerTheSubscribeReached() async throws {
        let harness = try await DriverHarness.start(listenAddresses: [
            SIPListenAddress(transport: .udp, host: "127.0.0.1", port: 0),
            SIPListenAddress(transport: .udp, host: "127.0.0.1", port: 0),
        ])
        let phone = try await UDPPhone.open(group: harness.group)
        let second = harness.port(ofListener: 1)
        #expect(second != harness.port(ofListener: 0))

        let watcher = DriverHarness.directory.lines[0]
        let target = DriverHarness.directory.lines[1]
        let status = try await Self.subscribe(phone, to: second, watcher: watcher, target: target, callID: "listener")
        #expect(status / 100 == 2)
        let accepted = try await phone.first { ($0.response?.statusCode ?? 0) / 100 == 2 }
        #expect(accepted.sourcePort == second)
        let notify = try await phone.first { $0.request?.method == .notify }
        #expect(notify.sourcePort == second, "NOTIFY from the SUBSCRIBE's listener")
        #expect(notify.message.request?.headers[.via]?.contains(":\(second);") == true)
        try await phone.close()
        try await harness.stop()
    }

    /// Issue 9: a guesser is locked out after the limit (403, no more challenges), while the
    /// same user from another address and a colleague from the same address are still served.
    @Test func failedAuthenticationsLockOutOnlyTheGuesser() async throws {
        let harness = try await DriverHarness.start { $0.failedAuthentications.failuresBeforeLockout = 3 }
        let port = harness.port(ofListener: 0)
        let guesser = try await UDPPhone.open(group: harness.group)
        let lines = DriverHarness.directory.lines
        var statuses: [Int] = []
        for attempt in 0..<5 {
            statuses.append(
                try await Self.subscribe(
                    guesser,
                    to: port,
                    watcher: lines[0],
                    target: lines[1],
                    callID: "guess\(attempt)",
                    password: "wrong-\(attempt)"
                )
            )
        }
        #expect(statuses == [401, 401, 401, 403, 403])
        let refusal = try await guesser.first { $0.response?.statusCode == 403 }
        #expect(refusal.message.response?.reasonPhrase == "Too Many Failed Authentications")
        #expect(refusal.message.response?.headers[.wwwAuthenticate] == nil, "no new challenge")

        // A colleague behind the same address, and the same user from another address.
        let colleague = try await UDPPhone.open(group: harness.group)
        #expect(try await Self.subscribe(colleague, to: port, watcher: lines[1], target: lines[0], callID: "c") == 200)
        let elsewhere = try await UDPPhone.open(group: harness.group, host: "127.0.0.2")
        #expect(try await Self.subscribe(elsewhere, to: port, watcher: lines[0], target: lines[1], callID: "e") == 200)
        // Locked out even with the right password, for the lockout's time.
        #expect(try await Self.subscribe(guesser, to: port, watcher: lines[0], target: lines[1], callID: "g") == 403)
        for phone in [guesser, colleague, elsewhere] { try await phone.close() }
        try await harness.stop()
    }

    /// Issue 9: a source past its request rate is dropped unanswered, responses to our own
    /// requests aside, and a phone at another address is served all the while.
    @Test func aFloodingSourceIsHeldToItsRate() async throws {
        let harness = try await DriverHarness.start {
            $0.sourceRates.requestsPerSecond = 1
            $0.sourceRates.burst = 10
        }
        let port = harness.port(ofListener: 0)
        let flood = try await UDPPhone.open(group: harness.group)
        for index in 0..<40 {
            try await flood.send(Self.options(branch: "flood\(index)", to: port, from: flood), to: port)
        }
        let office = try await UDPPhone.open(group: harness.group, host: "127.0.0.2")
        for index in 0..<5 {
            try await office.send(Self.options(branch: "office\(index)", to: port, from: office), to: port)
        }
        #expect(try await office.awaitCount(5).count == 5)
        // Give refused requests time to have been answered, had they been.
        try await Task.sleep(for: .milliseconds(500))
        let answered = flood.received.count
        #expect(answered >= 10 && answered <= 12, "answered \(answered) of 40")
        try await flood.close()
        try await office.close()
        try await harness.stop()
    }

    /// Issue 9, graceful stop: a SUBSCRIBE whose store write is still queued when the stop
    /// begins gets its 200, a new request meanwhile gets 503 with Retry-After, and the
    /// subscription is in the store for the next start.
    @Test func aStopFinishesTheTransactionsBegun() async throws {
        let harness = try await DriverHarness.start()
        let port = harness.port(ofListener: 0)
        let lines = DriverHarness.directory.lines
        let watcher = try await UDPPhone.open(group: harness.group)
        let latecomer = try await UDPPhone.open(group: harness.group)
        // The store thread is held, so the SUBSCRIBE's write waits behind this while the stop
        // begins.
        let storeThread = try await harness.onShard { $0.storeThread }
        let storeHeld = storeThread.runIfActive(eventLoop: harness.group.next()) { Thread.sleep(forTimeInterval: 1) }
        let subscribing = Task {
            try await Self.subscribe(watcher, to: port, watcher: lines[0], target: lines[1], callID: "inflight")
        }
        // The authenticated SUBSCRIBE has its transaction (the first one's 401 needs none).
        let deadline = ContinuousClock.now.advanced(by: .seconds(5))
        while try await harness.onShard({ $0.transactions.count }) == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        let stopping = Task { await harness.server.stop() }
        try await Task.sleep(for: .milliseconds(100))
        try await latecomer.send(Self.options(branch: "late", to: port, from: latecomer), to: port)
        let refusal = try #require(try await latecomer.first { $0.response != nil }.message.response)
        #expect(refusal.statusCode == 503)
        #expect(refusal.headers[.retryAfter] != nil)
        #expect(try await subscribing.value == 200)
        await stopping.value
        try await storeHeld.get()

        let store = try SQLiteStore.open(dataDirectory: harness.folder)
        #expect(try store.allSubscriptions().count == 1)
        for phone in [watcher, latecomer] { try await phone.close() }
        try await harness.stop()
    }

    /// Issue 9: with `lockoutAnswer = .silence` a locked-out guesser gets no answer at all (nor
    /// does its retransmission), and its colleague behind the same address is served.
    @Test func lockoutCanBeSilent() async throws {
        let harness = try await DriverHarness.start {
            $0.failedAuthentications.failuresBeforeLockout = 2
            $0.failedAuthentications.lockoutAnswer = .silence
        }
        let port = harness.port(ofListener: 0)
        let guesser = try await UDPPhone.open(group: harness.group)
        let lines = DriverHarness.directory.lines
        for attempt in 0..<2 {
            let status = try await Self.subscribe(
                guesser,
                to: port,
                watcher: lines[0],
                target: lines[1],
                callID: "guess\(attempt)",
                password: "wrong"
            )
            #expect(status == 401)
        }
        let transactionsBefore = try await harness.onShard { $0.transactions.count }
        await #expect(throws: DriverTestFailure.self) {
            try await Self.subscribe(
                guesser,
                to: port,
                watcher: lines[0],
                target: lines[1],
                callID: "silenced",
                answerWithin: .seconds(1)
            )
        }
        // The locked-out user is silenced before any challenge, and the unanswered
        // transaction is forgotten at once rather than kept until it times out.
        let transactionsAfter = try await harness.onShard { $0.transactions.count }
        #expect(transactionsAfter == transactionsBefore)
        let colleague = try await UDPPhone.open(group: harness.group)
        #expect(try await Self.subscribe(colleague, to: port, watcher: lines[1], target: lines[0], callID: "c") == 200)
        for phone in [guesser, colleague] { try await phone.close() }
        try await harness.stop()
    }

    /// Issue 9: live subscriptions per watched line and per source address are capped; a
    /// SUBSCRIBE past either gets a 403 that names it, and other lines and addresses are served.
    @Test func subscriptionsPerLineAndPerSourceAreCapped() async throws {
        let harness = try await DriverHarness.start {
            $0.subscriptionLimits.watchersPerLine = 1
            $0.subscriptionLimits.subscriptionsPerSource = 1
        }
        let port = harness.port(ofListener: 0)
        let lines = DriverHarness.directory.lines
        let first = try await UDPPhone.open(group: harness.group)
        let sameAddress = try await UDPPhone.open(group: harness.group)
        let elsewhere = try await UDPPhone.open(group: harness.group, host: "127.0.0.2")
        #expect(try await Self.subscribe(first, to: port, watcher: lines[0], target: lines[1], callID: "a") == 200)
        // A second watcher of 202, from another address.
        #expect(try await Self.subscribe(elsewhere, to: port, watcher: lines[2], target: lines[1], callID: "b") == 403)
        let line = try await elsewhere.first { $0.response?.statusCode == 403 }
        #expect(line.message.response?.reasonPhrase == "Too Many Watchers Of This Line")
        // A second subscription from 127.0.0.1 (another port), of another line.
        #expect(
            try await Self.subscribe(sameAddress, to: port, watcher: lines[2], target: lines[0], callID: "c") == 403
        )
        let source = try await sameAddress.first { $0.response?.statusCode == 403 }
        #expect(source.message.response?.reasonPhrase == "Too Many Subscriptions From This Address")
        // The same from another address is served.
        #expect(try await Self.subscribe(elsewhere, to: port, watcher: lines[2], target: lines[0], callID: "d") == 200)
        for phone in [first, sameAddress, elsewhere] { try await phone.close() }
        try await harness.stop()
    }

    /// SUBSCRIBE for `target`'s dialog state as `watcher`: the challenge, then the credentials
    /// made with `password`. Returns the status of the answer to the second request.
    static func subscribe(
        _ phone: UDPPhone,
        to port: Int,
        watcher: Line,
        target: Line,
        callID: String,
        password: String = DriverHarness.password,
        answerWithin: Duration = .seconds(5)
    ) async throws -> Int {
        let uri = "sip:\(target.extensionNumber)@\(DriverHarness.domain)"
        func request(cseq: Int, authorization: String?) -> String {
            var text = """
                SUBSCRIBE \(uri) SIP/2.0\r
                Via: SIP/2.0/UDP \(phone.host):\(phone.port);branch=z9hG4bK\(callID)x\(cseq);rport\r
                Max-Forwards: 70\r
                From: <sip:\(watcher.number)@\(DriverHarness.domain)>;tag=watcher\r
                To: <\(uri)>\r
                Call-ID: \(callID)@driver\r
                CSeq: \(cseq) SUBSCRIBE\r
                Contact: <sip:\(watcher.number)@\(phone.host):\(phone.port)>\r
                Event: dialog\r
                Accept: application/dialog-info+xml\r
                Expires: 600\r

                """
            if let authorization { text += "Authorization: \(authorization)\r\n" }
            return text + "Content-Length: 0\r\n\r\n"
        }
        func answer(cseq: Int) async throws -> SIPResponse {
            let received = try await phone.first(within: answerWithin) {
                guard let response = $0.response, response.statusCode >= 200 else { return false }
                return response.headers[.callID] == "\(callID)@driver"
                    && response.headers[.cseq]?.hasPrefix("\(cseq) ") == true
            }
            return try #require(received.message.response)
        }
        try await phone.send(request(cseq: 1, authorization: nil), to: port)
        let challenge = try await answer(cseq: 1)
        let header = try #require(challenge.headers[.wwwAuthenticate], "401 expected, got \(challenge.statusCode)")
        let authorization = try Self.authorization(
            challenge: header,
            user: watcher.number,
            uri: uri,
            method: "SUBSCRIBE",
            password: password
        )
        try await phone.send(request(cseq: 2, authorization: authorization), to: port)
        return try await answer(cseq: 2).statusCode
    }

    /// The `Authorization` value a phone sends for `challenge` (MD5, `qop=auth`, `nc=1`).
    static func authorization(
        challenge: String,
        user: String,
        uri: String,
        method: String,
        password: String = DriverHarness.password
    ) throws -> String {
        func parameter(_ name: String) -> String? {
            guard let range = challenge.range(of: "\(name)=\"") else { return nil }
            let rest = challenge[range.upperBound...]
            return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
        }
        let realm = try #require(parameter("realm"))
        let nonce = try #require(parameter("nonce"))
        let algorithm = DigestAlgorithm.md5
        let ha1 = algorithm.ha1(username: user, realm: realm, password: password)
        let qop = DigestAlgorithm.QualityOfProtection(nonceCount: "00000001", cnonce: "driver")
        let response = algorithm.response(ha1: ha1, nonce: nonce, method: method, digestURI: uri, qop: qop)
        var value =
            "Digest username=\"\(user)\", realm=\"\(realm)\", nonce=\"\(nonce)\", uri=\"\(uri)\", "
            + "response=\"\(response)\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"driver\""
        if let opaque = parameter("opaque") { value += ", opaque=\"\(opaque)\"" }
        return value
    }
}
