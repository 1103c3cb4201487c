import Foundation
import SIPCore
import SIPTransactions

/// One call carried by BusyLamp's signalling-only back-to-back user agent (B2BUA).
///
/// BusyLamp answers the caller's INVITE as a user agent server (the *caller leg*) and places a
/// new INVITE to every registered contact of the called line, or to the trunk, as a user agent
/// client (one *callee fork* each). Media never touches us: bodies pass through unchanged,
/// except when a pickup must join two offers (see `CallStateMachine+Pickup.swift`).
///
/// ```
///              INVITE (authenticated)          INVITE ×N (new Call-ID, our From tag)
///   caller ───────────────────────────► B2BUA ─────────────────────────────────► contacts
///          ◄─────── 180 (our To tag) ──────   ◄──────────────── 180 (fork's tag)
///          ◄─────── 200 (body relayed) ────   ◄──────────────── 200: first wins,
///                                              ──── CANCEL ───► the other forks
///          ──────── ACK ──────────────────►   ──────────────── ACK (body relayed) ──►
///          ◄──── BYE, re-INVITE, UPDATE, INFO, PRACK … relayed both ways ────►
///
///   phase:  ringing ──2xx──► answered ──caller's ACK──► talking ──BYE──► ended
///             │  │                                         ▲
///             │  └──pickup──► pickingUp ──offer/answer──────┘
///             └──CANCEL / all forks failed / ring timeout──► ended
/// ```
///
/// The machine promises:
/// - the caller gets exactly one final response to its INVITE: the winning 200, 487 when it
///   cancelled, 480 when nobody answered in the ring timeout or nobody could be reached, 486
///   when every contact was busy, or the failure the contacts agreed on;
/// - every fork that did not win is ended: CANCEL while it has not answered (RFC 3261 §9.1 sends
///   it once a provisional has arrived), ACK and BYE when its 200 arrives too late (§13.2.2.4);
/// - every lamp it lit goes out: each line's ``LineDialog`` ends in `terminated` by the time
///   the call reports `.ended`.
///
/// It never reads a clock or touches a socket: time is given (`now:`), identifiers come from
/// an ``IdentifierSource``, and messages leave as ``CallAction``s for the driver. Requests leave
/// without Via (the driver writes one with the action's branch) and without Contact (the driver
/// adds its own to target refresh requests, `Dialog.targetRefreshMethods`, and to their 1xx/2xx).
public struct CallStateMachine: Sendable {
    public struct Settings: Sendable, Hashable {
        /// No answer in this time: the forks are cancelled and the caller gets 480.
        public var ringTimeout: Duration = .seconds(60)
        /// T1 and T2 pace our own 2xx retransmissions (RFC 3261 §13.3.1.4).
        public var timers: SIPTimers = .rfc3261
        /// Calls carried at once at most; past it a new INVITE gets 503 (memory stays bounded
        /// whatever authenticated phones or trunks send).
        public var maximumCalls = 50_000
        public init() {}
    }

    /// Who is at one end of the call, as lamps and the other end see it.
    public struct Party: Sendable, Hashable {
        /// The line, when the party is one of ours (its lamp changes); `nil` for a trunk.
        public var line: Line?
        /// What the other end is shown: display name and `sip:NUMBER@DOMAIN`, or what a trunk
        /// sent in its From.
        public var identity: NameAddress

        public init(line: Line?, identity: NameAddress) {
            self.line = line
            self.identity = identity
        }

        var lamp: LineDialog.Party {
            LineDialog.Party(identity: identity.uri.description, displayName: identity.displayName)
        }
    }

    /// Where one callee fork goes: the Request-URI (a registered Contact, or the trunk's
    /// `sip:NUMBER@HOST:PORT`) and the transport address to send it to.
    public struct Destination: Sendable, Hashable {
        public var requestURI: SIPURI
        public var peer: SIPPeer

        public init(requestURI: SIPURI, peer: SIPPeer) {
            self.requestURI = requestURI
            self.peer = peer
        }
    }

    /// An INVITE we answer as a user agent server: the caller's, or a picker's.
    public struct IncomingInvite: Sendable, Hashable {
        public var request: SIPRequest
        public var transaction: TransactionKey
        public var peer: SIPPeer
        public var party: Party

        public init(request: SIPRequest, transaction: TransactionKey, peer: SIPPeer, party: Party) {
            self.request = request
            self.transaction = transaction
            self.peer = peer
            self.party = party
        }
    }

    /// The ends of a call, as in-dialog requests and responses name them.
    public enum Side: Sendable, Hashable {
        case caller
        case callee(Int)
        case picker
    }

    enum Phase: Sendable, Hashable {
        case ringing
        /// A fork answered; the caller has its 200 and we wait for its ACK to pass on.
        case answered(fork: Int)
        case pickingUp(PickupExchange)
        case talking
        case ended
    }

    /// A leg we are the user agent server of (the caller's, a picker's).
    struct ServerLeg: Sendable, Hashable {
        var invite: IncomingInvite
        var localTag: String
        var dialog: Dialog?
        /// Our 2xx to its INVITE, retransmitted on unreliable transports until the ACK
        /// (RFC 3261 §13.3.1.4), with the current interval and the time spent so far.
        var unacknowledgedAnswer: SIPResponse?
        var retransmitInterval: Duration = .zero
        var retransmitElapsed: Duration = .zero
        var finalStatus: Int?
    }

    /// A callee fork: an INVITE we sent as a user agent client.
    struct Fork: Sendable, Hashable {
        enum State: Sendable, Hashable {
            /// Sent; nothing but perhaps 100 back yet (RFC 3261 §9.1: no CANCEL until a provisional).
            case calling
            /// A provisional (101–199) arrived: a CANCEL may go now.
            case proceeding
            case answered
            /// A final failure, a timeout, or our CANCEL's 487.
            case ended(status: Int)
        }

        var destination: Destination
        var branch: String
        var invite: SIPRequest
        var state: State = .calling
        var dialog: Dialog?
        /// The ACK we sent for its 2xx, sent again when the 2xx is retransmitted.
        var acknowledgement: SIPRequest?
        /// Cancel as soon as a provisional makes it possible.
        var cancelWanted = false
        /// Our CANCEL went: never a second one on the same branch.
        var cancelSent = false

        var isPending: Bool {
            switch state {
            case .calling, .proceeding: return true
            case .answered, .ended: return false
            }
        }
    }

    /// A request relayed from one side to the other, waiting for the other side's response.
    struct Relay: Sendable, Hashable {
        var from: Side
        var transaction: TransactionKey
        var request: SIPRequest
    }

    public let id: String
    public let settings: Settings
    /// The called line; `nil` for a call out to the trunk.
    public let calleeLine: Line?
    public let startedAt: Date
    /// The callee fork's Call-ID and our From tag: the dialog the callee line's watchers see
    /// (and may name in `Replaces`).
    public let calleeCallID: String
    public let calleeFromTag: String
    /// The `local-tag` the callee line's watchers see while it rings: the contacts' own tags
    /// are not known yet (and differ per contact), and RFC 3891 wants a non-empty `to-tag` in
    /// the `Replaces` a BLF key builds from it. Once answered, the answering phone's tag shows.
    public let calleeRingingTag: String

    var phase: Phase = .ringing
    var caller: ServerLeg
    var picker: ServerLeg?
    var forks: [Fork] = []
    /// Requests relayed across, by the branch we sent them with.
    var relays: [String: Relay] = [:]
    /// The CSeq number of the last re-INVITE relayed to each side, for the ACK that follows it.
    var relayedInviteSequence: [Side: UInt32] = [:]
    var calleeIdentity: NameAddress
    var identifiers: IdentifierSource
    /// What the lamps were last told of each line dialog of this call.
    var reportedLamps: [LampKey: LineDialog] = [:]
    /// The pickup re-INVITE's branch and our ACK for its 2xx, sent again if the 2xx repeats.
    var pickerReinviteBranch: String?
    var pickerReinviteACK: SIPRequest?

    /// The side the caller talks to once answered or picked up.
    var partnerOfCaller: Side? {
        switch phase {
        case .answered(let fork): return .callee(fork)
        case .talking: return picker != nil ? .picker : forks.firstIndex { $0.state == .answered }.map(Side.callee)
        case .ringing, .pickingUp, .ended: return nil
        }
    }

    public var isRinging: Bool { phase == .ringing }
    /// Nothing left to wait for: every fork has its final response and every relayed BYE its
    /// answer (which goes back to the phone that hung up).
    public var isEnded: Bool {
        phase == .ended && !forks.contains(where: \.isPending) && !relays.values.contains { $0.request.method == .bye }
    }

    /// Every branch whose responses belong to this call.
    public var branches: [String] { forks.map(\.branch) + Array(relays.keys) }

    /// The dialogs whose in-dialog requests belong to this call: Call-ID and our tag.
    public var dialogKeys: [CallDialogKey] {
        var keys = [CallDialogKey(callID: caller.invite.request.callID ?? "", localTag: caller.localTag)]
        keys.append(CallDialogKey(callID: calleeCallID, localTag: calleeFromTag))
        if let picker {
            keys.append(CallDialogKey(callID: picker.invite.request.callID ?? "", localTag: picker.localTag))
        }
        return keys
    }

    /// Known tags of the ringing dialog, for `Replaces` matching.
    public var calleeTags: Set<String> {
        var tags: Set<String> = [calleeFromTag, calleeRingingTag]
        for fork in forks { if let tag = fork.dialog?.remoteTag { tags.insert(tag) } }
        return tags
    }

    public init(
        id: String,
        caller: IncomingInvite,
        calleeLine: Line?,
        calleeIdentity: NameAddress,
        settings: Settings,
        identifiers: IdentifierSource,
        now: Date
    ) {
        var identifiers = identifiers
        self.id = id
        self.settings = settings
        self.calleeLine = calleeLine
        self.calleeIdentity = calleeIdentity
        self.startedAt = now
        self.caller = ServerLeg(invite: caller, localTag: identifiers.make())
        self.calleeCallID = identifiers.make() + "@busylamp"
        self.calleeFromTag = identifiers.make()
        self.calleeRingingTag = "r" + calleeFromTag
        self.identifiers = identifiers
    }

    // MARK: Starting

    /// Rings every destination at once (RFC 3261 §16.6's parallel fork, done as a UAC).
    /// With no destination the caller gets 480 at once: the line has no registered contact.
    public mutating func start(ringing destinations: [Destination]) -> [CallAction] {
        guard !destinations.isEmpty else {
            return finish(callerStatus: 480, reason: "Temporarily Unavailable: No Registered Contact")
        }
        var actions = lamps()
        for destination in destinations {
            let branch = Via.magicCookie + identifiers.make()
            let invite = makeCalleeInvite(to: destination)
            forks.append(Fork(destination: destination, branch: branch, invite: invite))
            actions.append(.send(invite, branch: branch, to: destination.peer))
        }
        actions.append(.startTimer(.ringTimeout, after: settings.ringTimeout))
        return actions
    }

    /// RFC 3261 §8.1.1 for the callee fork: our Call-ID, our From tag and the caller's identity
    /// (PRODUCT.md: the callee sees who calls), with the caller's body and the headers that
    /// describe the session rather than the hop.
    private func makeCalleeInvite(to destination: Destination) -> SIPRequest {
        let original = caller.invite.request
        var headers = SIPHeaders()
        var from = caller.invite.party.identity
        from.tag = calleeFromTag
        headers.add(.from, from.description)
        headers.add(.to, NameAddress(uri: calleeIdentity.uri).description)
        headers.add(.callID, calleeCallID)
        headers.add(.cseq, CSeq(number: 1, method: .invite).description)
        headers.add(.maxForwards, "70")
        Self.copySessionHeaders(from: original.headers, into: &headers)
        return SIPRequest(method: .invite, uri: destination.requestURI, headers: headers, body: original.body)
    }

    // MARK: Events from the caller

    /// The caller sent CANCEL (the driver has answered it 200): 487 to its INVITE and CANCEL to
    /// every fork (RFC 3261 §9.2). A CANCEL after the answer changes nothing.
    public mutating func callerCancelled() -> [CallAction] {
        switch phase {
        case .ringing:
            return finish(callerStatus: 487, reason: nil)
        case .pickingUp:
            // RFC 3261 §9.2: a CANCEL after the final response changes nothing. A caller that
            // sent no offer has its 200 (carrying the picker's offer) before the picker has one;
            // its ACK completes the pickup, or its silence ends it. (The request-path fuzzer
            // found the picker's INVITE left unanswered for good when this CANCEL ended the call.)
            guard caller.finalStatus == nil else { return [] }
            let actions = endPickerLeg()
            return actions + finish(callerStatus: 487, reason: nil)
        case .answered, .talking, .ended:
            return []
        }
    }

    /// A ring timer of ours fired.
    public mutating func timerFired(_ timer: CallTimer) -> [CallAction] {
        switch timer {
        case .ringTimeout:
            guard phase == .ringing else { return [] }
            return finish(callerStatus: 480, reason: "No Answer")
        case .retransmitCallerAnswer:
            return retransmitAnswer(of: .caller)
        case .retransmitPickerAnswer:
            return retransmitAnswer(of: .picker)
        }
    }

    // MARK: Responses to what we sent

    /// A response arrived for a request we sent with `branch`.
    public mutating func receivedResponse(_ response: SIPResponse, branch: String) -> [CallAction] {
        if let index = forks.firstIndex(where: { $0.branch == branch }), response.cseq?.method == .invite {
            return forkResponded(index, response)
        }
        if let relay = relays[branch] {
            return relayedRequestAnswered(relay, response, branch: branch)
        }
        if let actions = pickupResponseArrived(response, branch: branch) { return actions }
        return []
    }

    /// A request we sent with `branch` timed out or could not be sent (RFC 3261 §17.1.1.2,
    /// §8.1.3.1: treated as a 408 or 503 response).
    public mutating func requestFailed(branch: String, status: Int) -> [CallAction] {
        let cseq: CSeq
        if forks.contains(where: { $0.branch == branch }) {
            cseq = CSeq(number: 1, method: .invite)
        } else if let relayed = relays[branch]?.request.cseq {
            cseq = relayed
        } else {
            return pickupRequestFailed(branch: branch)
        }
        var response = SIPResponse(statusCode: status)
        response.headers.add(.cseq, cseq.description)
        return receivedResponse(response, branch: branch)
    }

    private mutating func forkResponded(_ index: Int, _ response: SIPResponse) -> [CallAction] {
        let status = response.statusCode
        if status == 100 {
            // RFC 3261 §9.1: any provisional, 100 included, lets a held CANCEL go.
            guard forks[index].state == .calling else { return [] }
            forks[index].state = .proceeding
            return forks[index].cancelWanted ? sendCancel(index) : []
        }
        var actions: [CallAction] = []
        if status < 200 {
            guard forks[index].state == .calling || forks[index].state == .proceeding else { return [] }
            forks[index].state = .proceeding
            updateForkDialog(index, response)
            if forks[index].cancelWanted { return sendCancel(index) }
            guard phase == .ringing else { return [] }
            // RFC 3261 §16.7 step 5 in spirit: provisionals go to the caller as they come, in
            // our own early dialog with it.
            actions += answerCaller(status: status, reason: response.reasonPhrase, carrying: response)
            return actions + lamps()
        }
        if (200..<300).contains(status) {
            return forkAnswered(index, response)
        }
        // A final failure (or our CANCEL's 487): the transaction layer has sent its ACK.
        if forks[index].isPending { forks[index].state = .ended(status: status) }
        if phase == .ringing, !forks.contains(where: \.isPending) {
            let (finalStatus, reason) = Self.bestFailure(forks.compactMap(\.failureStatus))
            return actions + finish(callerStatus: finalStatus, reason: reason)
        }
        return actions + endIfDone()
    }

    private mutating func forkAnswered(_ index: Int, _ response: SIPResponse) -> [CallAction] {
        if forks[index].state == .answered {
            // A retransmitted 2xx: our ACK was lost (RFC 3261 §13.2.2.4: "the UAC core MUST
            // generate an ACK for each 2xx retransmission").
            if let ack = forks[index].acknowledgement {
                return [.send(ack, branch: Via.magicCookie + identifiers.make(), to: forks[index].destination.peer)]
            }
            return []
        }
        forks[index].state = .answered
        updateForkDialog(index, response)
        guard phase == .ringing else {
            // Too late: another fork won, the caller cancelled, or a pickup took the call.
            // RFC 3261 §15: the UAC "SHOULD send a BYE" for a 2xx it does not want, after its ACK.
            return acknowledgeAndHangUp(index, ackBody: nil) + endIfDone()
        }
        phase = .answered(fork: index)
        var actions: [CallAction] = [.cancelTimer(.ringTimeout)]
        for other in forks.indices where other != index && forks[other].isPending {
            actions += cancelFork(other)
        }
        actions += answerCaller(status: response.statusCode, reason: response.reasonPhrase, carrying: response)
        return actions + lamps()
    }

    /// RFC 3261 §13.2.2.4: an ACK for the fork's 2xx, then a BYE.
    private mutating func acknowledgeAndHangUp(_ index: Int, ackBody: [UInt8]?) -> [CallAction] {
        guard var dialog = forks[index].dialog else { return [] }
        let ack = Self.acknowledgement(in: &dialog)
        forks[index].acknowledgement = ack
        let bye = dialog.makeRequest(method: .bye)
        forks[index].dialog = dialog
        let peer = forks[index].destination.peer
        return [
            .send(ack, branch: Via.magicCookie + identifiers.make(), to: peer),
            .send(bye, branch: Via.magicCookie + identifiers.make(), to: peer),
        ]
    }

    private mutating func updateForkDialog(_ index: Int, _ response: SIPResponse) {
        if var dialog = forks[index].dialog, dialog.remoteTag == response.to?.tag {
            dialog.receivedResponse(response)
            forks[index].dialog = dialog
        } else if forks[index].dialog == nil || response.isSuccess {
            // The first response with a tag makes the dialog; a 2xx from a different early
            // dialog of the same fork (a forking proxy behind the contact) replaces it.
            forks[index].dialog = Dialog(
                uacRequest: forks[index].invite,
                response: response,
                sentOverTLS: forks[index].destination.peer.transport == .tls
            )
        }
    }

    mutating func cancelFork(_ index: Int) -> [CallAction] {
        switch forks[index].state {
        case .proceeding: return sendCancel(index)
        case .calling:
            // RFC 3261 §9.1: "If no provisional response has been received, the CANCEL request
            // MUST NOT be sent; rather, the client MUST wait for the arrival of a provisional
            // response before sending the request."
            forks[index].cancelWanted = true
            return []
        case .answered, .ended: return []
        }
    }

    /// RFC 3261 §9.1: the CANCEL repeats the INVITE's Request-URI, Call-ID, To, From, CSeq
    /// number and top Via (the same branch), with its own method.
    private mutating func sendCancel(_ index: Int) -> [CallAction] {
        forks[index].cancelWanted = false
        guard !forks[index].cancelSent else { return [] }
        forks[index].cancelSent = true
        let cancel = Self.cancelRequest(for: forks[index].invite)
        return [.send(cancel, branch: forks[index].branch, to: forks[index].destination.peer)]
    }

    /// The CANCEL of a fork's `invite`; the driver gives it the INVITE's branch.
    static func cancelRequest(for invite: SIPRequest) -> SIPRequest {
        var headers = SIPHeaders()
        for name in [SIPHeaderName.from, .to, .callID] {
            if let value = invite.headers[name] { headers.add(name, value) }
        }
        headers.add(.cseq, CSeq(number: 1, method: .cancel).description)
        headers.add(.maxForwards, "70")
        return SIPRequest(method: .cancel, uri: invite.uri, headers: headers)
    }

    /// The ACK for a fork's 2xx, in its `dialog` (our INVITE to a fork is always CSeq 1).
    static func acknowledgement(in dialog: inout Dialog) -> SIPRequest {
        var ack = dialog.makeRequest(method: .ack)
        ack.headers.set(.cseq, CSeq(number: 1, method: .ack).description)
        return ack
    }

    /// RFC 3261 §16.7 step 6 in spirit, for a UAC that forked: a 6xx wins, then busy when every
    /// contact was busy, otherwise 480 (the callee cannot be reached now).
    static func bestFailure(_ statuses: [Int]) -> (Int, String?) {
        if let global = statuses.first(where: { $0 >= 600 }) { return (global, nil) }
        if !statuses.isEmpty, statuses.allSatisfy({ $0 == 486 }) { return (486, nil) }
        if statuses.count == 1, let only = statuses.first, [403, 404, 484, 488].contains(only) { return (only, nil) }
        return (480, "Temporarily Unavailable")
    }

    // MARK: The caller's answer

    /// A response to the caller's INVITE, in our dialog with the caller, carrying `source`'s body
    /// (a fork's SDP passes through; in a pickup, the picker's offer or answer).
    mutating func answerCaller(
        status: Int,
        reason: String?,
        carrying source: (any SIPMessageProtocol)? = nil
    ) -> [CallAction] {
        var response = SIPResponse(
            replyingTo: caller.invite.request,
            statusCode: status,
            reasonPhrase: reason,
            toTag: caller.localTag
        )
        if let source { Self.copyBody(of: source, into: &response) }
        return answer(.caller, with: response)
    }

    /// Sends `response` on a server leg, keeps its dialog, and starts 2xx retransmission.
    mutating func answer(_ side: Side, with response: SIPResponse) -> [CallAction] {
        var leg = side == .picker ? picker! : caller
        if response.statusCode > 100, response.statusCode < 300 {
            if var dialog = leg.dialog {
                if response.isSuccess { dialog.state = .confirmed }
                leg.dialog = dialog
            } else {
                leg.dialog = Dialog(
                    uasRequest: leg.invite.request,
                    response: response,
                    receivedOverTLS: leg.invite.peer.transport == .tls
                )
            }
        }
        var actions: [CallAction] = [.respond(response, to: leg.invite.transaction)]
        if response.statusCode >= 200 { leg.finalStatus = response.statusCode }
        if response.isSuccess, leg.invite.peer.reliability == .unreliable {
            leg.unacknowledgedAnswer = response
            leg.retransmitInterval = settings.timers.t1
            leg.retransmitElapsed = .zero
            actions.append(
                .startTimer(
                    side == .picker ? .retransmitPickerAnswer : .retransmitCallerAnswer,
                    after: settings.timers.t1
                )
            )
        }
        if side == .picker { picker = leg } else { caller = leg }
        return actions
    }

    /// RFC 3261 §13.3.1.4: the 2xx goes again at T1, 2·T1, … capped at T2, until the ACK; after
    /// 64·T1 without one "the session SHOULD be terminated. This is accomplished with a BYE".
    private mutating func retransmitAnswer(of side: Side) -> [CallAction] {
        guard var leg = side == .picker ? picker : caller, let response = leg.unacknowledgedAnswer else { return [] }
        leg.retransmitElapsed += leg.retransmitInterval
        if leg.retransmitElapsed >= settings.timers.transactionTimeout {
            leg.unacknowledgedAnswer = nil
            if side == .picker { picker = leg } else { caller = leg }
            if case .pickingUp = phase { return abandonPickup() }
            return hangUpBoth()
        }
        leg.retransmitInterval = min(leg.retransmitInterval * 2, settings.timers.t2)
        if side == .picker { picker = leg } else { caller = leg }
        return [
            .respond(response, to: leg.invite.transaction),
            .startTimer(
                side == .picker ? .retransmitPickerAnswer : .retransmitCallerAnswer,
                after: leg.retransmitInterval
            ),
        ]
    }

    // MARK: In-dialog requests

    /// An ACK for a 2xx, in one of our dialogs.
    public mutating func receivedACK(_ ack: SIPRequest, from side: Side) -> [CallAction] {
        switch side {
        case .caller, .picker:
            guard var leg = side == .picker ? picker : caller else { return [] }
            var actions: [CallAction] = []
            if leg.unacknowledgedAnswer != nil, ack.cseq?.number == leg.invite.request.cseq?.number {
                leg.unacknowledgedAnswer = nil
                actions.append(.cancelTimer(side == .picker ? .retransmitPickerAnswer : .retransmitCallerAnswer))
            }
            if side == .picker { picker = leg } else { caller = leg }
            if case .pickingUp = phase { return actions + pickupACKArrived(ack, from: side) }
            if case .answered(let fork) = phase, side == .caller, ack.cseq?.number == caller.invite.request.cseq?.number
            {
                // The caller's ACK for the answer goes on to the fork that answered, with its
                // body (an answer to an offer in the 200, RFC 3264 §5's late offer).
                phase = .talking
                guard var dialog = forks[fork].dialog else { return actions }
                var forward = dialog.makeRequest(method: .ack)
                forward.headers.set(.cseq, CSeq(number: 1, method: .ack).description)
                Self.copyBody(of: ack, into: &forward)
                forks[fork].dialog = dialog
                forks[fork].acknowledgement = forward
                return actions + [
                    .send(forward, branch: Via.magicCookie + identifiers.make(), to: forks[fork].destination.peer)
                ]
            }
            return actions + relayACK(ack, from: side)
        case .callee:
            // The callee's ACK for the 2xx of a re-INVITE it was relayed (hold, resume).
            return relayACK(ack, from: side)
        }
    }

    /// A request other than ACK and CANCEL in one of our dialogs, arriving on server
    /// transaction `transaction`.
    public mutating func receivedRequest(
        _ request: SIPRequest,
        transaction: TransactionKey,
        from side: Side
    ) -> [CallAction] {
        guard var dialog = dialog(of: side) else {
            return [.respond(Self.reply(to: request, 481, "Call/Transaction Does Not Exist"), to: transaction)]
        }
        switch dialog.receivedRequest(request) {
        case .rejectOutOfOrder:
            return [.respond(Self.reply(to: request, 500, "Out Of Order CSeq"), to: transaction)]
        case .rejectMalformed:
            return [.respond(Self.reply(to: request, 400, "Missing CSeq"), to: transaction)]
        case .accept:
            dialog.refreshRemoteTarget(from: request)
            setDialog(dialog, of: side)
        }
        let isHangUp = request.method == .bye
        if isHangUp, !isConnected { return byeArrived(request, transaction: transaction, from: side) }
        guard let target = partner(of: side), var targetDialog = self.dialog(of: target) else {
            return [.respond(Self.reply(to: request, 481, "Call/Transaction Does Not Exist"), to: transaction)]
        }
        var forward = targetDialog.makeRequest(method: request.method)
        Self.copySessionHeaders(from: request.headers, into: &forward.headers)
        for name in Self.relayedOnlyInDialogHeaders {
            for value in request.headers.values(name) { forward.headers.add(name, value) }
        }
        forward.body = request.body
        if request.method == .invite, let number = forward.cseq?.number { relayedInviteSequence[target] = number }
        setDialog(targetDialog, of: target)
        let branch = Via.magicCookie + identifiers.make()
        relays[branch] = Relay(from: side, transaction: transaction, request: request)
        let actions: [CallAction] = [.send(forward, branch: branch, to: peer(of: target))]
        guard isHangUp else { return actions }
        // The BYE goes across and its answer comes back like any other request, but the
        // lamps go out now: the call is over for both phones the moment one hangs up.
        phase = .ended
        return actions + lamps()
    }

    /// Answered (or picked up) and talking: a BYE is relayed rather than answered here.
    private var isConnected: Bool {
        switch phase {
        case .answered, .talking: return true
        case .ringing, .pickingUp, .ended: return false
        }
    }

    /// The response to a relayed request goes back to whoever sent the request.
    private mutating func relayedRequestAnswered(
        _ relay: Relay,
        _ response: SIPResponse,
        branch: String
    ) -> [CallAction] {
        if response.statusCode == 100 { return [] }
        // A 2xx to a relayed re-INVITE stays known until its ACK is relayed, so that its
        // retransmissions (our ACK waits for the sender's) reach the sender again.
        if response.statusCode >= 200, !(response.isSuccess && relay.request.method == .invite) {
            relays[branch] = nil
        }
        if response.isSuccess, let target = partner(of: relay.from), var dialog = dialog(of: target) {
            dialog.receivedResponse(response)
            setDialog(dialog, of: target)
        }
        var answer = Self.reply(to: relay.request, response.statusCode, response.reasonPhrase)
        for field in response.headers where !Self.hopHeaders.contains(field.name) {
            answer.headers.add(field.name, field.value)
        }
        answer.body = response.body
        return [.respond(answer, to: relay.transaction)] + endIfDone()
    }

    /// The ACK for a relayed re-INVITE's 2xx goes on with the CSeq of the re-INVITE we sent.
    private mutating func relayACK(_ ack: SIPRequest, from side: Side) -> [CallAction] {
        guard let target = partner(of: side), var dialog = dialog(of: target),
            let number = relayedInviteSequence[target]
        else { return [] }
        relays = relays.filter { $0.value.from != side || $0.value.request.method != .invite }
        var forward = dialog.makeRequest(method: .ack)
        forward.headers.set(.cseq, CSeq(number: number, method: .ack).description)
        Self.copyBody(of: ack, into: &forward)
        setDialog(dialog, of: target)
        return [.send(forward, branch: Via.magicCookie + identifiers.make(), to: peer(of: target))]
    }

    /// A BYE outside a connected call, answered 200 here. From the caller before the answer
    /// it ends the attempt like CANCEL (RFC 3261 §15: "The caller's UA MAY send a BYE for either
    /// confirmed or early dialogs"); a BYE crossing ours once the call has ended is just answered.
    private mutating func byeArrived(
        _ request: SIPRequest,
        transaction: TransactionKey,
        from side: Side
    ) -> [CallAction] {
        var actions: [CallAction] = [.respond(Self.reply(to: request, 200, nil), to: transaction)]
        guard side == .caller, phase == .ringing || isPickingUp else { return actions }
        let pickerLeg = picker
        actions += finish(callerStatus: 487, reason: nil)
        if let pickerLeg {
            // A pickup under way: the picker's INVITE gets its final answer, or its dialog a BYE.
            if pickerLeg.finalStatus == nil {
                actions += answer(
                    .picker,
                    with: Self.reply(to: pickerLeg.invite.request, 480, "Caller Hung Up", toTag: pickerLeg.localTag)
                )
            } else {
                actions += hangUp(.picker)
            }
        }
        return actions
    }

    private var isPickingUp: Bool {
        if case .pickingUp = phase { return true }
        return false
    }

    /// A BYE of ours to `side`, in its dialog.
    mutating func hangUp(_ side: Side) -> [CallAction] {
        guard var dialog = dialog(of: side), dialog.remoteTag != nil else { return [] }
        let bye = dialog.makeRequest(method: .bye)
        setDialog(dialog, of: side)
        return [.send(bye, branch: Via.magicCookie + identifiers.make(), to: peer(of: side))]
    }

    /// The caller never acknowledged its 200: BYE to it, and to the other side (a fork whose
    /// 2xx still waits for our ACK gets the ACK first, RFC 3261 §15).
    private mutating func hangUpBoth() -> [CallAction] {
        var actions = hangUp(.caller)
        switch partner(of: .caller) {
        case .callee(let fork) where forks[fork].acknowledgement == nil:
            actions += acknowledgeAndHangUp(fork, ackBody: nil)
        case let other?:
            actions += hangUp(other)
        case nil:
            break
        }
        phase = .ended
        return actions + lamps() + endIfDone()
    }

    // MARK: Ending

    /// Ends the attempt before an answer: a final status to the caller, CANCEL to the forks.
    mutating func finish(callerStatus: Int, reason: String?) -> [CallAction] {
        var actions: [CallAction] = [.cancelTimer(.ringTimeout)]
        if caller.finalStatus == nil {
            actions += answerCaller(status: callerStatus, reason: reason)
        }
        for index in forks.indices where forks[index].isPending { actions += cancelFork(index) }
        phase = .ended
        return actions + lamps() + endIfDone()
    }

    /// `.ended` once nothing of the call is left pending: every fork has its final response.
    mutating func endIfDone() -> [CallAction] {
        isEnded ? [.ended] : []
    }

    // MARK: Sides

    func partner(of side: Side) -> Side? {
        switch side {
        case .caller:
            if case .ringing = phase {
                // In the early dialogs (PRACK, UPDATE, INFO before the answer): only when one
                // fork has spoken can it be told apart.
                let early = forks.indices.filter { forks[$0].dialog != nil && forks[$0].isPending }
                return early.count == 1 ? .callee(early[0]) : nil
            }
            return partnerOfCaller
        case .callee, .picker:
            if case .ringing = phase { return caller.dialog != nil ? .caller : nil }
            return partnerOfCaller == side ? .caller : nil
        }
    }

    func dialog(of side: Side) -> Dialog? {
        switch side {
        case .caller: return caller.dialog
        case .picker: return picker?.dialog
        case .callee(let index): return forks.indices.contains(index) ? forks[index].dialog : nil
        }
    }

    mutating func setDialog(_ dialog: Dialog, of side: Side) {
        switch side {
        case .caller: caller.dialog = dialog
        case .picker: picker?.dialog = dialog
        case .callee(let index): forks[index].dialog = dialog
        }
    }

    /// Where requests to `side` go: the address its INVITE came from, or the address the
    /// contact registered from (phones behind NAT are reached where they sent from).
    func peer(of side: Side) -> SIPPeer {
        switch side {
        case .caller: return caller.invite.peer
        case .picker: return picker?.invite.peer ?? caller.invite.peer
        case .callee(let index): return forks[index].destination.peer
        }
    }

    /// The side of this call an in-dialog request belongs to: its Call-ID and To tag (ours) name
    /// the dialog, and for the callee forks, which share both, its From tag tells them apart.
    public func side(of request: SIPRequest) -> Side? {
        guard let callID = request.callID, let localTag = request.to?.tag else { return nil }
        if callID == calleeCallID, localTag == calleeFromTag {
            let remoteTag = request.from?.tag
            return forks.firstIndex { $0.dialog?.remoteTag == remoteTag }.map(Side.callee)
        }
        if callID == caller.invite.request.callID, localTag == caller.localTag { return .caller }
        if let picker, callID == picker.invite.request.callID, localTag == picker.localTag { return .picker }
        return nil
    }

    // MARK: Message helpers

    /// A response to `request`; `toTag` is used only when the request's To has none (an initial
    /// INVITE: RFC 3261 §8.2.6.2 "the UAS MUST add a tag to the To header field").
    static func reply(to request: SIPRequest, _ status: Int, _ reason: String?, toTag: String? = nil) -> SIPResponse {
        SIPResponse(replyingTo: request, statusCode: status, reasonPhrase: reason, toTag: toTag)
    }

    /// Headers that describe a hop or a transaction, never copied across the B2BUA.
    static let hopHeaders: Set<SIPHeaderName> = [
        .via, .from, .to, .callID, .cseq, .contact, .recordRoute, .route, .contentLength, .maxForwards,
        .authorization, .proxyAuthorization, .wwwAuthenticate, .proxyAuthenticate, .server, .userAgent,
        .require, .proxyRequire, .unsupported,
    ]

    /// In-dialog headers worth carrying that initial INVITEs do not need.
    static let relayedOnlyInDialogHeaders: [SIPHeaderName] = [
        .event, .subscriptionState, .referTo, .referredBy, .replaces, SIPHeaderName("RAck"), SIPHeaderName("Reason"),
    ]

    /// What describes the session rather than the hop: the body's type and disposition, what
    /// the sender allows, accepts and supports, ring tone and caller picture hints, session
    /// timers. `Supported: 100rel` is dropped: reliable provisionals name the INVITE's CSeq
    /// (RFC 3262 RAck), which differs on each leg.
    static func copySessionHeaders(from source: SIPHeaders, into headers: inout SIPHeaders) {
        let copied: [SIPHeaderName] = [
            .contentType, .contentDisposition, .allow, .accept, .subject, .sessionExpires,
            SIPHeaderName("Min-SE"), SIPHeaderName("Alert-Info"), SIPHeaderName("Call-Info"),
        ]
        for name in copied {
            for value in source.values(name) { headers.add(name, value) }
        }
        let supported = source.listElements(.supported).filter { $0.lowercased() != "100rel" }
        if !supported.isEmpty { headers.add(.supported, supported.joined(separator: ", ")) }
    }

    /// `source`'s body and its Content-Type, into a request or response of ours.
    static func copyBody<Target: SIPMessageProtocol>(of source: any SIPMessageProtocol, into target: inout Target) {
        guard !source.body.isEmpty else { return }
        if let type = source.contentType { target.headers.set(.contentType, type) }
        target.body = source.body
    }
}

extension CallStateMachine.Fork {
    /// The final failure status of an ended fork (a 487 we caused counts as a failure too).
    var failureStatus: Int? {
        if case .ended(let status) = state { return status }
        return nil
    }
}

/// The in-dialog identity the driver looks calls up by: Call-ID and our own tag.
public struct CallDialogKey: Sendable, Hashable {
    public var callID: String
    public var localTag: String

    public init(callID: String, localTag: String) {
        self.callID = callID
        self.localTag = localTag
    }
}

/// The timers a call asks its driver for, one of each at most per call.
public enum CallTimer: String, Sendable, Hashable, CaseIterable {
    case ringTimeout
    case retransmitCallerAnswer
    case retransmitPickerAnswer
}

/// What a call asks its driver to do, in the order given.
public enum CallAction: Sendable, Hashable {
    /// Answer the server transaction `to` (the driver adds Contact to 101–299 answers of target
    /// refresh requests, and its Server header).
    case respond(SIPResponse, to: TransactionKey)
    /// Send `request` with a top Via carrying `branch` (the driver writes the rest of the Via,
    /// and a Contact on target refresh requests): a new client transaction, or an ACK.
    case send(SIPRequest, branch: String, to: SIPPeer)
    case startTimer(CallTimer, after: Duration)
    case cancelTimer(CallTimer)
    /// A line's dialog changed; `.terminated` removes it from the line.
    case lineChanged(number: String, LineDialog)
    /// Nothing of the call is left: forget it.
    case ended
}

/// Where tags, Call-IDs and branches come from: random in service, counted in tests.
public struct IdentifierSource: Sendable, Hashable {
    private var counter: UInt64?
    private let prefix: String

    /// 64 random bits per identifier (RFC 3261 §19.3 asks for at least 32 for tags).
    public static let random = IdentifierSource(counter: nil, prefix: "")

    /// `prefix1`, `prefix2`, … : predictable identifiers for machine tests.
    public static func sequential(prefix: String) -> IdentifierSource {
        IdentifierSource(counter: 0, prefix: prefix)
    }

    private init(counter: UInt64?, prefix: String) {
        self.counter = counter
        self.prefix = prefix
    }

    /// A source for one call: random stays random; a sequential one gets its own prefix.
    public mutating func fork() -> IdentifierSource {
        counter == nil ? .random : .sequential(prefix: prefix + make() + "-")
    }

    public mutating func make() -> String {
        guard let current = counter else { return String(UInt64.random(in: .min ... .max), radix: 16) }
        counter = current + 1
        return prefix + String(current + 1)
    }
}
