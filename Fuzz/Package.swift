// swift-tools-version:6.1
import PackageDescription

import class Foundation.ProcessInfo
import struct Foundation.URL

// The enclosing BusyLamp checkout. SwiftPM names a path dependency after its folder, which is
// whatever the clone was called (`main`, `busylamp`, a CI work folder): look the name up.
let busyLampRoot = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent()
let busyLampPackage = busyLampRoot.lastPathComponent.lowercased()

// A libFuzzer harness for the SIP parser. It is a separate package so that the sanitizer
// flags never reach the main build. Build and run it with `scripts/fuzz`.
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
        )
    ]
)
