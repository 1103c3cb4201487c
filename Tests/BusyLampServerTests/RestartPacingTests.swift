import BusyLampCore
import BusyLampStore
import Foundation
import NIOPosix
import SIPCore
import SIPTransactions
import Testing

@testable import BusyLampServer

/// Issue 9, "Crash and restart": after a restart every watcher gets a NOTIFY with the current
/// state within 5 s, paced (`restart_notifies_per_second`), never all in one tick.
@Suite("Restart: paced NOTIFYs", .timeLimit(.minutes(1)))
struct RestartPacingTests {
    static let subscriptionCount = 1_000
    static let notifiesPerSecond = 500

    /// `count` dialog subscriptions to line 202, as a crashed process left them in the store,
    /// each from `phone` (one socket stands for many phones: each NOTIFY names its dialog).
    static func storedSubscriptions(count: Int, to phone: UDPPhone) -> [Subscription] {
        let domain = DriverHarness.domain
        let watcher = DriverHarness.directory.lines[0]
        let target = DriverHarness.directory.lines[1]
        let now = Date()
        return (0..<count).map { n in
            let dialog = Dialog(
                restoring: .confirmed,
                callID: "paced-\(n)@127.0.0.1",
                localTag: "srv\(n)",
                remoteTag: "ph\(n)",
                localSequenceNumber: 3,
                remoteSequenceNumber: 1,
                localAddress: NameAddress(uri: SIPURI(user: target.extensionNumber, host: domain)),
                remoteAddress: NameAddress(uri: SIPURI(user: watcher.number, host: domain)),
                remoteTarget: SIPURI(user: watcher.number, host: "127.0.0.1", port: phone.port),
                routeSet: [],
                isSecure: false
            )
            return Subscription(
                event: .dialog,
                accountID: target.accountID,
                watcherNumber: watcher.number,
                targetNumber: target.number,
                entity: "sip:\(target.extensionNumber)@\(domain)",
                dialog: dialog,
                source: SIPPeer(transport: .udp, host: "127.0.0.1", port: phone.port),
                expiresAt: now.addingTimeInterval(3600),
                nextVersion: 2,
                createdAt: now
            )
        }
    }

    /// With two shards every one of these subscriptions is restored on the line owner (their
    /// tags carry no shard mark), and it gets the whole server's rate, not half of it: the
    /// shares follow what each shard restores.
    @Test(arguments: [1, 2])
    func restoredWatchersAreNotifiedAtTheConfiguredPace(shards: Int) async throws {
        let folder = DriverHarness.makeFolder()
        let phoneGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let phone = try await UDPPhone.open(group: phoneGroup, answersNotifies: true)
        let stored = Self.storedSubscriptions(count: Self.subscriptionCount, to: phone)
        do {
            let store = try SQLiteStore.open(dataDirectory: folder)
            try store.replaceDirectory(with: DriverHarness.directory)
            try store.upsert(stored)
            try store.close()
        }

        let startedAt = ContinuousClock.now
        let harness = try await DriverHarness.start(shards: shards, folder: folder) {
            $0.restartNotifiesPerSecond = Self.notifiesPerSecond
        }
        let received = try await phone.awaitCount(Self.subscriptionCount, within: .seconds(5))
        var firstNotify: [String: ContinuousClock.Instant] = [:]
        for message in received {
            guard let request = message.message.request, request.method == .notify, let callID = request.callID
            else { continue }
            firstNotify[callID] = min(firstNotify[callID] ?? message.receivedAt, message.receivedAt)
        }
        let missing = Set(stored.map(\.dialog.callID)).subtracting(firstNotify.keys)
        #expect(missing.isEmpty, "every watcher within 5 s; \(missing.count) got none, e.g. \(missing.first ?? "")")
        #expect(try #require(firstNotify.values.max()) - startedAt < .seconds(5))

        // Paced: 1,000 at 500/s take two seconds; unpaced they would leave in one tick. In any
        // tenth of a second at most a tenth of a second's worth, and the burst allowance.
        let times = firstNotify.values.sorted()
        let spread = times.last! - times.first!
        #expect(spread > .milliseconds(1_500), "1,000 NOTIFYs at 500/s spread over \(spread)")
        #expect(spread < .milliseconds(2_700), "1,000 NOTIFYs at 500/s (\(shards) shards) took \(spread)")
        var busiestTenth = 0
        var windowStart = 0
        for end in times.indices {
            while times[end] - times[windowStart] > .milliseconds(100) { windowStart += 1 }
            busiestTenth = max(busiestTenth, end - windowStart + 1)
        }
        #expect(busiestTenth <= 3 * Self.notifiesPerSecond / 10, "\(busiestTenth) NOTIFYs in 100 ms")

        // Each is the restored dialog with its CSeq jumped, as before pacing.
        let margin = NotifierStateMachine.Settings().restartSequenceMargin
        let notify = try #require(received.compactMap(\.message.request).first { $0.method == .notify })
        #expect(notify.cseq?.number == 3 + margin + 1)
        try await harness.stop()
        try await phone.close()
        try await phoneGroup.shutdownGracefully()
    }
}
