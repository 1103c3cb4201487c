import CLibFuzzerDriver

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The program: hands the command line to libFuzzer, as `SIPParserFuzzer` does.
@main
enum SIPRequestPathFuzzer {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            fuzzTestOneInput(data, size)
        }
        exit(status)
    }
}

/// The libFuzzer entry point: one input is a conversation, several messages from up to four
/// phones to one fresh server (``RequestPath``), separated by lines of `%%`.
///
/// Each message starts with three bytes that say how it arrives (written as digits in the
/// seeds, any byte works):
/// 1. the source: the byte modulo 4 picks 127.0.0.1, .2 or .3 over UDP, or 127.0.0.4 over TCP
///    (`1`, `2`, `3`, `0`);
/// 2. how far the clock moves before it arrives: (byte − `0`) modulo 64 seconds, so that timers
///    fire, nonces go stale, lockouts end and subscriptions expire;
/// 3. the low bit set (`1`): before the request is handled, its credentials are replaced by
///    valid ones for the user of its From (or To) URI, answering the server's latest
///    challenge, so that the fuzzer gets past digest to admission, routing and the notifier
///    without having to guess an MD5; both low bits set (`3`): the same made with a wrong
///    password, as a guesser sends (lockouts).
/// The rest is the message's bytes, as a datagram (UDP) or a stream slice (TCP).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    var path = RequestPath()
    for slice in segments(of: bytes).prefix(maximumMessagesPerInput) {
        let segment = Array(slice)
        guard segment.count >= 3 else { continue }
        let arrival = RequestPath.Arrival(
            source: Int(segment[0] % 4),
            advanceSeconds: Int((segment[1] &- UInt8(ascii: "0")) % 64),
            signing: segment[2] & 1 == 0 ? .asSent : segment[2] & 2 == 0 ? .rightPassword : .wrongPassword
        )
        path.receive(Array(segment[3...]), arrival: arrival)
    }
    path.finish()
    return 0
}

/// An input of at most a few KiB holds a few dozen messages; more would only slow the fuzzer.
private let maximumMessagesPerInput = 64

/// `bytes` cut at every line that is exactly `%%` (the line break before it stays with the
/// message before, the one after it goes).
private func segments(of bytes: [UInt8]) -> [ArraySlice<UInt8>] {
    let separator = Array("\n%%\n".utf8)
    var result: [ArraySlice<UInt8>] = []
    var start = 0
    var index = 0
    while index + separator.count <= bytes.count {
        if bytes[index..<index + separator.count].elementsEqual(separator) {
            result.append(bytes[start...index])
            index += separator.count
            start = index
        } else {
            index += 1
        }
    }
    result.append(bytes[start...])
    return result
}
