import BusyLampCore
import Foundation
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampServer

/// Issue 9, vanishing phones: watchers that stop answering are dropped once their NOTIFYs time
/// out, and meanwhile the live watchers of the same line are notified as fast as without them.
@Suite("Vanishing watchers", .timeLimit(.minutes(1)))
struct VanishingWatchersTests {
    static let liveCount = 36
    static let deadCount = 4  // 10 % of the 40 watchers

    static let watchedLine = DriverHarness.directory.lines[1]

    static func ringing(_ callID: String) -> LineDialog {
        LineDialog(
            id: callID,
            callID: callID,
            localTag: nil,
            remoteTag: "caller",
            direction: .recipient,
            state: .early,
            local: LineDialog.Party(identity: "sip:\(watchedLine.number)@\(DriverHarness.domain)"),
            remote: LineDialog.Party(identity: "sip:6495550999@\(DriverHarness.domain)"),
            startedAt: Date()
        )
    }

    /// Rings line 202 with a call named `callID` and returns how long after the change the last
    /// of `watchers` held its NOTIFY naming that call.
    static func ringAndTimeLastNotify(
        _ callID: String,
        harness: DriverHarness,
        watchers: [UDPPhone]
    ) async throws -> Duration {
        let changedAt = ContinuousClock.now
        #expect(await harness.server.simulate(ringing(callID), onLine: watchedLine.number))
        var last = changedAt
        for watcher in watchers {
            let notify = try await watcher.first(within: .seconds(10)) { message in
                guard let request = message.request, request.method == .notify else { return false }
                return String(decoding: request.body, as: UTF8.self).contains(callID)
            }
            last = max(last, notify.receivedAt)
        }
        return last - changedAt
    }

    @Test func deadWatchersAreDroppedWithoutDelayingTheLiveOnes() async throws {
        let harness = try await DriverHarness.start {
            $0.timers = SIPTimers(t1: .milliseconds(20))  // Timer F: 1.28 s
            $0.notifier.maximumConsecutiveFailures = 2
        }
        let port = harness.port(ofListener: 0)
        let lines = DriverHarness.directory.lines
        var live: [UDPPhone] = []
        for index in 0..<Self.liveCount {
            let phone = try await UDPPhone.open(group: harness.group, answersNotifies: true)
            let status = try await SIPServerDriverTests.subscribe(
                phone,
                to: port,
                watcher: lines[0],
                target: lines[1],
                callID: "live\(index)"
            )
            #expect(status == 200)
            live.append(phone)
        }
        let baseline = try await Self.ringAndTimeLastNotify("call-before", harness: harness, watchers: live)

        // 10 % more watchers subscribe, then vanish: they never answer a NOTIFY.
        var dead: [UDPPhone] = []
        for index in 0..<Self.deadCount {
            let phone = try await UDPPhone.open(group: harness.group, answersNotifies: false)
            let status = try await SIPServerDriverTests.subscribe(
                phone,
                to: port,
                watcher: lines[0],
                target: lines[1],
                callID: "dead\(index)"
            )
            #expect(status == 200)
            dead.append(phone)
        }
        #expect(try await harness.onShard { $0.notifier.count } == Self.liveCount + Self.deadCount)
        let withDead = try await Self.ringAndTimeLastNotify("call-with-dead", harness: harness, watchers: live)
        // Unchanged within what a loaded 2-core machine jitters: a server that waited on the dead
        // (T1 = 20 ms, retransmitting to four of them) would add far more.
        #expect(
            withDead < baseline + .milliseconds(60),
            "live delay \(withDead) with dead watchers, \(baseline) without"
        )

        // Two NOTIFY timeouts in a row (the first NOTIFY, then the ringing one): dropped.
        let deadline = ContinuousClock.now.advanced(by: .seconds(15))
        var remaining = Self.liveCount + Self.deadCount
        while remaining > Self.liveCount, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            remaining = try await harness.onShard { $0.notifier.count }
        }
        #expect(remaining == Self.liveCount, "the vanished watchers are still subscribed")
        // And the live ones are still served after the drop.
        let after = try await Self.ringAndTimeLastNotify("call-after", harness: harness, watchers: live)
        #expect(after < baseline + .milliseconds(60))
        for phone in live + dead { try await phone.close() }
        try await harness.stop()
    }
}
