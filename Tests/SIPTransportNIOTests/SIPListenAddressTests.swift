import NIOCore
import Testing

@testable import SIPTransportNIO

@Suite("SIPListenAddress", .timeLimit(.minutes(1)))
struct SIPListenAddressTests {
    @Test(arguments: [
        ("udp:127.0.0.1:5060", SIPListenAddress(transport: .udp, host: "127.0.0.1", port: 5060)),
        ("tcp:0.0.0.0:0", SIPListenAddress(transport: .tcp, host: "0.0.0.0", port: 0)),
        ("tls:sip.busylamp.test:5061", SIPListenAddress(transport: .tls, host: "sip.busylamp.test", port: 5061)),
        ("TCP:localhost:65535", SIPListenAddress(transport: .tcp, host: "localhost", port: 65535)),
        ("udp:[::1]:5060", SIPListenAddress(transport: .udp, host: "::1", port: 5060)),
        ("tcp:[2001:db8::10]:5070", SIPListenAddress(transport: .tcp, host: "2001:db8::10", port: 5070)),
        ("udp:[::]:5060", SIPListenAddress(transport: .udp, host: "::", port: 5060)),
    ])
    func parsesTransportHostAndPort(text: String, expected: SIPListenAddress) throws {
        let address = try SIPListenAddress(parsing: text)
        #expect(address == expected)
        // What it prints parses back to the same address (IPv6 in brackets again).
        #expect(try SIPListenAddress(parsing: address.description) == address)
    }

    @Test func descriptionBracketsIPv6() {
        #expect(SIPListenAddress(transport: .udp, host: "::1", port: 5060).description == "udp:[::1]:5060")
        #expect(SIPListenAddress(transport: .tcp, host: "10.0.0.1", port: 5060).description == "tcp:10.0.0.1:5060")
    }

    @Test(arguments: [
        "",
        "udp",
        "udp:",
        "127.0.0.1:5060",
        "sctp:127.0.0.1:5060",
        "udp:127.0.0.1",
        "udp::5060",
        "udp:127.0.0.1:",
        "udp:127.0.0.1:65536",
        "udp:127.0.0.1:-1",
        "udp:127.0.0.1:+5060",
        "udp:127.0.0.1:50 60",
        "udp:127.0.0.1:sip",
        "udp:::1:5060",
        "udp:[::1]",
        "udp:[::1:5060",
        "udp:::1]:5060",
        "udp:[]:5060",
        "udp:[127.0.0.1]:5060",
    ])
    func refusesMalformedAddresses(text: String) {
        #expect(throws: SIPListenAddress.ParseError.self) { try SIPListenAddress(parsing: text) }
    }

    @Test func defaultsAreUDPAndTCPOnPort5060() {
        #expect(SIPListenAddress.defaults.map(\.transport) == [.udp, .tcp])
        #expect(SIPListenAddress.defaults.allSatisfy { $0.port == 5060 })
    }

    @Test func onlyStreamTransportsAreReliable() {
        #expect(SIPTransportKind.allCases.filter(\.isReliable) == [.tcp, .tls])
        #expect(SIPTransportKind.allCases.map(\.viaToken) == ["UDP", "TCP", "TLS"])
    }
}

@Suite(.timeLimit(.minutes(1))) struct SourceIPAddressTests {
    /// Per-source limits count an address, not an address and port: the phones of one office
    /// share the address, each on its own port.
    @Test func portsDoNotCountAndAddressesDo() throws {
        let one = try SourceIPAddress(SocketAddress(ipAddress: "127.0.0.1", port: 5060))
        #expect(one == (try SourceIPAddress(SocketAddress(ipAddress: "127.0.0.1", port: 40_000))))
        #expect(one != (try SourceIPAddress(SocketAddress(ipAddress: "127.0.0.2", port: 5060))))
        #expect(one != (try SourceIPAddress(SocketAddress(ipAddress: "1.0.0.127", port: 5060))))
        let v6 = try SourceIPAddress(SocketAddress(ipAddress: "2001:db8::1", port: 5060))
        #expect(v6 == (try SourceIPAddress(SocketAddress(ipAddress: "2001:db8::1", port: 1))))
        #expect(v6 != (try SourceIPAddress(SocketAddress(ipAddress: "2001:db8::2", port: 5060))))
        #expect(v6 != one)
        // An IPv4 address and its IPv4-mapped IPv6 form are one source.
        #expect(one == (try SourceIPAddress(SocketAddress(ipAddress: "::ffff:127.0.0.1", port: 5060))))
    }
}
