import SIPCore
import Testing

@testable import SIPTransactions

@Suite(.timeLimit(.minutes(1))) struct OverloadGuardTests {
    func request(_ method: String, toTag: String? = nil) throws -> SIPRequest {
        let to = "<sip:221@example.com>" + (toTag.map { ";tag=\($0)" } ?? "")
        let text =
            "\(method) sip:221@example.com SIP/2.0\r\n"
            + "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n"
            + "From: <sip:220@example.com>;tag=phone\r\nTo: \(to)\r\nCall-ID: c1\r\n"
            + "CSeq: 1 \(method)\r\nContent-Length: 0\r\n\r\n"
        let message = try SIPParser().parse(Array(text.utf8))
        guard case .request(let request) = message else {
            Issue.record("not a request: \(message)")
            throw CancellationError()
        }
        return request
    }

    @Test func aLoopThatKeepsUpShedsNothing() throws {
        var guardian = OverloadGuard()
        for _ in 0..<1_000 { guardian.observe(lag: .milliseconds(40)) }
        #expect(!guardian.isShedding)
        #expect(!guardian.sheds(try request("SUBSCRIBE")))
    }

    @Test func sustainedLagShedsAGrowingShareOfNewWorkOnlyAndRecoversWithHysteresis() throws {
        var guardian = OverloadGuard()
        // One slow turn is not overload.
        guardian.observe(lag: .milliseconds(400))
        #expect(!guardian.isShedding)
        for _ in 0..<20 { guardian.observe(lag: .milliseconds(250)) }
        #expect(guardian.isShedding)
        #expect(guardian.shedShare < 0.5, "the share grows tick by tick, not all at once")
        for _ in 0..<200 { guardian.observe(lag: .milliseconds(250)) }
        #expect(guardian.shedShare == 1)
        for method in ["SUBSCRIBE", "REGISTER", "INVITE"] {
            #expect(guardian.sheds(try request(method)), "\(method)")
        }
        // What keeps admitted work alive or ends it is never refused.
        #expect(!guardian.sheds(try request("SUBSCRIBE", toTag: "ours")))
        #expect(!guardian.sheds(try request("BYE", toTag: "ours")))
        for method in ["ACK", "CANCEL", "NOTIFY"] { #expect(!guardian.sheds(try request(method)), "\(method)") }
        // Between the thresholds the share holds; below the lower one it falls back to nothing.
        for _ in 0..<30 { guardian.observe(lag: .milliseconds(70)) }
        #expect(guardian.shedShare == 1)
        for _ in 0..<30 { guardian.observe(lag: .milliseconds(2)) }
        #expect(guardian.isShedding && guardian.shedShare < 1)
        for _ in 0..<300 { guardian.observe(lag: .milliseconds(2)) }
        #expect(!guardian.isShedding)
        #expect(!guardian.sheds(try request("SUBSCRIBE")))
    }

    /// The refused share is spread evenly: at a share of s, s of every batch of new requests.
    @Test func theRefusedShareIsSpreadOverTheRequests() throws {
        var settings = OverloadGuard.Settings()
        settings.shareIncreasePerTick = 0.25
        var guardian = OverloadGuard(settings: settings)
        while guardian.smoothedLag < 0.12 { guardian.observe(lag: .milliseconds(500)) }
        let share = guardian.shedShare
        #expect(share > 0 && share < 1)
        let subscribe = try request("SUBSCRIBE")
        let refused = (0..<1_000).filter { _ in guardian.sheds(subscribe) }.count
        #expect(abs(Double(refused) - share * 1_000) <= 1, "refused \(refused) of 1,000 at a share of \(share)")
    }
}

extension OverloadGuardTests {
    /// Requests waiting in the socket buffer do not delay the loop's tick, but the phones
    /// retransmit them: the share of retransmissions starts shedding, and its fall ends it.
    @Test func retransmissionsShedAndRecover() throws {
        var guardian = OverloadGuard()
        var requests = 0
        var retransmissions = 0
        func tick(_ new: Int, _ again: Int) {
            requests += new + again
            retransmissions += again
            guardian.observe(
                lag: .milliseconds(5),
                requestsReceived: requests,
                retransmissionsReceived: retransmissions
            )
        }
        // A lossy link: 2 % retransmissions, and a quiet moment with only retransmissions.
        for _ in 0..<50 { tick(98, 2) }
        tick(0, 3)
        #expect(!guardian.isShedding)
        for _ in 0..<120 { tick(40, 60) }
        #expect(guardian.shedShare == 1)
        #expect(guardian.sheds(try request("SUBSCRIBE")))
        for _ in 0..<300 { tick(100, 0) }
        #expect(!guardian.isShedding)
    }
}
