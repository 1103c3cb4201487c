/// A table of values by key that stores each value once, densely, in an array of slots, with a
/// small index from key to slot.
///
/// Why not a `Dictionary<Key, Value>`: a dictionary's buckets hold the values themselves and are
/// between three eighths and three quarters full, so a large value (a subscription is about
/// 700 bytes) costs up to 2.7 times its size in buckets, and a rehash moves all of them. Here the
/// values are packed in slots (a freed slot is reused) and only the index, of 24-byte buckets,
/// is hashed. The slots come in chunks of a fixed size, so that growing never copies them all
/// nor leaves an array's doubling half empty. Issue 10: the notifier's table was 1.5 KB per
/// subscription.
struct SlotTable<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private var slotByKey: [Key: Int32] = [:]
    private var chunks: [[Value?]] = []
    private var freeSlots: [Int32] = []
    static var chunkSize: Int { 1024 }

    init() {}

    var count: Int { slotByKey.count }
    var isEmpty: Bool { slotByKey.isEmpty }

    /// Reads copy the value; writes through optional chaining (`table[key]?.field = x`) change
    /// it in its slot, without a copy.
    subscript(key: Key) -> Value? {
        get { slotByKey[key].flatMap { chunks[Self.chunk($0)][Self.offset($0)] } }
        set {
            if let newValue { insert(newValue, for: key) } else { removeValue(forKey: key) }
        }
        _modify {
            guard let slot = slotByKey[key] else {
                var value: Value? = nil
                defer { if let value { insert(value, for: key) } }
                yield &value
                return
            }
            var value = chunks[Self.chunk(slot)][Self.offset(slot)].take()
            defer {
                if let value {
                    chunks[Self.chunk(slot)][Self.offset(slot)] = value
                } else {
                    slotByKey[key] = nil
                    freeSlots.append(slot)
                }
            }
            yield &value
        }
    }

    @discardableResult
    mutating func removeValue(forKey key: Key) -> Value? {
        guard let slot = slotByKey.removeValue(forKey: key) else { return nil }
        freeSlots.append(slot)
        return chunks[Self.chunk(slot)][Self.offset(slot)].take()
    }

    var keys: Dictionary<Key, Int32>.Keys { slotByKey.keys }

    /// Every value, in slot order (no order a caller may rely on).
    var values: some Sequence<Value> {
        chunks.lazy.joined().compactMap { $0 }
    }

    /// After many removals, packs the values into as few slots as they need and shrinks the
    /// index (``Dictionary/releaseUnusedCapacity(keepingAtLeast:)``).
    mutating func releaseUnusedCapacity(keepingAtLeast minimumCapacity: Int = 1024) {
        guard capacity > minimumCapacity, count * 4 <= capacity else {
            slotByKey.releaseUnusedCapacity(keepingAtLeast: minimumCapacity)
            return
        }
        let old = chunks
        let oldIndex = slotByKey
        chunks = []
        freeSlots = []
        slotByKey = Dictionary(minimumCapacity: Swift.max(count * 2, minimumCapacity / 2))
        for (key, slot) in oldIndex {
            if let value = old[Self.chunk(slot)][Self.offset(slot)] { insert(value, for: key) }
        }
    }

    /// Slots allocated (for tests of the above).
    var capacity: Int { chunks.count * Self.chunkSize }

    private mutating func insert(_ value: Value, for key: Key) {
        if let slot = slotByKey[key] {
            chunks[Self.chunk(slot)][Self.offset(slot)] = value
            return
        }
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            chunks[Self.chunk(slot)][Self.offset(slot)] = value
        } else {
            if chunks.last.map({ $0.count == Self.chunkSize }) ?? true {
                var chunk: [Value?] = []
                chunk.reserveCapacity(Self.chunkSize)
                chunks.append(chunk)
            }
            slot = Int32((chunks.count - 1) * Self.chunkSize + chunks[chunks.count - 1].count)
            chunks[chunks.count - 1].append(value)
        }
        slotByKey[key] = slot
    }

    private static func chunk(_ slot: Int32) -> Int { Int(slot) / chunkSize }
    private static func offset(_ slot: Int32) -> Int { Int(slot) % chunkSize }
}
