import Foundation
// Every end-to-end file starts processes with it.
@_exported import TestProcessSupport
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

    /// The `busylamp` binary the tests start (``BusyLampBinary``).
    static func busylampBinary() throws -> URL { try BusyLampBinary.locate() }

    /// The `sipp` executable on PATH. Its absence is a failure, not a skip.
    static func sipp() throws -> URL { try executableOnPath("sipp", debianPackage: "sip-tester") }

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
