import SIPCore
import Testing

@testable import SIPTransactions

@Suite(.timeLimit(.minutes(1))) struct TransactionKeyTests {
    @Test func retransmissionAndACKMatchTheINVITECANCELDoesNot() throws {
        let invite = try TestMessages.invite()
        let key = try #require(TransactionKey(incoming: invite))
        #expect(key.role == .server)
        #expect(key.method == .invite)
        #expect(!key.isRFC2543)
        #expect(TransactionKey(incoming: try TestMessages.invite()) == key)
        // The ACK for a non-2xx carries the INVITE's branch and joins its transaction.
        #expect(TransactionKey(incoming: try TestMessages.ack(for: invite, toTag: "bob1")) == key)
        // The ACK for a 2xx has a branch of its own.
        #expect(
            TransactionKey(incoming: try TestMessages.ack(for: invite, toTag: "bob1", branch: "z9hG4bKack2")) != key
        )
        // CANCEL has the INVITE's branch but is a transaction of its own, which targets the INVITE.
        let cancel = try TestMessages.cancel(for: invite)
        let cancelKey = try #require(TransactionKey(incoming: cancel))
        #expect(cancelKey != key)
        #expect(cancelKey.method == .cancel)
        #expect(TransactionKey.matchingInvite(forCancel: cancel) == key)
        #expect(TransactionKey.matchingInvite(forCancel: invite) == nil)
    }

    @Test func branchAndSentByBothCount() throws {
        let key = try #require(TransactionKey(incoming: try TestMessages.invite()))
        #expect(TransactionKey(incoming: try TestMessages.invite(branch: "z9hG4bKother")) != key)
        #expect(TransactionKey(incoming: try TestMessages.invite(sentBy: "pc33.atlanta.example.com:5070")) != key)
        // Host comparison ignores case (the Via parser lower-cases hosts).
        #expect(TransactionKey(incoming: try TestMessages.invite(sentBy: "PC33.Atlanta.example.com:5060")) == key)
    }

    @Test func responsesMatchTheClientTransactionByBranchAndCSeqMethod() throws {
        let invite = try TestMessages.invite()
        let clientKey = try #require(TransactionKey(outgoing: invite))
        #expect(clientKey.role == .client)
        let ringing = TestMessages.response(180, to: invite, toTag: "bob1")
        #expect(TransactionKey(incoming: ringing) == clientKey)
        // The 200 to a CANCEL carries the same branch but CSeq method CANCEL.
        let cancelOK = TestMessages.response(200, to: try TestMessages.cancel(for: invite), toTag: "bob1")
        #expect(TransactionKey(incoming: cancelOK) != clientKey)
        #expect(TransactionKey(incoming: cancelOK) == TransactionKey(outgoing: try TestMessages.cancel(for: invite)))
        // Our client key never equals the server key of the same request looped back to us.
        #expect(TransactionKey(incoming: invite) != clientKey)
    }

    @Test(arguments: ["branch=1234abcd", "branch=z9hG4bk-lowercase-k", "received=192.0.2.9"])
    func rfc2543RequestsFallBackToTheFullKey(viaParameters: String) throws {
        func invite(
            via: String = "SIP/2.0/UDP oldphone.example.com:5060;\(viaParameters)",
            cseq: Int = 17
        )
            throws -> SIPRequest
        {
            try TestMessages.request([
                "INVITE sip:bob@biloxi.example.com SIP/2.0",
                "Via: \(via)",
                "To: <sip:bob@biloxi.example.com>",
                "From: <sip:alice@atlanta.example.com>;tag=a1",
                "Call-ID: legacy-1@oldphone",
                "CSeq: \(cseq) INVITE",
                "Contact: <sip:alice@oldphone.example.com>",
            ])
        }
        let original = try invite()
        let key = try #require(TransactionKey(incoming: original))
        #expect(key.isRFC2543)
        #expect(TransactionKey(incoming: try invite()) == key)
        #expect(TransactionKey(incoming: try invite(cseq: 18)) != key)
        #expect(TransactionKey(incoming: try invite(via: "SIP/2.0/UDP elsewhere.example.com;\(viaParameters)")) != key)

        // The ACK carries the To tag of our response: it matches once that tag is set aside.
        let ack = try TestMessages.request([
            "ACK sip:bob@biloxi.example.com SIP/2.0",
            "Via: SIP/2.0/UDP oldphone.example.com:5060;\(viaParameters)",
            "To: <sip:bob@biloxi.example.com>;tag=ours",
            "From: <sip:alice@atlanta.example.com>;tag=a1",
            "Call-ID: legacy-1@oldphone",
            "CSeq: 17 ACK",
        ])
        let ackKey = try #require(TransactionKey(incoming: ack))
        #expect(ackKey != key)
        #expect(ackKey.withoutToTag == key)

        let cancel = try TestMessages.request([
            "CANCEL sip:bob@biloxi.example.com SIP/2.0",
            "Via: SIP/2.0/UDP oldphone.example.com:5060;\(viaParameters)",
            "To: <sip:bob@biloxi.example.com>",
            "From: <sip:alice@atlanta.example.com>;tag=a1",
            "Call-ID: legacy-1@oldphone",
            "CSeq: 17 CANCEL",
        ])
        #expect(TransactionKey.matchingInvite(forCancel: cancel) == key)
        #expect(TransactionKey(incoming: cancel) != key)
    }

    @Test func newBranchesCarryTheMagicCookieAndDiffer() {
        var generator = SystemRandomNumberGenerator()
        let first = Via.makeBranch(using: &generator)
        let second = Via.makeBranch(using: &generator)
        #expect(first.hasPrefix(Via.magicCookie))
        #expect(first.utf8.count == Via.magicCookie.utf8.count + 16)
        #expect(first != second)
    }
}
