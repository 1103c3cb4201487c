import Testing

@testable import BusyLampCore

/// The notifier's table behaves as a dictionary (checked against one over random operations)
/// and gives back its slots after many removals.
@Suite("Slot table", .timeLimit(.minutes(1)))
struct SlotTableTests {
    struct Item: Sendable, Equatable {
        var name: String
        var count: Int
    }

    @Test func behavesAsADictionary() {
        var table = SlotTable<Int, Item>()
        var model: [Int: Item] = [:]
        var generator = SteppedGenerator(seed: 7)
        for step in 0..<20_000 {
            let key = Int(generator.next() % 500)
            switch generator.next() % 6 {
            case 0, 1:
                table[key] = Item(name: "n\(step)", count: step)
                model[key] = Item(name: "n\(step)", count: step)
            case 2:
                table[key]?.count += 1
                model[key]?.count += 1
            case 3:
                #expect(table.removeValue(forKey: key) == model.removeValue(forKey: key))
            case 4:
                table[key] = nil
                model[key] = nil
            default:
                if step % 1_000 == 0 { table.releaseUnusedCapacity(keepingAtLeast: 16) }
            }
            #expect(table[key] == model[key])
        }
        #expect(table.count == model.count)
        #expect(Set(table.keys) == Set(model.keys))
        #expect(table.values.map(\.count).sorted() == model.values.map(\.count).sorted())
    }

    @Test func givesBackItsSlotsAfterManyRemovals() {
        var table = SlotTable<Int, Item>()
        for key in 0..<5_000 { table[key] = Item(name: "item \(key)", count: key) }
        let grown = table.capacity
        for key in 10..<5_000 { table[key] = nil }
        table.releaseUnusedCapacity()
        #expect(table.capacity < grown / 4)
        for key in 0..<10 { #expect(table[key] == Item(name: "item \(key)", count: key)) }
        table[20] = Item(name: "new", count: 20)
        #expect(table.count == 11)
    }
}

/// Knuth's MMIX linear congruential generator: deterministic, so that a failure replays.
struct SteppedGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state >> 11
    }
}
