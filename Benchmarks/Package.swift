// swift-tools-version:6.1
import PackageDescription

import class Foundation.ProcessInfo
import struct Foundation.URL

// The BusyLamp checkout to measure: the enclosing one, or BUSYLAMP_ROOT (scripts/bench-parser
// --ref points it at an exported commit). SwiftPM names a path dependency after its folder
// (`main`, `busylamp`, a CI work folder): the products below are looked up under that name.
let busyLampRoot = ProcessInfo.processInfo.environment["BUSYLAMP_ROOT"]
    ?? URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().path
let busyLampPackage = URL(fileURLWithPath: busyLampRoot).lastPathComponent.lowercased()

let package = Package(
    name: "BusyLampBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: busyLampRoot),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The messages measured, shared by both executables.
        .target(name: "BenchmarkMessages"),
        // package-benchmark suite: throughput and mallocs per message (`scripts/bench-parser`).
        .executableTarget(
            name: "SIPParserBenchmarks",
            dependencies: [
                "BenchmarkMessages",
                .product(name: "SIPCore", package: busyLampPackage),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/SIPParserBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // A plain ContinuousClock loop without the malloc interposer, to cross-check throughput.
        .executableTarget(
            name: "SIPParserThroughput",
            dependencies: ["BenchmarkMessages", .product(name: "SIPCore", package: busyLampPackage)]
        ),
    ]
)
