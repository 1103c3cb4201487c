import Foundation
import NIOCore
import NIOPosix

/// What a finished run measured: the shards' figures merged.
struct RunResult: Sendable {
    var stats: LoadStatistics
    var setup: LoadStatistics
    var fanout: [FanoutCall]
    var wallSeconds: Double
    var toolCPUSeconds: Double
    var threads: Int
}

/// Starts one shard per event loop, prints the progress line every second, and collects the
/// shards' figures when they are done (or when the run's deadline passes).
enum LoadRunner {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func run(plans: [LoadPlan], threads: Int, progress: Bool, deadlineSeconds: Double) throws -> RunResult {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        defer { try? group.syncShutdownGracefully() }
        let shards = plans.map { LoadShard(plan: $0, loop: group.next()) }
        for shard in shards {
            do {
                try shard.loop.flatSubmit { shard.bind() }.wait()
            } catch {
                throw Failure(description: "cannot bind the load's sockets on 127.0.0.1: \(error)")
            }
        }
        let cpuBefore = processCPUSeconds()
        let started = Date()
        for shard in shards { shard.loop.execute { shard.start() } }
        let allDone = EventLoopFuture.andAllComplete(shards.map { $0.done.futureResult }, on: group.next())
        let finished = ThreadSafeFlag()
        allDone.whenComplete { _ in finished.set() }

        var lastSucceeded = 0
        var lastLine = Date()
        while !finished.isSet {
            finished.wait(seconds: 1)
            let now = Date()
            if now.timeIntervalSince(started) > deadlineSeconds {
                FileHandle.standardError.write(
                    Data("busylamp-load: run deadline of \(Int(deadlineSeconds)) s passed; stopping\n".utf8)
                )
                break
            }
            guard progress, now.timeIntervalSince(lastLine) >= 0.999 else { continue }
            var merged = LoadStatistics()
            for shard in shards {
                if let snapshot = try? shard.loop.submit({ shard.snapshot() }).wait() { merged.merge(snapshot) }
            }
            let seconds = now.timeIntervalSince(lastLine)
            lastLine = now
            let rate = Double(merged.succeeded - lastSucceeded) / seconds
            lastSucceeded = merged.succeeded
            FileHandle.standardError.write(
                Data((progressLine(merged, elapsed: now.timeIntervalSince(started), rate: rate) + "\n").utf8)
            )
        }
        let wall = Date().timeIntervalSince(started)
        let cpu = processCPUSeconds() - cpuBefore
        var result = RunResult(
            stats: LoadStatistics(),
            setup: LoadStatistics(),
            fanout: [],
            wallSeconds: wall,
            toolCPUSeconds: cpu,
            threads: threads
        )
        for shard in shards {
            let (stats, setup, fanout) = try shard.loop.submit { (shard.stats, shard.setup, shard.fanout) }.wait()
            result.stats.merge(stats)
            result.setup.merge(setup)
            result.fanout += fanout
            try? shard.loop.flatSubmit { shard.close() }.wait()
        }
        return result
    }

    static func progressLine(_ stats: LoadStatistics, elapsed: Double, rate: Double) -> String {
        let p50 = Double(stats.window.valueAtPercentile(50)) / 1000
        let p99 = Double(stats.window.valueAtPercentile(99)) / 1000
        return String(
            format:
                "[%4.0fs] sent %d  completed %d (%.0f/s)  failed %d  timeouts %d  retrans %d  p50 %.2f ms  p99 %.2f ms",
            elapsed,
            stats.started,
            stats.succeeded,
            rate,
            stats.failed,
            stats.timeouts,
            stats.retransmissions,
            p50,
            p99
        )
    }

    /// User + system CPU seconds of this process (getrusage).
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
    }
}

/// A flag the event loops set and the main thread waits for.
final class ThreadSafeFlag: @unchecked Sendable {
    private let condition = NSCondition()
    private var value = false

    var isSet: Bool {
        condition.lock()
        defer { condition.unlock() }
        return value
    }

    func set() {
        condition.lock()
        value = true
        condition.broadcast()
        condition.unlock()
    }

    func wait(seconds: Double) {
        condition.lock()
        if !value { _ = condition.wait(until: Date(timeIntervalSinceNow: seconds)) }
        condition.unlock()
    }
}
