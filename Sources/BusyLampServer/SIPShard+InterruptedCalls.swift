import BusyLampCore
import Foundation
import NIOCore
import SIPCore
import SIPTransactions
import SIPTransportNIO

/// Calls a crash interrupts end cleanly at the next start (issue 9, ``CallTeardown``).
///
/// While a call runs, the line owner keeps its teardown in the store: each call whose state
/// changed is rewritten at most `callWriteDelay` later (one transaction for all of them), and
/// removed when it ends. The next start sends every stored teardown (480 to a ringing caller,
/// CANCEL to a ringing phone, BYE to both sides of an answered call) and removes them, so that
/// no phone keeps ringing or talking to nobody. The lamps need nothing: the restarted server
/// knows no call, and the restored subscriptions' NOTIFYs say idle.
extension SIPShard {
    // MARK: Keeping the teardowns

    /// A call's state changed: its teardown is written (or removed, once it ended) soon.
    func callChanged(_ callID: String) {
        guard !callID.isEmpty else { return }
        callsAwaitingTeardownWrite.insert(callID)
        guard !callTeardownWriteScheduled else { return }
        callTeardownWriteScheduled = true
        eventLoop.scheduleTask(in: configuration.callWriteDelay) { [self] in
            callTeardownWriteScheduled = false
            if !isStopped { writeCallTeardowns() }
        }
    }

    /// Writes the teardowns of the calls changed since the last write, in one transaction.
    /// Returns when the write is done (or failed, which is logged).
    @discardableResult
    func writeCallTeardowns() -> EventLoopFuture<Void> {
        guard !callsAwaitingTeardownWrite.isEmpty else { return eventLoop.makeSucceededVoidFuture() }
        var teardowns: [CallTeardown] = []
        var ended: [String] = []
        for callID in callsAwaitingTeardownWrite {
            if let teardown = b2bua.teardown(ofCall: callID), !teardown.steps.isEmpty {
                teardowns.append(teardown)
            } else {
                ended.append(callID)
            }
        }
        callsAwaitingTeardownWrite.removeAll(keepingCapacity: true)
        let store = callStore
        let (written, removed) = (teardowns, ended)
        let count = written.count + removed.count
        return storeThread.runIfActive(eventLoop: eventLoop) { try store.saveCallTeardowns(written, removing: removed) }
            .flatMapErrorWithEventLoop { [logger] error, eventLoop in
                logger.error(
                    "Call teardown write failed",
                    metadata: [LogKey.callCount: "\(count)", LogKey.error: "\(error)"]
                )
                return eventLoop.makeSucceededVoidFuture()
            }
    }

    // MARK: After a restart

    /// Sends every step of the calls the last process left unfinished, then forgets them.
    func endInterruptedCalls(_ teardowns: [CallTeardown]) async {
        guard !teardowns.isEmpty else { return }
        try? await eventLoop.flatSubmit { [self] in
            for teardown in teardowns {
                for step in teardown.steps { send(step) }
            }
            logger.notice(
                "Calls interrupted by the last stop were ended",
                metadata: [LogKey.callCount: "\(teardowns.count)"]
            )
            let callIDs = teardowns.map(\.callID)
            let store = callStore
            return storeThread.runIfActive(eventLoop: eventLoop) { try store.saveCallTeardowns([], removing: callIDs) }
        }.get()
    }

    private func send(_ step: CallTeardown.Step) {
        switch step {
        case .answer(let invite, let peer, let status, let reason, let toTag):
            // A server transaction of its own, as if the INVITE had just come: the final
            // response is retransmitted until the caller's ACK, which the transaction absorbs.
            guard let flow = flow(to: peer, like: nil), let key = TransactionKey(incoming: invite) else { return }
            let started = transactions.receivedRequest(invite, from: peer).filter { action in
                guard case .transaction(_, .deliverToTransactionUser, _) = action else { return true }
                return false
            }
            guard transactions.contains(key) else { return }
            inboundFlows[key] = flow
            execute(started, flow: flow)
            var response = SIPResponse(replyingTo: invite, statusCode: status, reasonPhrase: reason, toTag: toTag)
            response.headers.add(.server, configuration.serverName)
            execute(transactions.sendResponse(response, for: key), flow: flow)
        case .request(let request, let peer):
            guard let flow = flow(to: peer, like: nil) else { return }
            execute(startRequest(request, branch: Via.magicCookie + Self.makeTag(), to: peer, over: flow), flow: flow)
        case .cancel(let cancel, let invite, let branch, let peer):
            guard let flow = flow(to: peer, like: nil) else { return }
            interruptedForks[branch] = (invite, peer)
            execute(startRequest(cancel, branch: branch, to: peer, over: flow), flow: flow)
            // The fork's 487 comes within a transaction timeout, or never.
            eventLoop.scheduleTask(in: TimeAmount(configuration.timers.transactionTimeout)) { [self] in
                interruptedForks[branch] = nil
            }
        }
    }

    /// A response no transaction of ours matched. A fork a restart cancelled answers its
    /// INVITE, which this process never sent, with a final response: a 487 gets the ACK RFC 3261
    /// §17.1.1.3 builds from the INVITE (its Request-URI, Call-ID, From, CSeq number and top
    /// Via, with the response's To); a 2xx (the phone was answered as the CANCEL crossed it)
    /// gets an ACK and a BYE in the dialog it made. Anything else stays a stray response.
    /// Returns whether the response was one of those.
    func interruptedForkAnswered(_ response: SIPResponse) -> Bool {
        guard response.statusCode >= 200, response.cseq?.method == .invite,
            let branch = response.topVia?.branch, let (invite, forkPeer) = interruptedForks[branch],
            let flow = flow(to: forkPeer, like: nil)
        else { return false }
        if response.isSuccess {
            guard var dialog = Dialog(uacRequest: invite, response: response, sentOverTLS: forkPeer.transport == .tls)
            else { return true }
            interruptedForks[branch] = nil
            var ack = dialog.makeRequest(method: .ack)
            ack.headers.set(.cseq, CSeq(number: invite.cseq?.number ?? 1, method: .ack).description)
            let bye = dialog.makeRequest(method: .bye)
            execute(startRequest(ack, branch: Via.magicCookie + Self.makeTag(), to: forkPeer, over: flow), flow: flow)
            execute(startRequest(bye, branch: Via.magicCookie + Self.makeTag(), to: forkPeer, over: flow), flow: flow)
            return true
        }
        var headers = SIPHeaders()
        if let via = response.headers.values(.via).first { headers.add(.via, via) }
        for name in [SIPHeaderName.from, .to, .callID] {
            if let value = (name == .to ? response.headers : invite.headers)[name] { headers.add(name, value) }
        }
        headers.add(.cseq, CSeq(number: invite.cseq?.number ?? 1, method: .ack).description)
        headers.add(.maxForwards, "70")
        for route in invite.headers.values(.route) { headers.add(.route, route) }
        send(.request(SIPRequest(method: .ack, uri: invite.uri, headers: headers)), to: flow)
        // Kept until the timeout: a 487 retransmitted because our ACK was lost gets another.
        return true
    }
}
