import Foundation
import Testing

/// Where the end-to-end tests find what they drive: the `busylamp` binary, SIPp and the scenarios.
///
/// Nothing here is optional: a missing binary or a missing `sipp` fails the test with a message
/// that says how to get it (`scripts/test` installs and builds everything). Tests never skip.
enum TestEnvironment {
    /// The repository root, from this file's place in it (`Tests/EndToEndTests/`).
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The SIPp scenarios of `tests/sipp/`.
    static func scenario(_ name: String) -> URL {
        repositoryRoot.appendingPathComponent("tests/sipp/\(name).xml")
    }

    /// `BUSYLAMP_BINARY` when set, else the `busylamp` built beside this test bundle (same
    /// scratch path and configuration), else `.build/debug/busylamp` in the repository.
    static func busylampBinary(sourceLocation: SourceLocation = #_sourceLocation) throws -> URL {
        let fileManager = FileManager.default
        if let path = ProcessInfo.processInfo.environment["BUSYLAMP_BINARY"], !path.isEmpty {
            guard fileManager.isExecutableFile(atPath: path) else {
                throw EndToEndFailure("BUSYLAMP_BINARY=\(path) is not an executable file; run scripts/test")
            }
            return URL(fileURLWithPath: path)
        }
        var candidates: [URL] = []
        if let bundleExecutable = Bundle.main.executableURL {
            candidates.append(bundleExecutable.resolvingSymlinksInPath().deletingLastPathComponent())
        }
        let selfExecutable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        candidates.append(selfExecutable.deletingLastPathComponent())
        // On Linux the test runner is `<scratch>/<triple>/debug/BusyLampPackageTests.xctest`;
        // on macOS it is inside `…/debug/BusyLampPackageTests.xctest/Contents/MacOS/`.
        for directory in candidates {
            for up in 0..<4 {
                var base = directory
                for _ in 0..<up { base.deleteLastPathComponent() }
                let binary = base.appendingPathComponent("busylamp")
                if fileManager.isExecutableFile(atPath: binary.path) { return binary }
            }
        }
        let fallback = repositoryRoot.appendingPathComponent(".build/debug/busylamp")
        if fileManager.isExecutableFile(atPath: fallback.path) { return fallback }
        throw EndToEndFailure(
            "the busylamp binary was not found beside the test bundle (\(candidates.map(\.path))) nor at "
                + "\(fallback.path); build it (swift build) or run scripts/test, or set BUSYLAMP_BINARY"
        )
    }

    /// The `sipp` executable on PATH. Its absence is a failure, not a skip.
    static func sipp() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("sipp")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw EndToEndFailure(
            "sipp is not installed (Debian package sip-tester); run scripts/test, which installs it, "
                + "or apt-get install -y sip-tester"
        )
    }

    /// A fresh temporary directory, removed by the caller.
    static func makeTemporaryDirectory(_ label: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("busylamp-e2e-\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// A harness failure with a message that says what to do about it.
struct EndToEndFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
func eventually(
    within timeout: Duration,
    _ condition: () throws -> Bool
) async throws -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while true {
        if try condition() { return true }
        if clock.now >= deadline { return false }
        try await Task.sleep(for: .milliseconds(20))
    }
}
