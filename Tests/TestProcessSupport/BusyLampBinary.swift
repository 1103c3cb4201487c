import Foundation

/// Where the `busylamp` binary under test is, for every suite that starts it (end to end, the
/// command line). A missing binary fails the test with what to do about it: never a skip.
public enum BusyLampBinary {
    /// The repository root, from this file's place in it (`Tests/TestProcessSupport/`).
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `BUSYLAMP_BINARY` when set, else the `busylamp` built beside this test bundle (same
    /// scratch path and configuration), else `.build/debug/busylamp` in the repository.
    public static func locate() throws -> URL {
        let fileManager = FileManager.default
        if let path = ProcessInfo.processInfo.environment["BUSYLAMP_BINARY"], !path.isEmpty {
            guard fileManager.isExecutableFile(atPath: path) else {
                throw TestProcessFailure("BUSYLAMP_BINARY=\(path) is not an executable file; run scripts/test")
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
        throw TestProcessFailure(
            "the busylamp binary was not found beside the test bundle (\(candidates.map(\.path))) nor at "
                + "\(fallback.path); build it (swift build) or run scripts/test, or set BUSYLAMP_BINARY"
        )
    }
}

/// A harness failure with a message that says what to do about it.
public struct TestProcessFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
public func eventually(
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

/// The executable `name` on `PATH`, or a failure that names the Debian package to install
/// (`scripts/test` installs them all): a missing tool fails a test, it never skips one.
public func executableOnPath(_ name: String, debianPackage: String) throws -> URL {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    throw TestProcessFailure(
        "\(name) is not installed (Debian package \(debianPackage)); run scripts/test, which installs it, "
            + "or apt-get install -y --no-install-recommends \(debianPackage)"
    )
}
