// swift-tools-version:6.1
import PackageDescription

import class Foundation.ProcessInfo
import struct Foundation.URL

// The BusyLamp checkout to measure: the enclosing one, or BUSYLAMP_ROOT (scripts/bench-parser
// --ref points it at an exported commit). SwiftPM names a path dependency after its folder
// (`main`, `busylamp`, a CI work folder): the products below are looked up under that name.
let busyLampRoot =
    ProcessInfo.processInfo.environment["BUSYLAMP_ROOT"]
    ?? URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().path
let busyLampPackage = URL(fileURLWithPath: busyLampRoot).lastPathComponent.lowercased()

// The NOTIFY builder and notifier suites need BusyLampCore as a product, which a commit from
// before them does not export: measuring such a commit (scripts/bench-parser --ref) leaves them out.
let busyLampManifest = (try? String(contentsOfFile: busyLampRoot + "/Package.swift", encoding: .utf8)) ?? ""
let exportsBusyLampCore = busyLampManifest.contains(#".library(name: "BusyLampCore""#)

/// A product of the BusyLamp package.
func busyLamp(_ product: String) -> Target.Dependency {
    .product(name: product, package: busyLampPackage)
}

/// A package-benchmark suite: `Benchmarks/NAME/`, run by `swift package benchmark`.
func suite(_ name: String, dependencies: [Target.Dependency]) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["BenchmarkSupport", .product(name: "Benchmark", package: "benchmark")] + dependencies,
        path: "Benchmarks/\(name)",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
}

let package = Package(
    name: "BusyLampBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: busyLampRoot),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The messages measured, shared by the parser executables and the notifier suite.
        .target(name: "BenchmarkMessages"),
        // Every suite's configuration: metrics, iterations, the allocation tolerance (scripts/bench-check).
        .target(name: "BenchmarkSupport", dependencies: [.product(name: "Benchmark", package: "benchmark")]),
        // Throughput and mallocs per message (`scripts/bench-parser`).
        suite("SIPParserBenchmarks", dependencies: ["BenchmarkMessages", busyLamp("SIPCore")]),
        // A plain ContinuousClock loop without the malloc interposer, to cross-check throughput.
        .executableTarget(
            name: "SIPParserThroughput",
            dependencies: ["BenchmarkMessages", busyLamp("SIPCore")]
        ),
    ]
)

if exportsBusyLampCore {
    let notifierDependencies = [
        "NotifierFixtures", busyLamp("BusyLampCore"), busyLamp("SIPCore"), busyLamp("SIPTransactions"),
    ]
    package.targets += [
        // The directory, subscriptions and line states the two suites below measure against.
        .target(
            name: "NotifierFixtures",
            dependencies: [busyLamp("BusyLampCore"), busyLamp("SIPCore"), busyLamp("SIPTransactions")]
        ),
        // Bodies (dialog-info, PIDF) and NOTIFY requests: per document, per NOTIFY.
        suite("NotifyBuilderBenchmarks", dependencies: notifierDependencies),
        // NotifierStateMachine's events beside 1,000 subscriptions, and SUBSCRIBE admission.
        suite("NotifierBenchmarks", dependencies: ["BenchmarkMessages"] + notifierDependencies),
    ]
}
