import Foundation
import SIPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A plain, non-blocking socket on 127.0.0.1 that a test uses to talk to the server byte by byte:
/// what a misbehaving peer would send, without any SIP stack of ours in the way.
///
/// Waiting never blocks a thread: it polls and sleeps (`Task.sleep`), so other tests keep running.
final class LoopbackSocket {
    enum Received {
        case message(SIPMessage)
        /// Bytes that did not parse as a SIP message.
        case unparsable([UInt8], SIPParseError?)
        /// The server closed the connection (TCP).
        case closed
        case timedOut
    }

    let transport: Transport
    private let descriptor: Int32
    private var framer = SIPStreamFramer()
    private(set) var localPort: Int = 0

    /// A UDP socket "connected" to the server's UDP port, or a TCP connection to its TCP port.
    init(_ transport: Transport, to port: Int) throws {
        self.transport = transport
        descriptor = try Self.connectedDescriptor(transport, to: port)
        if transport == .udp {
            // Room for the largest datagram the tests send.
            var size: Int32 = 256 * 1024
            setsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var bound = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        localPort = Int(UInt16(bigEndian: bound.sin_port))
    }

    deinit { close(descriptor) }

    /// A non-blocking socket connected to 127.0.0.1:`port` (UDP: "connected", TCP: the
    /// connection is made).
    static func connectedDescriptor(_ transport: Transport, to port: Int) throws -> Int32 {
        #if canImport(Glibc)
        let type = Int32(transport == .udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue)
        #else
        let type = transport == .udp ? SOCK_DGRAM : SOCK_STREAM
        #endif
        let descriptor = socket(AF_INET, type, 0)
        guard descriptor >= 0 else { throw EndToEndFailure("socket(): errno \(errno)") }
        var address = Self.loopback(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let error = errno
            close(descriptor)
            throw EndToEndFailure("connect to 127.0.0.1:\(port) over \(transport): errno \(error)")
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        return descriptor
    }

    /// A UDP port on 127.0.0.1 that was free a moment ago (bound to 0, read, closed), for a
    /// client whose address must be known before it starts (SIPp's `-p`).
    static func freeUDPPort() throws -> Int {
        let socket = try LoopbackSocket(unboundUDP: ())
        return socket.localPort
    }

    private init(unboundUDP: Void) throws {
        transport = .udp
        #if canImport(Glibc)
        descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        #else
        descriptor = socket(AF_INET, SOCK_DGRAM, 0)
        #endif
        guard descriptor >= 0 else { throw EndToEndFailure("socket(): errno \(errno)") }
        var address = Self.loopback(port: 0)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(descriptor)
            throw EndToEndFailure("bind 127.0.0.1:0: errno \(errno)")
        }
        var bound = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        localPort = Int(UInt16(bigEndian: bound.sin_port))
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    /// Sends all of `bytes` (one datagram on UDP), waiting for room on a stream.
    func send(_ bytes: [UInt8], within timeout: Duration = .seconds(5)) async throws {
        guard !bytes.isEmpty else { return }
        var offset = 0
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if sent > 0 {
                if transport == .udp && sent != bytes.count {
                    throw EndToEndFailure("short datagram write: \(sent) of \(bytes.count)")
                }
                offset += sent
                continue
            }
            let error = errno
            guard error == EAGAIN || error == EWOULDBLOCK || error == EINTR else {
                throw EndToEndFailure("write over \(transport): errno \(error)")
            }
            guard clock.now < deadline else { throw EndToEndFailure("write over \(transport) timed out") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    /// Half-closes the stream: the server sees end of file after what was sent.
    func shutdownWrite() { shutdown(descriptor, Int32(SHUT_WR)) }

    /// The next message from the server (keep-alive pongs skipped), end of stream, or a timeout.
    func receive(within timeout: Duration) async throws -> Received {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var chunk = [UInt8](repeating: 0, count: 70_000)
        while true {
            if transport == .tcp {
                do {
                    while let frame = try framer.next() {
                        if case .message(let bytes) = frame { return Self.parse(bytes, framing: .stream) }
                    }
                } catch {
                    return .unparsable([], nil)
                }
            }
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                let bytes = Array(chunk[0..<count])
                if transport == .udp { return Self.parse(bytes, framing: .datagram) }
                framer.append(bytes)
                continue
            }
            if count == 0, transport == .tcp { return .closed }
            if count < 0 {
                let error = errno
                if error == ECONNRESET || error == EPIPE { return .closed }
                // UDP: ICMP port unreachable shows as ECONNREFUSED on a connected socket.
                if error == ECONNREFUSED { return .closed }
                guard error == EAGAIN || error == EWOULDBLOCK || error == EINTR else {
                    throw EndToEndFailure("read over \(transport): errno \(error)")
                }
            }
            if clock.now >= deadline { return .timedOut }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The next response, skipping anything else (e.g. 100 Trying); nil on close or timeout.
    func receiveResponse(within timeout: Duration) async throws -> SIPResponse? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            switch try await receive(within: deadline - clock.now) {
            case .message(.response(let response)):
                if response.statusCode >= 200 { return response }
            case .message, .unparsable: continue
            case .closed, .timedOut: return nil
            }
        }
        return nil
    }

    private static func parse(_ bytes: [UInt8], framing: SIPFraming) -> Received {
        do {
            return .message(try SIPParser().parse(bytes, framing: framing))
        } catch {
            return .unparsable(bytes, error)
        }
    }
}
