import SIPCore
import Testing

@testable import SIPTransactions

@Suite(.timeLimit(.minutes(1))) struct DialogTests {
    /// A SUBSCRIBE from a phone through two record-routing proxies.
    func subscribe(uri: String = "sip:202@busylamp.example.com", cseq: Int = 20) throws -> SIPRequest {
        try TestMessages.request([
            "SUBSCRIBE \(uri) SIP/2.0",
            "Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bKp2",
            "Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKphone",
            "Record-Route: <sip:p2.example.com;lr>",
            "Record-Route: <sip:p1.example.com;lr;transport=tcp>",
            "To: \"Bob\" <sip:202@busylamp.example.com>",
            "From: \"Alice\" <sip:201@busylamp.example.com>;tag=alice1",
            "Call-ID: blf-1@192.0.2.4",
            "CSeq: \(cseq) SUBSCRIBE",
            "Contact: <sip:201@192.0.2.4:5060;transport=udp>",
            "Event: dialog",
        ])
    }

    @Test func uasDialogFromARequestAndOurAnswer() throws {
        let request = try subscribe()
        let ok = TestMessages.response(200, to: request, toTag: "bl7")
        let dialog = try #require(Dialog(uasRequest: request, response: ok, receivedOverTLS: false))
        #expect(dialog.state == .confirmed)
        #expect(dialog.callID == "blf-1@192.0.2.4")
        #expect(dialog.localTag == "bl7")
        #expect(dialog.remoteTag == "alice1")
        #expect(dialog.localSequenceNumber == nil)
        #expect(dialog.remoteSequenceNumber == 20)
        #expect(dialog.localURI.description == "sip:202@busylamp.example.com")
        #expect(dialog.remoteURI.description == "sip:201@busylamp.example.com")
        #expect(dialog.remoteTarget.description == "sip:201@192.0.2.4:5060;transport=udp")
        #expect(dialog.routeSet.map(\.uri.host) == ["p2.example.com", "p1.example.com"])
        #expect(dialog.routeSet[1].uri.transport == "tcp")
        #expect(!dialog.isSecure)
        // The phone's next request in the dialog names it from its side.
        #expect(dialog.id == DialogID(incoming: try subscribeInDialog(cseq: 21)))
    }

    /// The dialog keeps its addresses and remote target as text: what it gives back and what
    /// its requests carry must be what the parsed values would have given.
    @Test func keptTextsGiveBackTheParsedAddresses() throws {
        let request = try TestMessages.request([
            "SUBSCRIBE sip:202@busylamp.example.com SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKphone",
            "To: \"\" <sip:202@busylamp.example.com;user=phone>",
            "From: \"Reception \\\"Front\\\" Desk\" <sip:201@busylamp.example.com>;tag=alice1;x-line=2",
            "Call-ID: blf-2@192.0.2.4",
            "CSeq: 1 SUBSCRIBE",
            "Contact: <sip:201@192.0.2.4:5060;transport=udp;ob>",
        ])
        let ok = TestMessages.response(200, to: request, toTag: "bl8")
        var dialog = try #require(Dialog(uasRequest: request, response: ok, receivedOverTLS: false))
        let from = try #require(request.from)
        let to = try #require(request.to)
        #expect(dialog.localAddress == Dialog.withoutTag(to))
        #expect(dialog.localAddress.displayName == "")
        #expect(dialog.remoteAddress == Dialog.withoutTag(from))
        #expect(dialog.remoteAddress.displayName == #"Reception "Front" Desk"#)
        #expect(dialog.remoteAddress.parameters.unquotedValue("x-line") == "2")
        #expect(dialog.remoteTarget == Dialog.contactURI(request.headers))
        let notify = dialog.makeRequest(method: .notify)
        var expectedFrom = Dialog.withoutTag(to)
        expectedFrom.tag = "bl8"
        var expectedTo = Dialog.withoutTag(from)
        expectedTo.tag = "alice1"
        #expect(notify.from == expectedFrom)
        #expect(notify.to == expectedTo)
        #expect(notify.uri == dialog.remoteTarget)
    }

    func subscribeInDialog(cseq: Int) throws -> SIPRequest {
        try TestMessages.request([
            "SUBSCRIBE sip:202@busylamp.example.com SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKre\(cseq)",
            "Route: <sip:p1.example.com;lr>",
            "To: <sip:202@busylamp.example.com>;tag=bl7",
            "From: <sip:201@busylamp.example.com>;tag=alice1",
            "Call-ID: blf-1@192.0.2.4",
            "CSeq: \(cseq) SUBSCRIBE",
            "Contact: <sip:201@198.51.100.9:5090>",
        ])
    }

    @Test func uasRequestsFollowTheRouteSetAndCountFromOne() throws {
        let request = try subscribe()
        var dialog = try #require(
            Dialog(
                uasRequest: request,
                response: TestMessages.response(202, to: request, toTag: "bl7"),
                receivedOverTLS: false
            )
        )
        let notify = dialog.makeRequest(method: .notify)
        #expect(notify.method == .notify)
        #expect(notify.uri == dialog.remoteTarget)
        #expect(notify.headers.values(.route) == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr;transport=tcp>"])
        #expect(notify.cseq == CSeq(number: 1, method: .notify))
        #expect(notify.callID == "blf-1@192.0.2.4")
        #expect(notify.from?.tag == "bl7")
        #expect(notify.from?.displayName == "Bob")
        #expect(notify.from?.uri.description == "sip:202@busylamp.example.com")
        #expect(notify.to?.tag == "alice1")
        #expect(notify.to?.uri.description == "sip:201@busylamp.example.com")
        #expect(notify.maxForwards == 70)
        #expect(notify.topVia == nil)
        #expect(dialog.makeRequest(method: .notify).cseq?.number == 2)
        #expect(dialog.localSequenceNumber == 2)
        // It serializes to something our parser reads back (a Via is added by the sender).
        var wire = dialog.makeRequest(method: .notify)
        wire.headers.prepend(.via, "SIP/2.0/UDP busylamp.example.com;branch=\(Via.makeBranch())")
        guard case .request(let parsed) = try SIPParser().parse(wire.serializedBytes) else {
            Issue.record("the NOTIFY did not parse as a request")
            return
        }
        #expect(parsed.cseq?.number == 3)
        #expect(parsed.to?.tag == "alice1")
    }

    @Test func incomingCSeqMustNotGoBackwards() throws {
        let request = try subscribe()
        var dialog = try #require(
            Dialog(
                uasRequest: request,
                response: TestMessages.response(200, to: request, toTag: "bl7"),
                receivedOverTLS: false
            )
        )
        #expect(dialog.receivedRequest(try subscribeInDialog(cseq: 19)) == .rejectOutOfOrder)
        #expect(dialog.remoteSequenceNumber == 20)
        #expect(dialog.receivedRequest(try subscribeInDialog(cseq: 20)) == .accept)
        #expect(dialog.receivedRequest(try subscribeInDialog(cseq: 25)) == .accept)
        #expect(dialog.remoteSequenceNumber == 25)
        #expect(dialog.receivedRequest(try subscribeInDialog(cseq: 24)) == .rejectOutOfOrder)
    }

    @Test func targetRefreshReplacesTheRemoteTarget() throws {
        let request = try subscribe()
        var dialog = try #require(
            Dialog(
                uasRequest: request,
                response: TestMessages.response(200, to: request, toTag: "bl7"),
                receivedOverTLS: false
            )
        )
        dialog.refreshRemoteTarget(from: try subscribeInDialog(cseq: 21))
        #expect(dialog.remoteTarget.description == "sip:201@198.51.100.9:5090")
    }

    @Test func secureOnlyForSIPSOverTLS() throws {
        let request = try subscribe(uri: "sips:202@busylamp.example.com")
        let ok = TestMessages.response(200, to: request, toTag: "bl7")
        #expect(Dialog(uasRequest: request, response: ok, receivedOverTLS: true)?.isSecure == true)
        #expect(Dialog(uasRequest: request, response: ok, receivedOverTLS: false)?.isSecure == false)
        let plain = try subscribe()
        #expect(Dialog(uasRequest: plain, response: ok, receivedOverTLS: true)?.isSecure == false)
    }

    @Test func responsesThatCannotCreateADialog() throws {
        let request = try subscribe()
        #expect(
            Dialog(uasRequest: request, response: TestMessages.response(100, to: request), receivedOverTLS: false)
                == nil
        )
        #expect(
            Dialog(uasRequest: request, response: TestMessages.response(200, to: request), receivedOverTLS: false)
                == nil
        )
        #expect(
            Dialog(
                uasRequest: request,
                response: TestMessages.response(404, to: request, toTag: "t"),
                receivedOverTLS: false
            )
                == nil
        )
        var noContact = request
        noContact.headers.remove(.contact)
        #expect(
            Dialog(
                uasRequest: noContact,
                response: TestMessages.response(200, to: request, toTag: "t"),
                receivedOverTLS: false
            )
                == nil
        )
    }

    /// BusyLamp calls a phone: INVITE out, 180 then 200 back through one record-routing proxy.
    @Test func uacDialogReversesTheRouteSetAndConfirmsOn2xx() throws {
        let invite = try TestMessages.invite()
        let recordRoutes: [(SIPHeaderName, String)] = [
            (.recordRoute, "<sip:near.example.com;lr>, <sip:far.example.com;lr>"),
            (.contact, "<sip:bob@192.0.2.20>"),
        ]
        let ringing = TestMessages.response(180, to: invite, toTag: "bob1", extraHeaders: recordRoutes)
        var dialog = try #require(Dialog(uacRequest: invite, response: ringing, sentOverTLS: false))
        #expect(dialog.state == .early)
        #expect(dialog.localTag == "1928301774")
        #expect(dialog.remoteTag == "bob1")
        #expect(dialog.localSequenceNumber == 314_159)
        #expect(dialog.remoteSequenceNumber == nil)
        #expect(dialog.routeSet.map(\.uri.host) == ["far.example.com", "near.example.com"])
        #expect(dialog.id == DialogID(incoming: ringing))

        let ok = TestMessages.response(
            200,
            to: invite,
            toTag: "bob1",
            extraHeaders: [(.recordRoute, "<sip:near.example.com;lr>"), (.contact, "<sip:bob@192.0.2.21>")]
        )
        dialog.receivedResponse(ok)
        #expect(dialog.state == .confirmed)
        #expect(dialog.routeSet.map(\.uri.host) == ["near.example.com"])
        #expect(dialog.remoteTarget.description == "sip:bob@192.0.2.21")

        // The ACK for the 2xx repeats the INVITE's number; the BYE takes the next one.
        let ack = dialog.makeRequest(method: .ack)
        #expect(ack.cseq == CSeq(number: 314_159, method: .ack))
        #expect(ack.uri.description == "sip:bob@192.0.2.21")
        let bye = dialog.makeRequest(method: .bye)
        #expect(bye.cseq == CSeq(number: 314_160, method: .bye))
        #expect(bye.from?.tag == "1928301774")
        #expect(bye.to?.tag == "bob1")
        #expect(bye.headers.values(.route) == ["<sip:near.example.com;lr>"])
        // At the UAC the remote sequence number starts empty: the first request sets it.
        var incomingBye = bye
        incomingBye.headers.set(.cseq, "7 BYE")
        #expect(dialog.receivedRequest(incomingBye) == .accept)
        #expect(dialog.remoteSequenceNumber == 7)
    }

    @Test func strictRouterGetsTheRequestURIAndTheTargetGoesLast() throws {
        let invite = try TestMessages.invite()
        let ok = TestMessages.response(
            200,
            to: invite,
            toTag: "bob1",
            extraHeaders: [
                (.recordRoute, "<sip:second.example.com;lr>"),
                (.recordRoute, "<sip:strict.example.com;method=INVITE?X-Header=1>"),
                (.contact, "<sip:bob@192.0.2.21>"),
            ]
        )
        var dialog = try #require(Dialog(uacRequest: invite, response: ok, sentOverTLS: false))
        let bye = dialog.makeRequest(method: .bye)
        #expect(bye.uri.description == "sip:strict.example.com")
        #expect(bye.headers.values(.route) == ["<sip:second.example.com;lr>", "<sip:bob@192.0.2.21>"])
    }
}
