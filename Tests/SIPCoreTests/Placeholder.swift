import SIPCore
import Testing

@Test(.timeLimit(.minutes(1))) func parsesARegister() throws {
    let text =
        "REGISTER sip:sip.busylamp.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK1;rport\r\nf: \"Alice\" <sip:6495550201@sip.busylamp.test>;tag=abc\r\nTo: <sip:6495550201@sip.busylamp.test>\r\ni: c1@x\r\nCSeq: 1 REGISTER\r\nContact: <sip:201@10.0.0.1:5062>;expires=300\r\nl: 0\r\n\r\n"
    let message = try SIPParser().parse(Array(text.utf8))
    guard case .request(let request) = message else {
        Issue.record("not a request")
        return
    }
    #expect(request.method == .register)
    #expect(request.from?.displayName == "Alice")
    #expect(request.from?.tag == "abc")
    #expect(request.topVia?.branch == "z9hG4bK1")
    #expect(request.topVia?.hasRport == true)
    #expect(request.callID == "c1@x")
    let reparsed = try SIPParser().parse(request.serializedBytes)
    #expect(reparsed == message)
}
