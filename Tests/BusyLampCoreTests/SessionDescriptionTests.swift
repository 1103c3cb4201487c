import Testing

@testable import BusyLampCore

/// The little SDP that pickup needs (RFC 4566 origin and media lines) and the placeholder
/// answer of RFC 3264 §6.
@Suite("Session description", .timeLimit(.minutes(1)))
struct SessionDescriptionTests {
    static let offer = Array(
        ("v=0\r\n"
            + "o=joe 3003 7 IN IP4 198.51.100.4\r\n"
            + "s=Talk\r\n"
            + "c=IN IP4 198.51.100.4\r\n"
            + "t=0 0\r\n"
            + "m=audio 40000 RTP/AVP 8 0 101\r\n"
            + "c=IN IP4 198.51.100.40\r\n"
            + "a=rtpmap:8 PCMA/8000\r\n"
            + "a=rtpmap:0 PCMU/8000\r\n"
            + "a=rtpmap:101 telephone-event/8000\r\n"
            + "a=fmtp:101 0-15\r\n"
            + "a=ptime:20\r\n"
            + "a=sendrecv\r\n"
            + "m=video 40002 RTP/AVP 96 97\r\n"
            + "a=rtpmap:96 H264/90000\r\n"
            + "a=fmtp:96 profile-level-id=42e01f\r\n"
            + "a=rtpmap:97 VP8/90000\r\n").utf8
    )

    @Test("parses lines, origin and re-emits CRLF line ends")
    func parse() throws {
        let sdp = try #require(SessionDescription(Self.offer))
        #expect(sdp.lines.count == 17)
        #expect(sdp.lines.first == "v=0")
        #expect(sdp.bytes == Self.offer)
        let origin = try #require(sdp.origin)
        #expect(origin.username == "joe")
        #expect(origin.sessionID == "3003")
        #expect(origin.version == 7)
        #expect(origin.address == "IN IP4 198.51.100.4")
    }

    @Test("bare LF line ends are read and written back as CRLF (RFC 4566 §5)")
    func bareLineFeeds() throws {
        let sdp = try #require(SessionDescription(Array("v=0\no=- 1 2 IN IP4 192.0.2.1\ns=-\n".utf8)))
        #expect(sdp.lines == ["v=0", "o=- 1 2 IN IP4 192.0.2.1", "s=-"])
        #expect(sdp.bytes == Array("v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\n".utf8))
    }

    @Test(
        "not SDP: empty, not starting with v=, not UTF-8",
        arguments: [
            [UInt8](),
            Array("o=- 1 2 IN IP4 192.0.2.1\r\nv=0\r\n".utf8),
            Array("<xml/>".utf8),
            [0x76, 0x3D, 0x30, 0x0D, 0x0A, 0xFF, 0xFE],
        ]
    )
    func notSDP(_ body: [UInt8]) {
        #expect(SessionDescription(body) == nil)
    }

    @Test(
        "malformed origins are no origin",
        arguments: ["o=joe 3003 seven IN IP4 198.51.100.4", "o=joe 3003 7", "o=", "o=joe 3003 -1 IN IP4 h"]
    )
    func malformedOrigin(_ line: String) throws {
        let sdp = try #require(SessionDescription(Array("v=0\r\n\(line)\r\ns=-\r\n".utf8)))
        #expect(sdp.origin == nil)
    }

    @Test("a version too large for 64 bits is no origin; the largest one is")
    func largeVersion() throws {
        let largest = try #require(SessionDescription(Array("v=0\r\no=a 1 18446744073709551615 IN IP4 h\r\n".utf8)))
        #expect(largest.origin?.version == UInt64.max)
        let tooLarge = try #require(SessionDescription(Array("v=0\r\no=a 1 18446744073709551616 IN IP4 h\r\n".utf8)))
        #expect(tooLarge.origin == nil)
    }

    @Test("replacingOrigin changes the o= line and nothing else")
    func replacingOrigin() throws {
        let sdp = try #require(SessionDescription(Self.offer))
        var origin = try #require(sdp.origin)
        origin.version = 8
        let replaced = sdp.replacingOrigin(with: origin)
        #expect(replaced.origin?.version == 8)
        #expect(replaced.lines[1] == "o=joe 3003 8 IN IP4 198.51.100.4")
        #expect(replaced.lines.count == sdp.lines.count)
        for index in sdp.lines.indices where index != 1 { #expect(replaced.lines[index] == sdp.lines[index]) }
    }

    @Test("replacingOrigin on a description with no o= leaves it as it was")
    func replacingMissingOrigin() throws {
        let sdp = try #require(SessionDescription(Array("v=0\r\ns=-\r\n".utf8)))
        let other = try #require(SessionDescription(Self.offer)?.origin)
        #expect(sdp.replacingOrigin(with: other) == sdp)
    }

    @Test("inactiveAnswer: one m-line per offered one, in order, each inactive, first format, non-zero port")
    func inactiveAnswer() throws {
        let offer = try #require(SessionDescription(Self.offer))
        let callerOrigin = try #require(
            SessionDescription(Array("v=0\r\no=alice 2890844526 2890844526 IN IP4 198.51.100.1\r\n".utf8))?.origin
        )
        let answer = offer.inactiveAnswer(origin: callerOrigin)
        #expect(
            answer.lines == [
                "v=0",
                "o=alice 2890844526 2890844526 IN IP4 198.51.100.1",
                "s=-",
                "c=IN IP4 0.0.0.0",
                "t=0 0",
                "m=audio 9 RTP/AVP 8",
                "a=inactive",
                "a=rtpmap:8 PCMA/8000",
                "m=video 9 RTP/AVP 96",
                "a=inactive",
                "a=rtpmap:96 H264/90000",
                "a=fmtp:96 profile-level-id=42e01f",
            ]
        )
        #expect(answer.origin == callerOrigin)
        // RFC 3264 §6: as many media lines as the offer, same media and transport, in order.
        let offered = offer.lines.filter { $0.hasPrefix("m=") }.map { $0.split(separator: " ") }
        let answered = answer.lines.filter { $0.hasPrefix("m=") }.map { $0.split(separator: " ") }
        #expect(offered.count == answered.count)
        for (o, a) in zip(offered, answered) {
            #expect(o[0] == a[0])
            #expect(o[2] == a[2])
            #expect(o.dropFirst(3).contains(a[3]), "a format the offer listed")
            #expect(a[1] != "0", "a zero port would reject the stream")
        }
        // Nothing in it points at a real address.
        #expect(answer.lines.filter { $0.hasPrefix("c=") } == ["c=IN IP4 0.0.0.0"])
        #expect(SessionDescription(answer.bytes) == answer)
    }

    @Test("inactiveAnswer answers a non-RTP stream (T.38) the same way")
    func inactiveAnswerOddLines() throws {
        let offer = try #require(
            SessionDescription(
                Array("v=0\r\no=x 1 1 IN IP4 h\r\ns=-\r\nm=image 4002 udptl t38\r\na=T38FaxVersion:0\r\n".utf8)
            )
        )
        let answer = offer.inactiveAnswer(origin: offer.origin!)
        #expect(answer.lines.filter { $0.hasPrefix("m=") } == ["m=image 9 udptl t38"])
        #expect(answer.lines.last == "a=inactive")
    }
}
