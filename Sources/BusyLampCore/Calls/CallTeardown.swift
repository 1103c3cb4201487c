import Foundation
import SIPCore
import SIPTransactions

/// The messages that end a call a crash interrupted (issue 9: a call that was ringing or
/// answered when the server died must "end cleanly (BYE to both sides, lamps back to idle),
/// never a lamp stuck red nor a phone left talking to nobody").
///
/// BusyLamp does not carry a call across a restart. The media never passed through it, but the
/// call's transactions, timers and pickup state did, and rebuilding those from disk would be a
/// second call machine. Instead the line owner keeps, for every call in progress, the few
/// messages that would end it, rewritten as the call moves on (``CallStateMachine/teardown``);
/// the next start sends them and forgets the call. The lamps need nothing more: a restarted
/// server knows no call, so every line is idle, and the restored subscriptions' NOTIFYs say so.
///
/// | the call was | its caller (and a waiting picker) gets | each callee phone gets |
/// |---|---|---|
/// | ringing | `480` to its INVITE, retransmitted until the ACK | CANCEL (then our ACK for its 487) |
/// | answered, talking | BYE in its dialog | ACK if its 2xx had none yet, then BYE |
public struct CallTeardown: Sendable, Hashable {
    public enum Step: Sendable, Hashable {
        /// A final response to an INVITE not yet answered finally (a ringing caller, a picker
        /// still waiting): sent in a new server transaction for `invite`, so that it is
        /// retransmitted until the ACK (RFC 3261 §17.2.1).
        case answer(invite: SIPRequest, from: SIPPeer, status: Int, reason: String, toTag: String)
        /// A request of ours in a dialog (a BYE, or the ACK an answered fork's 2xx still waits
        /// for), sent with a new branch.
        case request(SIPRequest, to: SIPPeer)
        /// A CANCEL for a fork still ringing, carrying the fork INVITE's branch (RFC 3261 §9.1).
        /// Its 487 then needs our ACK (§17.1.1.3), which is built from `invite`.
        case cancel(SIPRequest, invite: SIPRequest, branch: String, to: SIPPeer)
    }

    /// The call's id (``CallStateMachine/id``): the record is rewritten under it as the call
    /// changes, and removed when it ends.
    public var callID: String
    public var steps: [Step]

    public init(callID: String, steps: [Step]) {
        self.callID = callID
        self.steps = steps
    }

    /// What a ringing caller is told: the call is gone, and trying again will work.
    public static let abandonedStatus = 480
    public static let abandonedReason = "Call Lost In A Server Restart"
    /// How far a teardown's BYE skips ahead in its dialog's CSeq numbers: the requests relayed
    /// after the record was last written used some (a phone answers a lower CSeq with 500,
    /// RFC 3261 §12.2.2), as a restored subscription's NOTIFYs jump.
    public static let sequenceMargin: UInt32 = 100
}

extension CallStateMachine {
    /// The messages that end this call if the server dies now (``CallTeardown``). Built on a
    /// copy: the call itself is left exactly as it is.
    public var teardown: CallTeardown {
        guard !isEnded else { return CallTeardown(callID: id, steps: []) }
        var copy = self
        var steps = copy.serverLegTeardown(.caller) + copy.serverLegTeardown(.picker)
        for index in forks.indices { steps += copy.forkTeardown(index) }
        return CallTeardown(callID: id, steps: steps)
    }

    /// A leg we answer: its INVITE's final response if it has none yet, else a BYE when the
    /// final response made a dialog (a 2xx).
    private mutating func serverLegTeardown(_ side: Side) -> [CallTeardown.Step] {
        guard let leg = side == .picker ? picker : caller else { return [] }
        guard let status = leg.finalStatus else {
            return [
                .answer(
                    invite: leg.invite.request,
                    from: leg.invite.peer,
                    status: CallTeardown.abandonedStatus,
                    reason: CallTeardown.abandonedReason,
                    toTag: leg.localTag
                )
            ]
        }
        return (200..<300).contains(status) ? teardownBYE(side) : []
    }

    private mutating func forkTeardown(_ index: Int) -> [CallTeardown.Step] {
        let fork = forks[index]
        switch fork.state {
        case .calling, .proceeding:
            // RFC 3261 §9.1 holds a CANCEL until a provisional arrives, so that it cannot
            // overtake its INVITE; after a restart the INVITE is long delivered.
            return [
                .cancel(
                    Self.cancelRequest(for: fork.invite),
                    invite: fork.invite,
                    branch: fork.branch,
                    to: fork.destination.peer
                )
            ]
        case .answered:
            var steps: [CallTeardown.Step] = []
            if fork.acknowledgement == nil, var dialog = fork.dialog {
                steps.append(.request(Self.acknowledgement(in: &dialog), to: fork.destination.peer))
            }
            return steps + teardownBYE(.callee(index))
        case .ended:
            return []
        }
    }

    private mutating func teardownBYE(_ side: Side) -> [CallTeardown.Step] {
        guard var dialog = dialog(of: side), dialog.remoteTag != nil else { return [] }
        let current = dialog.localSequenceNumber ?? Dialog.initialLocalSequenceNumber
        let (jumped, overflow) = current.addingReportingOverflow(CallTeardown.sequenceMargin)
        dialog.jumpLocalSequenceNumber(to: overflow ? .max : jumped)
        let bye = dialog.makeRequest(method: .bye)
        setDialog(dialog, of: side)
        return [.request(bye, to: peer(of: side))]
    }
}
