// swift-tools-version:6.1
import PackageDescription

// Our own targets compile with warnings as errors (STYLE.md); dependencies are left alone.
let strict: [SwiftSetting] = [.unsafeFlags(["-warnings-as-errors"])]

let package = Package(
    name: "BusyLamp",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "busylamp", targets: ["busylamp"]),
        .executable(name: "busylamp-load", targets: ["busylamp-load"]),
        .library(name: "SIPCore", targets: ["SIPCore"]),
        .library(name: "SIPTransactions", targets: ["SIPTransactions"]),
        .library(name: "SIPAuth", targets: ["SIPAuth"]),
        .library(name: "BusyLampCore", targets: ["BusyLampCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        // SIP over TLS: the transport target only (SIPTransportNIO), never the SIP stack or the domain.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // The operator side only (AdminAPI, busylamp): the SIP targets never import these.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        // The load tool only (busylamp-load).
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // MARK: SIP stack (no event loops: values and state machines only)
        .target(
            name: "SIPCore",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .target(
            name: "SIPTransactions",
            dependencies: ["SIPCore"],
            swiftSettings: strict
        ),
        .target(
            name: "SIPAuth",
            dependencies: ["SIPCore", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),

        // MARK: The domain: directory, registrar, later subscriptions and calls
        .target(
            name: "BusyLampCore",
            dependencies: [
                "SIPCore", "SIPTransactions", "SIPAuth",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),

        // MARK: I/O at the edge
        .target(
            name: "SIPTransportNIO",
            dependencies: [
                "SIPCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "BusyLampStore",
            dependencies: ["BusyLampCore", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        .target(
            name: "BusyLampServer",
            dependencies: [
                "SIPCore", "SIPTransactions", "SIPAuth", "BusyLampCore", "SIPTransportNIO", "BusyLampStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // MARK: The operator side: phone provisioning (pure), the admin API and console (Hummingbird)
        .target(
            name: "BusyLampProvisioning",
            dependencies: ["BusyLampCore"],
            swiftSettings: strict
        ),
        .target(
            name: "AdminAPI",
            dependencies: [
                "BusyLampCore", "BusyLampServer", "BusyLampProvisioning",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            resources: [
                // Compiled into the binary (INTERFACE.md: no CDN, no build step, nothing beside the binary).
                .embedInCode("Console/index.html"),
                .embedInCode("Console/console.css"),
                .embedInCode("Console/console.js"),
                .embedInCode("Console/openapi.json"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "busylamp",
            dependencies: [
                "AdminAPI", "BusyLampProvisioning",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                "BusyLampServer", "BusyLampStore", "BusyLampCore", "SIPAuth", "SIPCore", "SIPTransactions",
                "SIPTransportNIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // MARK: The load tool: thousands of simulated phones against any SIP server (issue 10)
        .executableTarget(
            name: "busylamp-load",
            dependencies: [
                "SIPCore", "SIPAuth", "SIPTransactions",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strict
        ),

        // MARK: Tests mirror the sources
        .testTarget(name: "SIPCoreTests", dependencies: ["SIPCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SIPTransactionsTests", dependencies: ["SIPTransactions"]),
        .testTarget(name: "SIPAuthTests", dependencies: ["SIPAuth", "SIPCore"]),
        .testTarget(name: "BusyLampCoreTests", dependencies: ["BusyLampCore"]),
        .testTarget(
            name: "SIPTransportNIOTests",
            dependencies: [
                "SIPTransportNIO", "SIPCore", "TestProcessSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(name: "BusyLampStoreTests", dependencies: ["BusyLampStore"]),
        .testTarget(name: "BusyLampProvisioningTests", dependencies: ["BusyLampProvisioning", "BusyLampCore"]),
        .testTarget(name: "AdminAPITests", dependencies: ["AdminAPI", "BusyLampCore"]),
        .testTarget(
            name: "BusyLampServerTests",
            dependencies: [
                "BusyLampServer", "BusyLampCore", "BusyLampStore", "SIPCore", "SIPAuth", "SIPTransactions",
                "SIPTransportNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Starts child processes (the busylamp binary) with a clean signal state, and finds it.
        .target(name: "TestProcessSupport", path: "Tests/TestProcessSupport"),
        .testTarget(name: "BusyLampCommandLineTests", dependencies: ["TestProcessSupport", "BusyLampStore"]),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "TestProcessSupport", "SIPCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ]
)
