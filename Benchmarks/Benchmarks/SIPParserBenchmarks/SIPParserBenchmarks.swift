import Benchmark
import BenchmarkMessages
import BenchmarkSupport
import SIPCore

/// Parser and serializer throughput and allocations per message.
///
/// Every iteration handles 1,000 messages (`scalingFactor: .kilo`), so the reported throughput is
/// messages per second and the malloc count is per message. Names have no spaces: package-benchmark
/// writes a threshold file with `_` for each space but looks it up by the name as it is.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .busyLamp(scalingFactor: .kilo, maxDuration: .seconds(2))

    for (name, bytes) in BenchmarkMessages.all {
        let parser = SIPParser()
        precondition((try? parser.parse(bytes)) != nil, "the \(name) benchmark message must parse")

        Benchmark("\(name)_parse_datagram") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try? parser.parse(bytes, framing: .datagram))
            }
        }

        Benchmark("\(name)_parse_stream") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try? parser.parse(bytes, framing: .stream))
            }
        }

        let message = try! parser.parse(bytes)
        Benchmark("\(name)_serialize") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(message.serializedBytes)
            }
        }
    }
}
