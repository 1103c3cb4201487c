import Foundation
import SIPCore
import SIPTransactions

/// Every call BusyLamp carries, and the way each message finds its call.
///
/// The driver routes an INVITE (``CallRouting``), finds the destinations (a line's registered
/// contacts, or the trunk) and hands the result here; afterwards every response, in-dialog
/// request, ACK, CANCEL and timer comes back here and reaches the one ``CallStateMachine`` it
/// belongs to, found by the branch we sent a request with, by the dialog (Call-ID and our tag),
/// or by the INVITE server transaction a CANCEL names. Pickup is decided here too: which ringing
/// call `*89…`, `*88` or `Replaces` means, and whether the picker may take it.
///
/// Sans-I/O like the calls themselves: no clock, no sockets; actions carry the call id so that
/// the driver can keep one timer per call and kind.
public struct B2BUAStateMachine: Sendable {
    public struct Action: Sendable, Hashable {
        public var callID: String
        public var action: CallAction
    }

    /// What a pickup INVITE asks for, from ``CallRouting/Route`` or its `Replaces` header.
    public enum PickupRequest: Sendable, Hashable {
        /// `*89` + extension or number: the call ringing at this line (routing checked the rule).
        case directed(target: Line)
        /// `*88`: the most recently started ringing call of the account's group.
        case group(accountID: String, group: String)
        /// RFC 3891: the dialog the picker saw in a NOTIFY.
        case replaces(Replaces)
    }

    public let settings: CallStateMachine.Settings
    private var identifiers: IdentifierSource
    private var calls: [String: CallStateMachine] = [:]
    private var callIDsByBranch: [String: String] = [:]
    private var callIDsByDialog: [CallDialogKey: String] = [:]
    /// The INVITE server transactions we answer (callers', pickers'), for CANCEL.
    private var callIDsByInvite: [TransactionKey: String] = [:]
    private var callIDsByCalleeCallID: [String: String] = [:]
    /// What each call put in the indexes, so that its end takes it all out.
    private var indexed: [String: (branches: Set<String>, dialogs: Set<CallDialogKey>, invites: Set<TransactionKey>)] =
        [:]

    public init(settings: CallStateMachine.Settings, identifiers: IdentifierSource = .random) {
        self.settings = settings
        self.identifiers = identifiers
    }

    public var count: Int { calls.count }

    public func call(id: String) -> CallStateMachine? { calls[id] }

    /// What ends call `id` if the server dies now; `nil` once it has ended (``CallTeardown``).
    public func teardown(ofCall id: String) -> CallTeardown? { calls[id]?.teardown }

    /// The most recently started call ringing at a line that `matches`.
    public func latestRingingCall(where matches: (Line) -> Bool) -> CallStateMachine? {
        calls.values.filter { call in call.isRinging && call.calleeLine.map(matches) == true }
            .max { $0.startedAt < $1.startedAt }
    }

    // MARK: New calls

    /// A routed INVITE: ring `destinations` (none: the caller gets 480 at once).
    public mutating func placeCall(
        caller: CallStateMachine.IncomingInvite,
        calleeLine: Line?,
        calleeIdentity: NameAddress,
        destinations: [CallStateMachine.Destination],
        now: Date
    ) -> [Action] {
        guard calls.count < settings.maximumCalls else {
            var response = CallStateMachine.reply(to: caller.request, 503, "Too Many Calls", toTag: identifiers.make())
            response.headers.add(.retryAfter, "5")
            return [Action(callID: "", action: .respond(response, to: caller.transaction))]
        }
        let id = identifiers.make()
        var call = CallStateMachine(
            id: id,
            caller: caller,
            calleeLine: calleeLine,
            calleeIdentity: calleeIdentity,
            settings: settings,
            identifiers: identifiers.fork(),
            now: now
        )
        let actions = call.start(ringing: destinations)
        callIDsByCalleeCallID[call.calleeCallID] = id
        index(call.dialogKeys, invite: caller.transaction, of: id)
        return store(call, actions)
    }

    /// A pickup INVITE from `invite.party.line`. Refusals leave every ringing call alone:
    /// 480 when nothing is ringing, 481 for a `Replaces` naming no call of ours (RFC 3891 §3),
    /// 403 for a call ringing at a line of another account or group.
    public mutating func pickUp(_ pickup: PickupRequest, by invite: CallStateMachine.IncomingInvite) -> [Action] {
        guard let picker = invite.party.line else {
            return refuse(invite, 403, "Only Lines May Pick Up")
        }
        let target: CallStateMachine?
        switch pickup {
        case .directed(let line):
            target = latestRingingCall { $0.number == line.number }
        case .group(let accountID, let group):
            target = latestRingingCall { $0.accountID == accountID && $0.group == group }
        case .replaces(let replaces):
            guard let id = callIDsByCalleeCallID[replaces.callID], let call = calls[id],
                replaces.tags.allSatisfy({ call.calleeTags.contains($0) })
            else {
                return refuse(invite, 481, "Call/Transaction Does Not Exist")
            }
            guard let line = call.calleeLine else { return refuse(invite, 403, "Not A Line's Call") }
            guard line.accountID == picker.accountID else {
                return refuse(invite, 403, "Pickup Target In Another Account")
            }
            guard line.group == picker.group else { return refuse(invite, 403, "Pickup Target In Another Group") }
            guard !replaces.earlyOnly || call.isRinging else { return refuse(invite, 486, "Call Already Answered") }
            target = call.isRinging ? call : nil
        }
        guard var call = target else { return refuse(invite, 480, "Nothing Ringing") }
        let actions = call.pickUp(by: invite)
        if call.picker != nil {
            index(call.dialogKeys, invite: invite.transaction, of: call.id)
        }
        return store(call, actions)
    }

    private mutating func refuse(_ invite: CallStateMachine.IncomingInvite, _ status: Int, _ reason: String) -> [Action]
    {
        let response = CallStateMachine.reply(to: invite.request, status, reason, toTag: identifiers.make())
        return [Action(callID: "", action: .respond(response, to: invite.transaction))]
    }

    // MARK: Messages for existing calls

    /// A CANCEL for the INVITE server transaction `invite` (the driver answered the CANCEL
    /// itself). `nil` when no call of ours has that INVITE.
    public mutating func receivedCancel(forInvite invite: TransactionKey) -> [Action]? {
        guard let id = callIDsByInvite[invite], var call = calls[id] else { return nil }
        if let picker = call.picker, picker.invite.transaction == invite {
            let actions = call.pickerCancelled()
            return store(call, actions)
        }
        let actions = call.callerCancelled()
        return store(call, actions)
    }

    /// A response to a request we sent with `branch`.
    public mutating func receivedResponse(_ response: SIPResponse, branch: String) -> [Action] {
        guard let id = callIDsByBranch[branch], var call = calls[id] else { return [] }
        let actions = call.receivedResponse(response, branch: branch)
        return store(call, actions)
    }

    /// The request we sent with `branch` timed out (408) or could not be sent (503).
    public mutating func requestFailed(branch: String, status: Int) -> [Action] {
        guard let id = callIDsByBranch[branch], var call = calls[id] else { return [] }
        let actions = call.requestFailed(branch: branch, status: status)
        return store(call, actions)
    }

    /// An in-dialog request (not ACK or CANCEL). `nil` when it names no dialog of ours (the
    /// driver answers 481).
    public mutating func receivedRequest(_ request: SIPRequest, transaction: TransactionKey) -> [Action]? {
        guard let (id, side) = lookUp(request), var call = calls[id] else { return nil }
        let actions = call.receivedRequest(request, transaction: transaction, from: side)
        return store(call, actions)
    }

    /// An ACK for a 2xx (the transaction layer passes those up, RFC 6026).
    public mutating func receivedACK(_ ack: SIPRequest) -> [Action] {
        guard let (id, side) = lookUp(ack), var call = calls[id] else { return [] }
        let actions = call.receivedACK(ack, from: side)
        return store(call, actions)
    }

    public mutating func timerFired(_ timer: CallTimer, callID: String) -> [Action] {
        guard var call = calls[callID] else { return [] }
        let actions = call.timerFired(timer)
        return store(call, actions)
    }

    private func lookUp(_ request: SIPRequest) -> (String, CallStateMachine.Side)? {
        guard let callID = request.callID, let localTag = request.to?.tag,
            let id = callIDsByDialog[CallDialogKey(callID: callID, localTag: localTag)],
            let side = calls[id]?.side(of: request)
        else { return nil }
        return (id, side)
    }

    // MARK: Bookkeeping

    private mutating func index(_ dialogs: [CallDialogKey], invite: TransactionKey, of id: String) {
        for key in dialogs {
            callIDsByDialog[key] = id
            indexed[id, default: ([], [], [])].dialogs.insert(key)
        }
        callIDsByInvite[invite] = id
        indexed[id, default: ([], [], [])].invites.insert(invite)
    }

    /// Keeps `call` (or forgets it once ended) and indexes the branches its actions send with.
    private mutating func store(_ call: CallStateMachine, _ actions: [CallAction]) -> [Action] {
        let id = call.id
        for case .send(_, let branch, _) in actions {
            callIDsByBranch[branch] = id
            indexed[id, default: ([], [], [])].branches.insert(branch)
        }
        if actions.contains(.ended) {
            calls[id] = nil
            if let entries = indexed.removeValue(forKey: id) {
                for branch in entries.branches { callIDsByBranch[branch] = nil }
                for key in entries.dialogs { callIDsByDialog[key] = nil }
                for invite in entries.invites { callIDsByInvite[invite] = nil }
            }
            callIDsByCalleeCallID[call.calleeCallID] = nil
        } else {
            calls[id] = call
        }
        return actions.map { Action(callID: id, action: $0) }
    }
}

/// RFC 3891 §6.1: `Replaces: call-id;to-tag=…;from-tag=…[;early-only]`.
public struct Replaces: Sendable, Hashable {
    public var callID: String
    public var toTag: String?
    public var fromTag: String?
    public var earlyOnly: Bool

    /// The tags given, in either order: phones differ on which of the NOTIFY's local and remote
    /// tag they put in `to-tag` (RFC 4235 names them from the watched line's side).
    var tags: [String] { [toTag, fromTag].compactMap { $0 }.filter { !$0.isEmpty } }

    public init?(_ value: String) {
        let parts = value.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let callID = parts.first, !callID.isEmpty else { return nil }
        self.callID = callID
        var toTag: String?
        var fromTag: String?
        var earlyOnly = false
        for part in parts.dropFirst() {
            // `to-tag=` with nothing after it is kept as an empty tag: a phone that found no
            // local-tag in a ringing NOTIFY sends it so, and the Call-ID still names the call.
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            switch pair.first?.lowercased() {
            case "to-tag": toTag = pair.count == 2 ? pair[1] : nil
            case "from-tag": fromTag = pair.count == 2 ? pair[1] : nil
            case "early-only": earlyOnly = true
            default: continue
            }
        }
        // RFC 3891 §6.1: both tag parameters are mandatory (an empty value is tolerated above).
        guard toTag != nil, fromTag != nil else { return nil }
        self.toTag = toTag
        self.fromTag = fromTag
        self.earlyOnly = earlyOnly
    }
}
