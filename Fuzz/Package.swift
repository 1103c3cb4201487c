// swift-tools-version:6.1
import PackageDescription

// A libFuzzer harness for the SIP parser. It is a separate package so that the sanitizer
// flags never reach the main build. Build and run it with `scripts/fuzz`.
let package = Package(
    name: "BusyLampFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "CLibFuzzerDriver"),
        .executableTarget(
            name: "SIPParserFuzzer",
            dependencies: ["CLibFuzzerDriver", .product(name: "SIPCore", package: "main")],
            swiftSettings: [.unsafeFlags(["-warnings-as-errors"])]
        )
    ]
)
