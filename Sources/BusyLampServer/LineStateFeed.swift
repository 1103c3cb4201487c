import BusyLampCore
import Foundation
import Synchronization

/// One change of a line's state (its lamp, registration or dialogs), in the order they happened.
public struct LineStateChange: Sendable, Hashable {
    /// Rises by one per change in this process (across all accounts), from 1.
    public var sequence: UInt64
    public var accountID: String
    /// The line's extension and display name, as the directory had them at the change.
    public var extensionNumber: String
    public var name: String
    public var state: LineState
    public var time: Date
}

/// The server's one outward stream of line-state changes: the console's Server-Sent Events,
/// metrics and, later, a cluster peer all subscribe here, and none of them polls.
///
/// A subscriber that reconnects names the last change it saw: when the history still holds
/// everything after it, it gets the missed changes first, so no change is lost; otherwise it
/// is told to start again from a snapshot. A subscriber that cannot keep up (its buffer of
/// ``bufferPerSubscriber`` changes is full) is ended rather than silently skipped, so it
/// reconnects and resumes or re-snapshots. Publishing never blocks the event loop.
public final class LineStateFeed: Sendable {
    /// Changes kept for resuming subscribers.
    public static let historyLength = 4096
    public static let bufferPerSubscriber = 4096

    /// Differs per process start: a change sequence from before a restart never resumes.
    public let epoch: String = String(UInt32.random(in: .min ... .max), radix: 36)

    private struct Subscriber {
        var accountID: String?
        var continuation: AsyncStream<LineStateChange>.Continuation
    }

    private struct State {
        var sequence: UInt64 = 0
        var history: [LineStateChange] = []
        var historyStart = 0
        var subscribers: [UInt64: Subscriber] = [:]
        var nextSubscriberID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// A subscription: the changes missed since `after` (or `nil` when the caller must take a
    /// snapshot, because `after` was not given or is no longer in the history), the sequence
    /// number the stream continues from, and the stream of later changes.
    public struct Subscription: Sendable {
        public var missed: [LineStateChange]?
        public var sequenceAtStart: UInt64
        public var changes: AsyncStream<LineStateChange>
    }

    /// Subscribes to the changes of one account (`nil`: every account).
    public func subscribe(accountID: String?, after lastSeen: UInt64? = nil) -> Subscription {
        let (stream, continuation) = AsyncStream.makeStream(
            of: LineStateChange.self,
            bufferingPolicy: .bufferingNewest(Self.bufferPerSubscriber)
        )
        let (id, missed, sequence) = state.withLock { state -> (UInt64, [LineStateChange]?, UInt64) in
            let id = state.nextSubscriberID
            state.nextSubscriberID += 1
            state.subscribers[id] = Subscriber(accountID: accountID, continuation: continuation)
            var missed: [LineStateChange]?
            if let lastSeen, lastSeen <= state.sequence {
                let ordered = Array(state.history[state.historyStart...] + state.history[..<state.historyStart])
                let oldest = ordered.first?.sequence ?? state.sequence + 1
                // Everything after `lastSeen` is still here when the oldest kept change is at
                // most the one right after it.
                if oldest <= lastSeen + 1 {
                    missed = ordered.filter {
                        $0.sequence > lastSeen && (accountID == nil || $0.accountID == accountID)
                    }
                }
            }
            return (id, missed, state.sequence)
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return Subscription(missed: missed, sequenceAtStart: sequence, changes: stream)
    }

    /// Called by the server on its event loop when a line's state changed.
    @discardableResult
    public func publish(line: Line, state lineState: LineState, time: Date) -> LineStateChange {
        let accountID = line.accountID
        let (change, tooSlow) = state.withLock {
            state -> (LineStateChange, [AsyncStream<LineStateChange>.Continuation]) in
            state.sequence += 1
            let change = LineStateChange(
                sequence: state.sequence,
                accountID: accountID,
                extensionNumber: line.extensionNumber,
                name: line.name,
                state: lineState,
                time: time
            )
            if state.history.count < Self.historyLength {
                state.history.append(change)
            } else {
                state.history[state.historyStart] = change
                state.historyStart = (state.historyStart + 1) % Self.historyLength
            }
            var tooSlow: [AsyncStream<LineStateChange>.Continuation] = []
            for (id, subscriber) in state.subscribers
            where subscriber.accountID == nil || subscriber.accountID == accountID {
                if case .dropped = subscriber.continuation.yield(change) {
                    state.subscribers[id] = nil
                    tooSlow.append(subscriber.continuation)
                }
            }
            return (change, tooSlow)
        }
        // Too slow: ended so that it resumes from the history or a snapshot. Outside the lock:
        // finishing runs the stream's termination handler, which takes the lock.
        for continuation in tooSlow { continuation.finish() }
        return change
    }

    /// The sequence number of the latest change.
    public var currentSequence: UInt64 { state.withLock { $0.sequence } }

    /// Subscribers now connected (for tests and metrics).
    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }
}
