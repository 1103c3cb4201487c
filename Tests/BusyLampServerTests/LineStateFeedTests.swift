import BusyLampCore
import Foundation
import Testing

@testable import BusyLampServer

/// The server's one stream of line-state changes: per-account delivery, resume after a gap
/// without losing a change, a snapshot when the history no longer reaches, and an end (not
/// a silent skip) for a subscriber that cannot keep up.
@Suite("Line state feed", .timeLimit(.minutes(1)))
struct LineStateFeedTests {
    static func line(_ accountID: String, _ extensionNumber: String) -> Line {
        Line(
            accountID: accountID,
            extensionNumber: extensionNumber,
            number: "64955" + extensionNumber,
            credentials: [:]
        )
    }

    static func publish(_ feed: LineStateFeed, _ line: Line, registered: Bool) {
        feed.publish(line: line, state: LineState(number: line.number, isRegistered: registered), time: Date())
    }

    @Test func deliversTheAccountsChangesInOrder() async {
        let feed = LineStateFeed()
        let subscription = feed.subscribe(accountID: "acme")
        #expect(subscription.missed == nil && subscription.sequenceAtStart == 0)
        Self.publish(feed, Self.line("acme", "201"), registered: true)
        Self.publish(feed, Self.line("globex", "301"), registered: true)
        Self.publish(feed, Self.line("acme", "202"), registered: true)
        var received: [LineStateChange] = []
        for await change in subscription.changes {
            received.append(change)
            if received.count == 2 { break }
        }
        #expect(received.map(\.extensionNumber) == ["201", "202"])
        #expect(received.map(\.sequence) == [1, 3])
    }

    @Test func resumesWithTheMissedChanges() {
        let feed = LineStateFeed()
        for index in 0..<5 { Self.publish(feed, Self.line("acme", "20\(index)"), registered: true) }
        let resumed = feed.subscribe(accountID: "acme", after: 2)
        #expect(resumed.missed?.map(\.sequence) == [3, 4, 5])
        #expect(resumed.sequenceAtStart == 5)
        // Up to date: nothing missed, no snapshot needed.
        #expect(feed.subscribe(accountID: "acme", after: 5).missed == [])
        // A sequence from the future (another process): snapshot.
        #expect(feed.subscribe(accountID: "acme", after: 99).missed == nil)
    }

    @Test func snapshotWhenTheHistoryNoLongerReaches() {
        let feed = LineStateFeed()
        let line = Self.line("acme", "201")
        for index in 0..<(LineStateFeed.historyLength + 10) {
            Self.publish(feed, line, registered: index.isMultiple(of: 2))
        }
        #expect(feed.subscribe(accountID: "acme", after: 5).missed == nil)
        let recent = feed.subscribe(accountID: "acme", after: UInt64(LineStateFeed.historyLength))
        #expect(recent.missed?.count == 10)
    }

    @Test func aSubscriberThatCannotKeepUpIsEnded() async {
        let feed = LineStateFeed()
        let slow = feed.subscribe(accountID: nil)
        let line = Self.line("acme", "201")
        for index in 0...LineStateFeed.bufferPerSubscriber {
            Self.publish(feed, line, registered: index.isMultiple(of: 2))
        }
        #expect(feed.subscriberCount == 0)
        var count = 0
        for await _ in slow.changes { count += 1 }
        #expect(count == LineStateFeed.bufferPerSubscriber, "what was buffered is delivered, then the stream ends")
    }

    @Test func endingAStreamUnsubscribes() async {
        let feed = LineStateFeed()
        do {
            let subscription = feed.subscribe(accountID: "acme")
            #expect(feed.subscriberCount == 1)
            let task = Task { for await _ in subscription.changes {} }
            task.cancel()
            await task.value
        }
        #expect(feed.subscriberCount == 0)
    }
}
