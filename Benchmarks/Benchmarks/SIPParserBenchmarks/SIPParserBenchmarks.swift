import Benchmark
import BenchmarkMessages
import SIPCore

/// Parser and serializer throughput and allocations per message.
///
/// Every iteration handles 1,000 messages (`scalingFactor: .kilo`), so the reported throughput is
/// messages per second and the malloc count is per message.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal],
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 10_000
    )

    for (name, bytes) in BenchmarkMessages.all {
        let parser = SIPParser()
        precondition((try? parser.parse(bytes)) != nil, "the \(name) benchmark message must parse")

        Benchmark("\(name) parse datagram") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try? parser.parse(bytes, framing: .datagram))
            }
        }

        Benchmark("\(name) parse stream") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try? parser.parse(bytes, framing: .stream))
            }
        }

        let message = try! parser.parse(bytes)
        Benchmark("\(name) serialize") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(message.serializedBytes)
            }
        }
    }
}
