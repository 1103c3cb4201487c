import BusyLampCore
import SIPTransactions

/// Every timer the server's machines ask for, on one ``TimingWheel``: arming and cancelling are
/// O(1) and cost no scheduled task on the event loop (issue 10: NIO cancels a scheduled task by
/// a linear scan, and with one task per SIP timer the server collapsed under load).
///
/// A value: the driver owns it on its loop, arms and cancels what the actions say, and calls
/// `advance(to:)` from its one repeating tick; what fires goes back to the machine that asked.
/// A timer is known by its owner (a transaction or a call) and its kind, so that arming it again
/// replaces it and an owner that ends takes all of its timers with it in one lookup.
struct ServerTimers {
    enum Fired: Sendable, Equatable {
        case transaction(TransactionKey, TransactionTimer)
        case call(callID: String, CallTimer)
    }

    typealias Handle = TimingWheel<Fired>.Handle

    /// The armed timers of every owner of one kind (transactions, calls), by owner: a
    /// transaction has at most three at once (A and B, E and F, G and H), a call two.
    private struct OwnerTable<Owner: Hashable, Kind: Equatable> {
        private var armed: [Owner: [(kind: Kind, handle: Handle)]] = [:]

        /// Records `handle` as `owner`'s `kind` timer; returns the one it replaces.
        mutating func record(_ kind: Kind, of owner: Owner, as handle: Handle) -> Handle? {
            let replaced = remove(kind, of: owner)
            armed[owner, default: []].append((kind, handle))
            return replaced
        }

        /// Forgets `owner`'s `kind` timer (only if it is the one armed as `handle`, when given).
        mutating func remove(_ kind: Kind, of owner: Owner, ifArmedAs handle: Handle? = nil) -> Handle? {
            guard let timers = armed[owner],
                let index = timers.firstIndex(where: { $0.kind == kind && (handle == nil || $0.handle == handle) })
            else { return nil }
            if timers.count == 1 {
                armed[owner] = nil
            } else {
                armed[owner]!.remove(at: index)
            }
            return timers[index].handle
        }

        mutating func removeAll(of owner: Owner) -> [Handle] {
            armed.removeValue(forKey: owner)?.map(\.handle) ?? []
        }

        mutating func releaseUnusedCapacity() { armed.releaseUnusedCapacity() }
        var capacity: Int { armed.capacity }
    }

    /// How long one tick of the wheel is; deadlines round up to whole ticks.
    let tick: Duration
    private var wheel: TimingWheel<Fired>
    private var transactionTimers = OwnerTable<TransactionKey, TransactionTimer>()
    private var callTimers = OwnerTable<String, CallTimer>()
    /// Timers that fell due at the last `advance(to:)`, not yet handed out.
    private var due: [(handle: Handle, payload: Fired)] = []
    private var dueIndex = 0

    /// `tick` of a few milliseconds is plenty for T1 = 500 ms; the wheel turns once in about
    /// 33 s at 4 ms, so Timer J (32 s) is in its slot on the first pass.
    init(tick: Duration = .milliseconds(4), slotCount: Int = 8192) {
        self.tick = tick
        self.wheel = TimingWheel(slotCount: slotCount)
    }

    /// How many timers are armed.
    var count: Int { wheel.count }

    mutating func arm(_ timer: TransactionTimer, for key: TransactionKey, after duration: Duration) {
        let handle = wheel.schedule(.transaction(key, timer), afterTicks: ticks(duration))
        if let replaced = transactionTimers.record(timer, of: key, as: handle) { wheel.cancel(replaced) }
    }

    mutating func cancel(_ timer: TransactionTimer, for key: TransactionKey) {
        if let handle = transactionTimers.remove(timer, of: key) { wheel.cancel(handle) }
    }

    /// The transaction ended: none of its timers may fire.
    mutating func cancelAll(for key: TransactionKey) {
        for handle in transactionTimers.removeAll(of: key) { wheel.cancel(handle) }
    }

    mutating func arm(_ timer: CallTimer, forCall callID: String, after duration: Duration) {
        let handle = wheel.schedule(.call(callID: callID, timer), afterTicks: ticks(duration))
        if let replaced = callTimers.record(timer, of: callID, as: handle) { wheel.cancel(replaced) }
    }

    mutating func cancel(_ timer: CallTimer, forCall callID: String) {
        if let handle = callTimers.remove(timer, of: callID) { wheel.cancel(handle) }
    }

    mutating func cancelAll(forCall callID: String) {
        for handle in callTimers.removeAll(of: callID) { wheel.cancel(handle) }
    }

    /// Gives back the owner tables' storage after a burst of transactions has ended.
    mutating func releaseUnusedCapacity() {
        transactionTimers.releaseUnusedCapacity()
        callTimers.releaseUnusedCapacity()
    }

    /// Room in the owner tables (for tests of the above).
    var ownerCapacity: Int { transactionTimers.capacity + callTimers.capacity }

    /// Moves the clock to `tick`: what is due now waits in order for `nextDue()`.
    mutating func advance(to tick: UInt64) {
        due.append(contentsOf: wheel.advance(to: tick))
    }

    /// The next timer that fired and is still wanted. A timer that was cancelled or armed again
    /// after it fell due (by the handling of one due before it) is passed over.
    mutating func nextDue() -> Fired? {
        while dueIndex < due.count {
            let (handle, timer) = due[dueIndex]
            dueIndex += 1
            if dueIndex == due.count {
                due.removeAll(keepingCapacity: true)
                dueIndex = 0
            }
            let stillArmed: Bool
            switch timer {
            case .transaction(let key, let kind):
                stillArmed = transactionTimers.remove(kind, of: key, ifArmedAs: handle) != nil
            case .call(let callID, let kind):
                stillArmed = callTimers.remove(kind, of: callID, ifArmedAs: handle) != nil
            }
            if stillArmed { return timer }
        }
        return nil
    }

    /// Whole ticks, rounded up: a timer never fires early.
    private func ticks(_ duration: Duration) -> UInt64 {
        guard duration > .zero else { return 0 }
        let (quotient, remainder) = duration.attoseconds.quotientAndRemainder(dividingBy: tick.attoseconds)
        return UInt64(clamping: quotient + (remainder > 0 ? 1 : 0))
    }
}

extension Duration {
    fileprivate var attoseconds: Int128 {
        let (seconds, attoseconds) = components
        return Int128(seconds) * 1_000_000_000_000_000_000 + Int128(attoseconds)
    }
}
