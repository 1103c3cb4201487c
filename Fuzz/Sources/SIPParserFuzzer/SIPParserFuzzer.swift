import CLibFuzzerDriver
import SIPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The program: hands the command line to libFuzzer (`-max_total_time=`, corpus folders, `-dict=` ...).
///
/// SwiftPM renames an executable's `main` and points the linker's `main` at it, so libFuzzer's
/// own `main` is never linked in; this one starts the same driver.
@main
enum SIPParserFuzzer {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            fuzzTestOneInput(data, size)
        }
        exit(status)
    }
}

/// The libFuzzer entry point: one input is one datagram, and also one slice of a stream.
///
/// What it promises to check, beyond "no crash, no leak, no out-of-bounds access":
/// - whatever parses re-parses after serialization (a message we accept, we can also send);
/// - the stream framer, fed the input whole or split in two, cuts messages that the parser
///   either accepts (then they round-trip too) or rejects with a `SIPParseError`.
/// A violation is a real bug and traps, so libFuzzer records the input as a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let parser = SIPParser()

    checkRoundTrip(bytes, framing: .datagram, parser: parser)
    checkRoundTrip(bytes, framing: .stream, parser: parser)

    // The whole input at once through the framer.
    var framer = SIPStreamFramer()
    framer.append(bytes)
    drain(&framer, parser: parser)

    // The same input in two pieces: the framer must cope with a message split anywhere.
    if bytes.count > 1 {
        let cut = Int(bytes[0]) % bytes.count
        var split = SIPStreamFramer()
        split.append(bytes[..<cut])
        drain(&split, parser: parser)
        split.append(bytes[cut...])
        drain(&split, parser: parser)
    }
    return 0
}

/// Parses `bytes`; when that succeeds, serializes the message and requires the result to parse
/// again with the same framing, and to serialize to the same bytes (serialization is a fixpoint).
private func checkRoundTrip(_ bytes: [UInt8], framing: SIPFraming, parser: SIPParser) {
    guard let message = try? parser.parse(bytes, framing: framing) else { return }
    let wire = message.serializedBytes
    let again: SIPMessage
    do {
        again = try parser.parse(wire, framing: framing)
    } catch {
        fatalError(
            "re-parse failed (\(framing)): \(error)\n--- input ---\n\(printable(bytes))\n--- serialized ---\n\(printable(wire))"
        )
    }
    let wireAgain = again.serializedBytes
    if wireAgain != wire {
        fatalError(
            "serialization is not stable (\(framing))\n--- first ---\n\(printable(wire))\n--- second ---\n\(printable(wireAgain))"
        )
    }
}

/// Pulls every frame out of `framer` until it needs more bytes or reports a framing error.
private func drain(_ framer: inout SIPStreamFramer, parser: SIPParser) {
    var frames = 0
    while frames < maximumFramesPerInput {
        let frame: SIPStreamFramer.Frame?
        do {
            frame = try framer.next()
        } catch {
            return
        }
        guard let frame else { return }
        frames += 1
        if case .message(let message) = frame {
            checkRoundTrip(message, framing: .stream, parser: parser)
        }
    }
    fatalError("the framer produced more than \(maximumFramesPerInput) frames from one input")
}

/// An input of at most a few KiB cannot hold more frames than this (each frame consumes bytes);
/// more means the framer is not making progress.
private let maximumFramesPerInput = 100_000

private func printable(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}
