import Foundation
import SIPCore
import SIPTransactions

/// Pickup: a ringing call is taken by another phone of the account and group (PRODUCT.md
/// "Pressing the key"), whether it dialled the pickup code or sent `Replaces` (RFC 3891).
///
/// The caller's INVITE is still waiting for its final response, with its offer (A) unanswered.
/// The picker's INVITE usually carries an offer of its own (P). Two offers and no answer:
/// neither may simply be handed to the other as an answer (RFC 3264 §6: an answer has the
/// offer's media lines, in order, with formats taken from the offer). BusyLamp, which never
/// touches media, is the controller of RFC 3725 and gets each phone to answer the other's offer:
///
/// ```
/// caller (offer A pending)          BusyLamp                          picker           ringing phones
///                                      │◄────── INVITE (offer P) ──────────┤
///                                      ├──────────────────────── CANCEL ─────────────────────────►
///                                      ├── 200 (placeholder answer to P:  ►│  every m-line kept,
///                                      │   a=inactive, c=0.0.0.0, o= of A) │  nothing sent yet
///                                      │◄───────────── ACK ────────────────┤
///                                      ├── re-INVITE (offer A) ───────────►│  RFC 3725 §4.1's
///                                      │◄──────────── 200 (answer P') ─────┤  "offer in re-INVITE"
///                                      ├── ACK ───────────────────────────►│
///  ◄────────── 200 (answer P') ────────┤
///  ─────────── ACK ───────────────────►│     caller holds P', the picker holds A: media flows
/// ```
///
/// The placeholder borrows the caller's `o=` username and session id one version lower, so that
/// offer A in the re-INVITE is the same session at the next version (RFC 3264 §8: a new offer
/// keeps the origin and raises the version by one). When the caller's version is 0 the
/// re-INVITE's copy is raised to 1 instead.
///
/// The other two shapes need no re-INVITE:
/// - the picker sent no offer: its 200 carries offer A, and the answer comes back in its ACK
///   (RFC 3261 §13.2.1's offer in the 2xx), then goes to the caller in the caller's 200;
/// - the caller sent no offer (a late-offer trunk): the caller's 200 carries offer P, and the
///   caller's ACK brings the answer that the picker's 200 then carries.
/// With no offer on either side there is nothing to join: the picker gets 488 and the call
/// rings on.
extension CallStateMachine {
    enum PickupExchange: Sendable, Hashable {
        /// The picker has the placeholder answer; its ACK lets the re-INVITE go.
        case awaitingPickerACKBeforeReinvite
        /// The re-INVITE with offer A is out, sent with this branch and CSeq.
        case awaitingPickerAnswer(branch: String, sequence: UInt32)
        /// The picker's 200 carried offer A; its ACK carries the answer.
        case awaitingAnswerInPickerACK
        /// The caller's 200 carried offer P; its ACK carries the answer.
        case awaitingAnswerInCallerACK
    }

    /// Takes the ringing call to `invite`'s sender. The driver has checked that the picker may
    /// (same account and group) and that the call is ringing.
    public mutating func pickUp(by invite: IncomingInvite) -> [CallAction] {
        guard phase == .ringing else {
            return [
                .respond(
                    Self.reply(to: invite.request, 480, "Nothing Ringing", toTag: identifiers.make()),
                    to: invite.transaction
                )
            ]
        }
        let callerOffer = Self.sessionDescription(of: caller.invite.request)
        let pickerOffer = Self.sessionDescription(of: invite.request)
        if callerOffer == nil, pickerOffer == nil {
            return [
                .respond(
                    Self.reply(to: invite.request, 488, "No Offer On Either Side", toTag: identifiers.make()),
                    to: invite.transaction
                )
            ]
        }
        picker = ServerLeg(invite: invite, localTag: identifiers.make())
        var actions: [CallAction] = [.cancelTimer(.ringTimeout)]
        for index in forks.indices where forks[index].isPending { actions += cancelFork(index) }
        switch (callerOffer, pickerOffer) {
        case (let callerOffer?, let pickerOffer?):
            let origin = callerOffer.origin ?? Self.fallbackOrigin(id: id)
            var placeholderOrigin = origin
            placeholderOrigin.version = origin.version > 0 ? origin.version - 1 : origin.version
            let placeholder = pickerOffer.inactiveAnswer(origin: placeholderOrigin)
            phase = .pickingUp(.awaitingPickerACKBeforeReinvite)
            actions += answer(
                .picker,
                with: pickerAnswer(body: placeholder.bytes, contentType: SessionDescription.contentType)
            )
        case (_?, nil):
            phase = .pickingUp(.awaitingAnswerInPickerACK)
            let offer = caller.invite.request
            actions += answer(.picker, with: pickerAnswer(body: offer.body, contentType: offer.contentType))
        case (nil, _?):
            phase = .pickingUp(.awaitingAnswerInCallerACK)
            actions += answerCaller(status: 200, reason: nil, carrying: invite.request)
        case (nil, nil):
            return []  // refused above
        }
        return actions + lamps()
    }

    private func pickerAnswer(body: [UInt8], contentType: String?) -> SIPResponse {
        var response = SIPResponse(
            replyingTo: picker!.invite.request,
            statusCode: 200,
            reasonPhrase: nil,
            toTag: picker!.localTag
        )
        if let contentType { response.headers.add(.contentType, contentType) }
        response.body = body
        return response
    }

    /// An ACK for one of our pickup 200s.
    mutating func pickupACKArrived(_ ack: SIPRequest, from side: Side) -> [CallAction] {
        guard case .pickingUp(let exchange) = phase else { return [] }
        switch (exchange, side) {
        case (.awaitingPickerACKBeforeReinvite, .picker):
            guard var dialog = picker?.dialog,
                var offer = Self.sessionDescription(of: caller.invite.request)
            else { return abandonPickup() }
            if let origin = offer.origin, origin.version == 0 {
                var raised = origin
                raised.version = 1
                offer = offer.replacingOrigin(with: raised)
            }
            var reinvite = dialog.makeRequest(method: .invite)
            reinvite.headers.add(.contentType, SessionDescription.contentType)
            reinvite.body = offer.bytes
            picker?.dialog = dialog
            let branch = Via.magicCookie + identifiers.make()
            phase = .pickingUp(.awaitingPickerAnswer(branch: branch, sequence: reinvite.cseq?.number ?? 1))
            return [.send(reinvite, branch: branch, to: peer(of: .picker))]
        case (.awaitingAnswerInPickerACK, .picker):
            guard !ack.body.isEmpty else { return abandonPickup() }
            phase = .talking
            return answerCaller(status: 200, reason: nil, carrying: ack) + lamps()
        case (.awaitingAnswerInCallerACK, .caller):
            guard !ack.body.isEmpty else { return abandonPickup() }
            phase = .talking
            return answer(.picker, with: pickerAnswer(body: ack.body, contentType: ack.contentType)) + lamps()
        default:
            return []
        }
    }

    /// The picker answered our re-INVITE: ACK it, and its answer goes to the caller.
    mutating func pickupResponseArrived(_ response: SIPResponse, branch: String) -> [CallAction]? {
        if branch == pickerReinviteBranch, response.isSuccess, let ack = pickerReinviteACK {
            // A retransmitted 2xx: our ACK was lost (RFC 3261 §13.2.2.4).
            return [.send(ack, branch: Via.magicCookie + identifiers.make(), to: peer(of: .picker))]
        }
        guard case .pickingUp(.awaitingPickerAnswer(let reinviteBranch, let sequence)) = phase,
            reinviteBranch == branch
        else { return nil }
        if response.statusCode < 200 { return [] }
        guard response.isSuccess, var dialog = picker?.dialog else {
            // A re-INVITE failure leaves the earlier session in place (RFC 3261 §14.1), which
            // is the placeholder: nothing useful. End both.
            return abandonPickup()
        }
        dialog.receivedResponse(response)
        var ack = dialog.makeRequest(method: .ack)
        ack.headers.set(.cseq, CSeq(number: sequence, method: .ack).description)
        picker?.dialog = dialog
        pickerReinviteBranch = branch
        pickerReinviteACK = ack
        phase = .talking
        var actions: [CallAction] = [.send(ack, branch: Via.magicCookie + identifiers.make(), to: peer(of: .picker))]
        actions += answerCaller(status: 200, reason: nil, carrying: response)
        return actions + lamps()
    }

    mutating func pickupRequestFailed(branch: String) -> [CallAction] {
        guard case .pickingUp(.awaitingPickerAnswer(let reinviteBranch, _)) = phase, reinviteBranch == branch else {
            return []
        }
        return abandonPickup()
    }

    /// Ends a pickup that cannot complete. Each of the caller and the picker gets what its own
    /// state calls for: a final 480 while its INVITE is unanswered, else a BYE in its dialog
    /// (RFC 3261 §15: a UAS may not BYE before its 2xx).
    mutating func abandonPickup() -> [CallAction] {
        var actions = endPickerLeg()
        if caller.finalStatus == nil {
            return actions + finish(callerStatus: 480, reason: "Pickup Failed")
        }
        actions += hangUp(.caller)
        phase = .ended
        return actions + lamps() + endIfDone()
    }

    /// The picker's side of a pickup that ends: a final 480 while its INVITE is unanswered,
    /// else a BYE in its dialog (there is none to BYE in before its 2xx).
    mutating func endPickerLeg() -> [CallAction] {
        guard let picker else { return [] }
        guard picker.finalStatus != nil else {
            return answer(
                .picker,
                with: Self.reply(to: picker.invite.request, 480, "Pickup Failed", toTag: picker.localTag)
            )
        }
        return hangUp(.picker)
    }

    /// The picker sent CANCEL before its pickup completed: 487 to it, and the caller, whose
    /// ringing phones are already cancelled, gets 480 (or a BYE once answered).
    public mutating func pickerCancelled() -> [CallAction] {
        guard case .pickingUp = phase, let picker, picker.finalStatus == nil else { return [] }
        var actions = answer(.picker, with: Self.reply(to: picker.invite.request, 487, nil, toTag: picker.localTag))
        actions += abandonPickup()
        return actions
    }

    /// The SDP `message` carries, if any (a body without Content-Type is taken for SDP).
    static func sessionDescription(of message: any SIPMessageProtocol) -> SessionDescription? {
        guard !message.body.isEmpty,
            message.contentType?.lowercased().hasPrefix(SessionDescription.contentType) ?? true
        else { return nil }
        return SessionDescription(message.body)
    }

    /// An origin for a caller offer that has none (malformed, but SDP otherwise).
    static func fallbackOrigin(id: String) -> SessionDescription.Origin {
        SessionDescription.Origin(username: "busylamp", sessionID: id, version: 1, address: "IN IP4 0.0.0.0")
    }
}

// MARK: - Lamps

extension CallStateMachine {
    /// The `.lineChanged` actions for every line dialog of this call that differs from what was
    /// last reported: the caller's line (initiator), the callee's (recipient) and the picker's.
    mutating func lamps() -> [CallAction] {
        var current: [LampKey: LineDialog] = [:]
        if let line = caller.invite.party.line {
            current[LampKey(number: line.number, id: "c" + id)] = callerLineDialog()
        }
        if let line = calleeLine {
            current[LampKey(number: line.number, id: "r" + id)] = calleeLineDialog()
        }
        if let picker, let line = picker.invite.party.line {
            current[LampKey(number: line.number, id: "p" + id)] = pickerLineDialog(picker)
        }
        var actions: [CallAction] = []
        for (key, dialog) in current.sorted(by: { $0.key.id < $1.key.id }) where reportedLamps[key] != dialog {
            if reportedLamps[key] == nil, dialog.state == .terminated { continue }
            reportedLamps[key] = dialog.state == .terminated ? nil : dialog
            actions.append(.lineChanged(number: key.number, dialog))
        }
        return actions
    }

    private var connectedParty: Party {
        picker?.invite.party ?? Party(line: calleeLine, identity: calleeIdentity)
    }

    private func callerLineDialog() -> LineDialog {
        let state: LineDialog.State
        switch phase {
        case .ended: state = .terminated
        case _ where caller.finalStatus == 200: state = .confirmed
        case .ringing: state = forks.contains { $0.state == .proceeding } ? .early : .trying
        case .answered, .talking, .pickingUp: state = .early
        }
        return initiatorLineDialog(id: "c" + id, leg: caller, state: state, remote: connectedParty)
    }

    /// PHONES.md (Polycom): the first state of an incoming call is `early`, never `trying`.
    private func calleeLineDialog() -> LineDialog {
        let state: LineDialog.State
        switch phase {
        case _ where picker != nil: state = .terminated
        case .ringing: state = .early
        case .answered, .talking: state = .confirmed
        case .pickingUp, .ended: state = .terminated
        }
        let answeredTag = forks.first { $0.state == .answered }?.dialog?.remoteTag
        return LineDialog(
            id: "r" + id,
            callID: calleeCallID,
            localTag: state == .confirmed ? answeredTag : calleeRingingTag,
            remoteTag: calleeFromTag,
            direction: .recipient,
            state: state,
            local: Party(line: calleeLine, identity: calleeIdentity).lamp,
            remote: caller.invite.party.lamp,
            startedAt: startedAt
        )
    }

    private func pickerLineDialog(_ picker: ServerLeg) -> LineDialog {
        let state: LineDialog.State
        if phase == .ended {
            state = .terminated
        } else {
            state = picker.finalStatus == 200 ? .confirmed : .trying
        }
        return initiatorLineDialog(id: "p" + id, leg: picker, state: state, remote: caller.invite.party)
    }

    /// The dialog of a line that sent an INVITE we answer (the caller's, a picker's), seen from
    /// that line: its own From tag is local, ours remote.
    private func initiatorLineDialog(id: String, leg: ServerLeg, state: LineDialog.State, remote: Party) -> LineDialog {
        let request = leg.invite.request
        return LineDialog(
            id: id,
            callID: request.callID ?? "",
            localTag: request.from?.tag,
            remoteTag: leg.localTag,
            direction: .initiator,
            state: state,
            local: leg.invite.party.lamp,
            remote: remote.lamp,
            startedAt: startedAt
        )
    }
}

/// One line dialog of a call, as reported to the line state model.
struct LampKey: Sendable, Hashable {
    var number: String
    var id: String
}
