// swift-tools-version:6.1
import PackageDescription

import class Foundation.ProcessInfo
import struct Foundation.URL

// The enclosing BusyLamp checkout. SwiftPM names a path dependency after its folder, which is
// whatever the clone was called (`main`, `busylamp`, a CI work folder): look the name up.
let busyLampRoot = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent()
let busyLampPackage = busyLampRoot.lastPathComponent.lowercased()

// libFuzzer harnesses: the SIP parser alone (SIPParserFuzzer), and the whole request path
// through the sans-I/O machines (SIPRequestPathFuzzer). A separate package, so that the
// sanitizer flags never reach the main build, and without the driver, the store or the admin
// API (no NIO event loops, no GRDB, no Hummingbird). Build and run them with `scripts/fuzz`.
let package = Package(
    name: "BusyLampFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: busyLampRoot.path)],
    targets: [
        .target(name: "CLibFuzzerDriver"),
        .executableTarget(
            name: "SIPParserFuzzer",
            dependencies: ["CLibFuzzerDriver", .product(name: "SIPCore", package: busyLampPackage)],
            swiftSettings: [.unsafeFlags(["-warnings-as-errors"])]
        ),
        .executableTarget(
            name: "SIPRequestPathFuzzer",
            dependencies: [
                "CLibFuzzerDriver",
                .product(name: "SIPCore", package: busyLampPackage),
                .product(name: "SIPTransactions", package: busyLampPackage),
                .product(name: "SIPAuth", package: busyLampPackage),
                .product(name: "BusyLampCore", package: busyLampPackage),
            ],
            swiftSettings: [.unsafeFlags(["-warnings-as-errors"])]
        ),
    ]
)
