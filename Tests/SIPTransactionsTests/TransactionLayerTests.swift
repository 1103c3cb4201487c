import SIPCore
import Testing

@testable import SIPTransactions

@Suite(.timeLimit(.minutes(1))) struct TransactionLayerTests {
    let phone = SIPPeer(transport: .udp, host: "192.0.2.10", port: 5060)
    let tcpPhone = SIPPeer(transport: .tcp, host: "192.0.2.11", port: 40_000, connectionID: 7)

    @Test func rejectedINVITEFromCreationToTermination() throws {
        var layer = TransactionLayer()
        let invite = try TestMessages.invite()
        let key = try #require(TransactionKey(incoming: invite))
        let trying = invite.transactionTryingResponse()
        #expect(
            layer.receivedRequest(invite, from: phone) == [
                .transaction(key, .send(.response(trying)), peer: phone),
                .transaction(key, .deliverToTransactionUser(.request(invite)), peer: phone),
            ]
        )
        #expect(layer.count == 1)
        #expect(layer.contains(key))
        #expect(layer.request(for: key) == invite)
        // The retransmission reaches only the machine.
        #expect(
            layer.receivedRequest(invite, from: phone) == [.transaction(key, .send(.response(trying)), peer: phone)]
        )

        let busy = TestMessages.response(486, to: invite, toTag: "bob1")
        #expect(
            layer.sendResponse(busy, for: key) == [
                .transaction(key, .send(.response(busy)), peer: phone),
                .transaction(key, .startTimer(.G, after: .milliseconds(500)), peer: phone),
                .transaction(key, .startTimer(.H, after: .seconds(32)), peer: phone),
            ]
        )
        #expect(
            layer.timerFired(.G, for: key) == [
                .transaction(key, .send(.response(busy)), peer: phone),
                .transaction(key, .startTimer(.G, after: .seconds(1)), peer: phone),
            ]
        )
        let ack = try TestMessages.ack(for: invite, toTag: "bob1")
        #expect(
            layer.receivedRequest(ack, from: phone) == [
                .transaction(key, .cancelTimer(.G), peer: phone),
                .transaction(key, .cancelTimer(.H), peer: phone),
                .transaction(key, .startTimer(.I, after: .seconds(5)), peer: phone),
            ]
        )
        #expect(layer.timerFired(.I, for: key) == [.transaction(key, .terminated, peer: phone)])
        #expect(layer.count == 0)
        // Late timers and answers for a removed transaction.
        #expect(layer.timerFired(.G, for: key) == [])
        #expect(layer.sendResponse(busy, for: key) == [.unknownTransaction(key)])
    }

    @Test func aDiscardedServerTransactionIsForgottenUnanswered() throws {
        var layer = TransactionLayer()
        let register = try TestMessages.register()
        let key = try #require(TransactionKey(incoming: register))
        _ = layer.receivedRequest(register, from: phone)
        #expect(layer.discardServerTransaction(key) == [.transaction(key, .terminated, peer: phone)])
        #expect(layer.count == 0)
        #expect(layer.discardServerTransaction(key) == [])
        // Its retransmission is a new request for the transaction user to judge again.
        #expect(
            layer.receivedRequest(register, from: phone) == [
                .transaction(key, .deliverToTransactionUser(.request(register)), peer: phone)
            ]
        )
    }

    @Test func theACKForA2xxGoesToTheTransactionUser() throws {
        var layer = TransactionLayer()
        let invite = try TestMessages.invite()
        let key = try #require(TransactionKey(incoming: invite))
        _ = layer.receivedRequest(invite, from: phone)
        let ok = TestMessages.response(200, to: invite, toTag: "bob1")
        #expect(
            layer.sendResponse(ok, for: key) == [
                .transaction(key, .send(.response(ok)), peer: phone),
                .transaction(key, .startTimer(.L, after: .seconds(32)), peer: phone),
            ]
        )
        #expect(layer.receivedRequest(invite, from: phone) == [])
        let ack = try TestMessages.ack(for: invite, toTag: "bob1", branch: "z9hG4bKack2xx")
        #expect(layer.receivedRequest(ack, from: phone) == [.deliverACK(ack, from: phone)])
        #expect(layer.count == 1)
        #expect(layer.timerFired(.L, for: key) == [.transaction(key, .terminated, peer: phone)])
        #expect(layer.count == 0)
    }

    @Test func rfc2543ACKFindsTheINVITEWithoutATag() throws {
        var layer = TransactionLayer()
        let invite = try TestMessages.invite(branch: "legacy42")
        let key = try #require(TransactionKey(incoming: invite))
        #expect(key.isRFC2543)
        _ = layer.receivedRequest(invite, from: phone)
        _ = layer.sendResponse(TestMessages.response(404, to: invite, toTag: "srv9"), for: key)
        let ack = try TestMessages.ack(for: invite, toTag: "srv9")
        #expect(
            layer.receivedRequest(ack, from: phone) == [
                .transaction(key, .cancelTimer(.G), peer: phone),
                .transaction(key, .cancelTimer(.H), peer: phone),
                .transaction(key, .startTimer(.I, after: .seconds(5)), peer: phone),
            ]
        )
    }

    @Test func cancelIsItsOwnTransactionAndFindsTheINVITE() throws {
        var layer = TransactionLayer()
        let invite = try TestMessages.invite()
        let inviteKey = try #require(TransactionKey(incoming: invite))
        _ = layer.receivedRequest(invite, from: phone)
        let cancel = try TestMessages.cancel(for: invite)
        let cancelKey = try #require(TransactionKey(incoming: cancel))
        #expect(
            layer.receivedRequest(cancel, from: phone) == [
                .transaction(cancelKey, .deliverToTransactionUser(.request(cancel)), peer: phone)
            ]
        )
        #expect(layer.count == 2)
        #expect(layer.inviteTransaction(forCancel: cancel) == inviteKey)
        #expect(
            layer.inviteTransaction(
                forCancel: try TestMessages.cancel(for: try TestMessages.invite(branch: "z9hG4bKnone"))
            ) == nil
        )
    }

    @Test func nonINVITEOverTCPEndsWithItsFinalResponse() throws {
        var layer = TransactionLayer()
        let register = try TestMessages.register()
        let key = try #require(TransactionKey(incoming: register))
        #expect(
            layer.receivedRequest(register, from: tcpPhone) == [
                .transaction(key, .deliverToTransactionUser(.request(register)), peer: tcpPhone)
            ]
        )
        let ok = TestMessages.response(200, to: register, toTag: "r")
        #expect(
            layer.sendResponse(ok, for: key) == [
                .transaction(key, .send(.response(ok)), peer: tcpPhone), .transaction(key, .terminated, peer: tcpPhone),
            ]
        )
        #expect(layer.count == 0)
    }

    @Test func clientTransactionsMatchResponsesAndStraysAreReported() throws {
        var layer = TransactionLayer()
        let options = try TestMessages.request([
            "OPTIONS sip:phone@192.0.2.11 SIP/2.0",
            "Via: SIP/2.0/TCP busylamp.example.com;branch=\(Via.makeBranch())",
            "To: <sip:phone@192.0.2.11>",
            "From: <sip:busylamp.example.com>;tag=bl1",
            "Call-ID: ping-1",
            "CSeq: 1 OPTIONS",
        ])
        let key = try #require(TransactionKey(outgoing: options))
        #expect(
            layer.sendRequest(options, to: tcpPhone) == [
                .transaction(key, .send(.request(options)), peer: tcpPhone),
                .transaction(key, .startTimer(.F, after: .seconds(32)), peer: tcpPhone),
            ]
        )
        #expect(layer.sendRequest(options, to: tcpPhone) == [.refused(options, reason: .duplicateTransaction)])
        let ok = TestMessages.response(200, to: options, toTag: "p")
        #expect(
            layer.receivedResponse(ok, from: tcpPhone) == [
                .transaction(key, .deliverToTransactionUser(.response(ok)), peer: tcpPhone),
                .transaction(key, .terminated, peer: tcpPhone),
            ]
        )
        #expect(layer.count == 0)
        #expect(layer.receivedResponse(ok, from: tcpPhone) == [.discardStrayResponse(ok, from: tcpPhone)])
    }

    @Test func timeoutAndTransportErrorReachTheTransactionUser() throws {
        var layer = TransactionLayer()
        let register = try TestMessages.register(branch: Via.makeBranch())
        let key = try #require(TransactionKey(outgoing: register))
        _ = layer.sendRequest(register, to: phone)
        #expect(
            layer.timerFired(.F, for: key) == [
                .transaction(key, .timeout, peer: phone), .transaction(key, .terminated, peer: phone),
            ]
        )
        _ = layer.sendRequest(register, to: phone)
        #expect(
            layer.transportFailed(for: key) == [
                .transaction(key, .transportError, peer: phone), .transaction(key, .terminated, peer: phone),
            ]
        )
        #expect(layer.count == 0)
    }

    @Test func outgoingACKAndUnmatchableRequests() throws {
        var layer = TransactionLayer()
        let invite = try TestMessages.invite()
        let ack = try TestMessages.ack(for: invite, toTag: "x", branch: "z9hG4bKack")
        #expect(layer.sendRequest(ack, to: phone) == [.sendWithoutTransaction(ack, to: phone)])
        var noBranch = invite
        noBranch.headers.set(.via, "SIP/2.0/UDP host.example.com")
        #expect(layer.sendRequest(noBranch, to: phone) == [.refused(noBranch, reason: .missingBranch)])
        #expect(layer.count == 0)
    }

    @Test func theTableIsBounded() throws {
        var layer = TransactionLayer(maximumTransactionCount: 2)
        _ = layer.receivedRequest(try TestMessages.register(branch: "z9hG4bK1"), from: phone)
        _ = layer.receivedRequest(try TestMessages.register(branch: "z9hG4bK2"), from: phone)
        #expect(layer.count == 2)
        let third = try TestMessages.register(branch: "z9hG4bK3")
        #expect(layer.receivedRequest(third, from: phone) == [.rejectWithServiceUnavailable(third, from: phone)])
        // Retransmissions of running transactions are still served.
        #expect(layer.receivedRequest(try TestMessages.register(branch: "z9hG4bK1"), from: phone) == [])
        let outgoing = try TestMessages.register(branch: "z9hG4bKout")
        #expect(layer.sendRequest(outgoing, to: phone) == [.refused(outgoing, reason: .transactionLimitReached)])
        #expect(layer.count == 2)
        #expect(TransactionLayer.defaultMaximumTransactionCount == TransactionLayer().maximumTransactionCount)
    }

    /// A burst grows the table; once its transactions ended, the storage goes back (issue 10's
    /// heap profile found 23 MB of empty buckets kept after a 20 s SUBSCRIBE burst).
    @Test func theTableGivesBackItsStorageAfterABurst() throws {
        var layer = TransactionLayer()
        var keys: [TransactionKey] = []
        for index in 0..<5_000 {
            let register = try TestMessages.register(branch: "z9hG4bKburst\(index)")
            keys.append(try #require(TransactionKey(incoming: register)))
            _ = layer.receivedRequest(register, from: phone)
        }
        let grown = layer.capacity
        #expect(grown >= 5_000)
        layer.releaseUnusedCapacity()
        #expect(layer.capacity == grown, "a full table keeps its storage")
        for key in keys.dropFirst(10) { _ = layer.transportFailed(for: key) }
        #expect(layer.count == 10)
        layer.releaseUnusedCapacity()
        #expect(layer.capacity < grown / 4)
        // The transactions left are still found.
        for key in keys.prefix(10) { #expect(layer.contains(key)) }
    }

    /// A key is stored with its transaction, its flow and each of its timers: it stays small.
    @Test func aKeyIsSmall() {
        #expect(MemoryLayout<TransactionKey>.size <= 64)
    }
}
