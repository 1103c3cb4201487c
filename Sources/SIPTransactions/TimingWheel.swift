/// A hashed timing wheel (Varghese and Lauck, 1987): timers that are armed and cancelled in
/// O(1), and fired by advancing the wheel's clock.
///
/// Why not one scheduled task per timer: an event loop keeps its scheduled tasks in a heap and
/// cancels by a linear scan, so when every SIP transaction holds a Timer J for 32 s, each
/// cancel costs O(pending timers) and the server completes less the more it is offered
/// (issue 10's profile). Here the driver runs one repeating task and calls `advance(to:)`.
///
/// Like the transaction machines the wheel reads no clock: time is a count of ticks, and the
/// driver decides what a tick is (a few milliseconds: T1 is 500 ms). A timer fires at the first
/// `advance(to:)` whose tick is at or past its deadline, never earlier.
///
/// Storage is a slab of nodes (no allocation per timer once the slab has grown) linked into one
/// list per slot; a ``Handle`` names a node and its generation, so a stale handle (the timer
/// fired or was cancelled, and the node reused) cancels nothing.
public struct TimingWheel<Payload>: Sendable where Payload: Sendable {
    /// Names one armed timer; cancelling it after it fired or was cancelled does nothing.
    public struct Handle: Hashable, Sendable {
        fileprivate let index: Int32
        fileprivate let generation: UInt32
    }

    private struct Node: Sendable {
        var payload: Payload?
        var deadline: UInt64
        var previous: Int32
        var next: Int32
        var generation: UInt32
    }

    private static var none: Int32 { -1 }

    private var nodes: [Node] = []
    private var firstFreeNode: Int32 = TimingWheel.none
    private var slotHeads: [Int32]
    private let slotMask: UInt64
    /// The last tick `advance(to:)` reached: deadlines are counted from it.
    public private(set) var currentTick: UInt64 = 0
    /// How many timers are armed.
    public private(set) var count = 0

    /// `slotCount` is rounded up to a power of two. A timer further away than `slotCount` ticks
    /// stays in its slot for more than one turn of the wheel (correct, only visited more often):
    /// choose it so that the longest common timer fits, 32 s of Timer J at a few ms per tick.
    public init(slotCount: Int = 8192) {
        var slots = 1
        while slots < max(slotCount, 2) { slots <<= 1 }
        slotHeads = Array(repeating: TimingWheel.none, count: slots)
        slotMask = UInt64(slots - 1)
    }

    /// Arms a timer that fires `ticks` ticks from now (at least one: never in the current tick).
    public mutating func schedule(_ payload: Payload, afterTicks ticks: UInt64) -> Handle {
        let deadline = currentTick &+ max(ticks, 1)
        let index: Int32
        if firstFreeNode != Self.none {
            index = firstFreeNode
            firstFreeNode = nodes[Int(index)].next
            nodes[Int(index)].payload = payload
            nodes[Int(index)].deadline = deadline
        } else {
            index = Int32(nodes.count)
            nodes.append(
                Node(payload: payload, deadline: deadline, previous: Self.none, next: Self.none, generation: 0)
            )
        }
        link(index, into: Int(deadline & slotMask))
        count += 1
        return Handle(index: index, generation: nodes[Int(index)].generation)
    }

    /// Disarms a timer; returns its payload, or `nil` when it had already fired or been cancelled.
    @discardableResult
    public mutating func cancel(_ handle: Handle) -> Payload? {
        let index = Int(handle.index)
        guard index < nodes.count, nodes[index].generation == handle.generation,
            let payload = nodes[index].payload
        else { return nil }
        unlink(handle.index, from: Int(nodes[index].deadline & slotMask))
        release(handle.index)
        return payload
    }

    /// Moves the clock to `tick` and returns every timer now due with the handle it was armed
    /// under, earliest slot first. A tick at or before `currentTick` fires nothing.
    public mutating func advance(to tick: UInt64) -> [(handle: Handle, payload: Payload)] {
        guard tick > currentTick else { return [] }
        var due: [(handle: Handle, payload: Payload)] = []
        // A jump longer than one turn visits every slot once: each holds its due timers.
        let slotsToVisit = min(tick - currentTick, slotMask + 1)
        var slotTick = tick - slotsToVisit
        while slotTick < tick {
            slotTick += 1
            let slot = Int(slotTick & slotMask)
            var index = slotHeads[slot]
            while index != Self.none {
                let next = nodes[Int(index)].next
                if nodes[Int(index)].deadline <= tick, let payload = nodes[Int(index)].payload {
                    due.append((Handle(index: index, generation: nodes[Int(index)].generation), payload))
                    unlink(index, from: slot)
                    release(index)
                }
                index = next
            }
        }
        currentTick = tick
        return due
    }

    // MARK: The slot lists

    private mutating func link(_ index: Int32, into slot: Int) {
        let head = slotHeads[slot]
        nodes[Int(index)].previous = Self.none
        nodes[Int(index)].next = head
        if head != Self.none { nodes[Int(head)].previous = index }
        slotHeads[slot] = index
    }

    private mutating func unlink(_ index: Int32, from slot: Int) {
        let node = nodes[Int(index)]
        if node.previous != Self.none {
            nodes[Int(node.previous)].next = node.next
        } else {
            slotHeads[slot] = node.next
        }
        if node.next != Self.none { nodes[Int(node.next)].previous = node.previous }
    }

    /// Returns a node to the free list; its new generation makes old handles stale.
    private mutating func release(_ index: Int32) {
        nodes[Int(index)].payload = nil
        nodes[Int(index)].generation &+= 1
        nodes[Int(index)].previous = Self.none
        nodes[Int(index)].next = firstFreeNode
        firstFreeNode = index
        count -= 1
    }
}
