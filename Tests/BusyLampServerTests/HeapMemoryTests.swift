import Foundation
import Testing

@testable import BusyLampServer

/// What a burst freed goes back to the system, even when live blocks are scattered among the
/// freed ones (the subscriptions a SUBSCRIBE storm created, among its ended transactions).
@Suite("Heap memory", .timeLimit(.minutes(1)))
struct HeapMemoryTests {
    @Test func freePagesAmongLiveBlocksGoBackToTheSystem() throws {
        let before = try Self.residentBytes()
        // 256 MB in 1 KB blocks; one in sixteen stays alive, so no page at the heap's top is free.
        var blocks: [[UInt8]] = (0..<262_144).map { Array(repeating: UInt8($0 & 0xFF), count: 1_000) }
        let grown = try Self.residentBytes()
        try #require(grown - before > 200 << 20, "the blocks were not resident")
        var survivors: [[UInt8]] = []
        for (index, block) in blocks.enumerated() where index % 16 == 0 { survivors.append(block) }
        blocks = []
        let freed = try Self.residentBytes()
        HeapMemory.releaseFreePages()
        let trimmed = try Self.residentBytes()
        #expect(freed - trimmed > 150 << 20, "freed \(freed - trimmed) bytes")
        #expect(survivors.count == 16_384 && survivors[1][0] == 16)
    }

    /// Resident set size from /proc (Linux: the platform BusyLamp runs on).
    static func residentBytes() throws -> Int {
        let statm = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8)
        let pages = try #require(statm.split(separator: " ").dropFirst().first.flatMap { Int($0) })
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
