import Benchmark

import class Foundation.ProcessInfo

extension Benchmark.Configuration {
    /// Whether `scripts/bench-check` runs the suites (`BUSYLAMP_BENCHMARK_CHECK` is set): it
    /// checks allocation counts only, which need a few iterations, not seconds of them.
    public static let isAllocationCheck = ProcessInfo.processInfo.environment["BUSYLAMP_BENCHMARK_CHECK"] != nil

    /// The iterations `scripts/bench-check` runs of each benchmark, after its warm-up.
    public static let allocationCheckIterations = 20

    /// A benchmark of BusyLamp: throughput, wall clock and mallocs, the mallocs checked against
    /// `Benchmarks/Thresholds` by `scripts/bench-check`.
    ///
    /// Malloc counts are deterministic, so the tolerance is less than one malloc per unit of
    /// work: `unitsPerIteration / 2` mallocs per iteration at p90 (0 for one event an
    /// iteration), which lets no extra malloc per message or per NOTIFY through. Time is never
    /// checked: on a 2-core CI machine it is noise.
    ///
    /// - Parameters:
    ///   - unitsPerIteration: the messages, documents or NOTIFYs one iteration handles: the
    ///     scaling factor's value for a loop over `scaledIterations`, the fan-out for one event
    ///     that NOTIFYs many.
    public static func busyLamp(
        scalingFactor: BenchmarkScalingFactor = .one,
        unitsPerIteration: Int? = nil,
        warmupIterations: Int = 10,
        maxDuration: Duration = .seconds(1),
        maxIterations: Int = 10_000,
        allowedMallocsPerUnit: Double = 0.5
    ) -> Benchmark.Configuration {
        let units = unitsPerIteration ?? scalingFactor.rawValue
        return Benchmark.Configuration(
            metrics: [.throughput, .wallClock, .mallocCountTotal],
            warmupIterations: warmupIterations,
            scalingFactor: scalingFactor,
            maxDuration: maxDuration,
            maxIterations: isAllocationCheck ? min(maxIterations, allocationCheckIterations) : maxIterations,
            thresholds: [
                .mallocCountTotal: BenchmarkThresholds(absolute: [.p90: Int(Double(units) * allowedMallocsPerUnit)])
            ]
        )
    }
}
