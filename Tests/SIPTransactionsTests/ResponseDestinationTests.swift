import SIPCore
import Testing

@testable import SIPTransactions

@Suite(.timeLimit(.minutes(1))) struct ResponseDestinationTests {
    func request(via: String) throws -> SIPRequest {
        try TestMessages.request([
            "REGISTER sip:busylamp.example.com SIP/2.0",
            "Via: \(via)",
            "To: <sip:201@busylamp.example.com>",
            "From: <sip:201@busylamp.example.com>;tag=p1",
            "Call-ID: reg-1",
            "CSeq: 1 REGISTER",
        ])
    }

    @Test func rportBehindNATIsAnsweredAtTheSourceAddressAndPort() throws {
        let peer = SIPPeer(transport: .udp, host: "203.0.113.7", port: 61_234)
        var register = try request(via: "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnat;rport")
        register.stampReceived(from: peer)
        let via = try #require(register.topVia)
        #expect(via.received == "203.0.113.7")
        #expect(via.rport == 61_234)
        #expect(via.branch == "z9hG4bKnat")
        #expect(ResponseDestination(respondingTo: register, from: peer) == .address(peer))
    }

    @Test func rportFillsReceivedEvenWhenTheSentByIsTheSource() throws {
        let peer = SIPPeer(transport: .udp, host: "192.0.2.4", port: 5062)
        var register = try request(via: "SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKsame;rport")
        register.stampReceived(from: peer)
        #expect(register.topVia?.received == "192.0.2.4")
        #expect(register.topVia?.rport == 5062)
    }

    @Test("a forged received and rport are overwritten with the packet's source")
    func forgedReceivedAndRportAreOverwritten() throws {
        let peer = SIPPeer(transport: .udp, host: "192.0.2.4", port: 5062)
        var options = try request(via: "SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKforged;received=10.1.2.3;rport=9")
        options.stampReceived(from: peer)
        #expect(options.topVia?.received == "192.0.2.4")
        #expect(options.topVia?.rport == 5062)
        #expect(ResponseDestination(respondingTo: options, from: peer) == .address(peer))

        var withoutRport = try request(via: "SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKforged2;received=10.1.2.3")
        withoutRport.stampReceived(from: peer)
        #expect(withoutRport.topVia?.received == "192.0.2.4")
        #expect(ResponseDestination(respondingTo: withoutRport, from: peer) == .address(peer))
    }

    @Test func withoutRportTheSentByPortIsUsed() throws {
        // Behind NAT, no rport: received is added, and the response goes to the sent-by port.
        let peer = SIPPeer(transport: .udp, host: "203.0.113.7", port: 61_234)
        var register = try request(via: "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKold")
        register.stampReceived(from: peer)
        #expect(register.topVia?.received == "203.0.113.7")
        #expect(register.topVia?.hasRport == false)
        #expect(
            ResponseDestination(respondingTo: register, from: peer)
                == .address(SIPPeer(transport: .udp, host: "203.0.113.7", port: 5070))
        )
    }

    @Test func sentByEqualToTheSourceIsLeftAloneAndPortDefaultsTo5060() throws {
        let peer = SIPPeer(transport: .udp, host: "192.0.2.4", port: 5060)
        var register = try request(via: "SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKplain")
        let before = register
        register.stampReceived(from: peer)
        #expect(register == before)
        #expect(
            ResponseDestination(respondingTo: register, from: peer)
                == .address(SIPPeer(transport: .udp, host: "192.0.2.4", port: 5060))
        )
    }

    @Test func aDomainNameSentByAlwaysGetsReceived() throws {
        let peer = SIPPeer(transport: .udp, host: "192.0.2.4", port: 5060)
        var register = try request(via: "SIP/2.0/UDP phone.example.com;branch=z9hG4bKdns")
        register.stampReceived(from: peer)
        #expect(register.topVia?.received == "192.0.2.4")
        #expect(register.topVia?.host == "phone.example.com")
    }

    @Test func onlyTheTopViaElementIsStamped() throws {
        let peer = SIPPeer(transport: .udp, host: "198.51.100.1", port: 5080)
        var register = try TestMessages.request([
            "REGISTER sip:busylamp.example.com SIP/2.0",
            "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKtop;rport, SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKlow;rport",
            "Via: SIP/2.0/UDP 10.0.0.6;branch=z9hG4bKlowest",
            "To: <sip:201@busylamp.example.com>",
            "From: <sip:201@busylamp.example.com>;tag=p1",
            "Call-ID: reg-2",
            "CSeq: 1 REGISTER",
        ])
        register.stampReceived(from: peer)
        let vias = register.vias
        #expect(vias.count == 3)
        #expect(vias[0].received == "198.51.100.1")
        #expect(vias[0].rport == 5080)
        #expect(vias[1].received == nil)
        #expect(vias[1].hasRport && vias[1].rport == nil)
        #expect(vias[2].branch == "z9hG4bKlowest")
    }

    @Test func maddrWinsOnUDP() throws {
        let peer = SIPPeer(transport: .udp, host: "192.0.2.4", port: 5060)
        let register = try request(via: "SIP/2.0/UDP 192.0.2.4:5066;branch=z9hG4bKm;maddr=239.255.255.1;ttl=1")
        #expect(
            ResponseDestination(respondingTo: register, from: peer)
                == .address(SIPPeer(transport: .udp, host: "239.255.255.1", port: 5066))
        )
    }

    @Test(arguments: [SIPPeer.Transport.tcp, .tls])
    func streamTransportsAnswerOnTheSameConnection(transport: SIPPeer.Transport) throws {
        let peer = SIPPeer(transport: transport, host: "203.0.113.7", port: 50_111, connectionID: 42)
        var register = try request(
            via: "SIP/2.0/\(transport.viaToken) 10.0.0.5:5070;branch=z9hG4bKtcp;rport;maddr=239.255.255.1"
        )
        register.stampReceived(from: peer)
        #expect(
            ResponseDestination(respondingTo: register, from: peer)
                == .sameConnection(
                    connectionID: 42,
                    fallback: SIPPeer(transport: transport, host: "203.0.113.7", port: 5070)
                )
        )
    }

    @Test func streamWithoutAConnectionFallsBackToReceivedAndSentByPort() throws {
        let peer = SIPPeer(transport: .tls, host: "203.0.113.7", port: 50_111)
        let register = try request(via: "SIP/2.0/TLS phone.example.com;branch=z9hG4bKtls")
        #expect(
            ResponseDestination(respondingTo: register, from: peer)
                == .address(SIPPeer(transport: .tls, host: "203.0.113.7", port: ResponseDestination.defaultSIPSPort))
        )
    }

    @Test func peersDescribeThemselves() {
        #expect(SIPPeer(transport: .udp, host: "::1", port: 5060).description == "udp:[::1]:5060")
        #expect(
            SIPPeer(transport: .tcp, host: "192.0.2.1", port: 5060, connectionID: 3).description
                == "tcp:192.0.2.1:5060#3"
        )
        #expect(SIPPeer.Transport.udp.reliability == .unreliable)
        #expect(SIPPeer.Transport.tls.reliability == .reliable)
    }
}
