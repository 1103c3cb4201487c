import BusyLampCore
import Foundation
import NIOCore
import SIPCore
import SIPTransactions
import SIPTransportNIO

/// Calls: INVITEs are identified (a trunk by its address, a line by digest with 407), routed
/// (``CallRouting``), and carried by the B2BUA (``B2BUAStateMachine``); its actions are carried
/// out here, and every line dialog it reports feeds the notifier, so the lamps follow the calls.
extension SIPShard {
    // MARK: Requests

    func handleInvite(_ request: SIPRequest, key: TransactionKey, flow: SIPFlow) {
        if request.to?.tag != nil {
            return handleInDialogRequest(request, key: key)
        }
        let peer = SIPPeer(flow)
        let caller: CallRouting.Caller
        let party: CallStateMachine.Party
        if let trunk = directory.trunk(from: peer) {
            caller = .trunk(trunk)
            var identity = request.from ?? NameAddress(uri: request.uri)
            identity.tag = nil
            party = CallStateMachine.Party(line: nil, identity: identity)
        } else {
            // RFC 3261 §22.3: a proxy-like server challenges with 407 and Proxy-Authenticate.
            guard let line = authenticatedLine(request, key: key, as: .proxy) else { return }
            caller = .line(line)
            party = CallStateMachine.Party(line: line, identity: line.identity(domain: directory.platform.domain))
        }
        let invite = CallStateMachine.IncomingInvite(request: request, transaction: key, peer: peer, party: party)
        if let replaces = request.headers[.replaces] {
            guard let parsed = Replaces(replaces) else {
                return respond(to: request, key: key, status: 400, reason: "Malformed Replaces")
            }
            metrics.pickups.increment("replaces")
            return execute(b2bua.pickUp(.replaces(parsed), by: invite))
        }
        let routing = CallRouting(directory: directory)
        switch routing.route(request.uri, from: caller, isLocalHost: { self.isLocal(host: $0) }) {
        case .failure(let refusal):
            countRefusal("INVITE", reason: refusal.code.snakeCase)
            if case .line(let line) = caller {
                recordRefusal(
                    request,
                    from: peer,
                    line: line,
                    status: refusal.statusCode,
                    reason: refusal.reasonPhrase,
                    code: refusal.code.snakeCase
                )
            }
            logger.debug(
                "INVITE refused",
                metadata: [
                    LogKey.callID: "\(request.callID ?? "-")", LogKey.uri: "\(request.uri)",
                    LogKey.reason: "\(refusal.reasonPhrase)",
                ]
            )
            respond(to: request, key: key, status: refusal.statusCode, reason: refusal.reasonPhrase)
        case .success(.line(let line)):
            metrics.callsStarted.increment("line")
            logger.debug(
                "Call to a line",
                metadata: [LogKey.callID: "\(request.callID ?? "-")", LogKey.line: "\(line.number)"]
            )
            let destinations = currentBindings(number: line.number).compactMap { binding in
                SIPURI(binding.contact).map { CallStateMachine.Destination(requestURI: $0, peer: binding.source) }
            }
            execute(
                b2bua.placeCall(
                    caller: invite,
                    calleeLine: line,
                    calleeIdentity: line.identity(domain: directory.platform.domain),
                    destinations: destinations,
                    now: Date()
                )
            )
        case .success(.trunk(let trunk, let number)):
            metrics.callsStarted.increment("trunk")
            logger.debug(
                "Call to the trunk",
                metadata: [LogKey.callID: "\(request.callID ?? "-")", LogKey.trunk: "\(trunk.name)"]
            )
            let host = trunk.host.contains(":") ? "[\(trunk.host)]" : trunk.host
            var uri = SIPURI(scheme: "sip", user: number, host: host, port: trunk.port)
            if trunk.transport == .tcp { uri.parameters.set("transport", "tcp") }
            let peer = SIPPeer(
                transport: trunk.transport == .tcp ? .tcp : .udp,
                host: trunk.host,
                port: trunk.port
            )
            execute(
                b2bua.placeCall(
                    caller: invite,
                    calleeLine: nil,
                    calleeIdentity: NameAddress(uri: uri),
                    destinations: [CallStateMachine.Destination(requestURI: uri, peer: peer)],
                    now: Date()
                )
            )
        case .success(.directedPickup(let target)):
            metrics.pickups.increment("directed")
            execute(b2bua.pickUp(.directed(target: target), by: invite))
        case .success(.groupPickup(let accountID, let group)):
            metrics.pickups.increment("group")
            execute(b2bua.pickUp(.group(accountID: accountID, group: group), by: invite))
        }
    }

    /// BYE, re-INVITE, UPDATE, INFO, PRACK… in a call's dialog; 481 when it names none
    /// (RFC 3261 §12.2.2).
    func handleInDialogRequest(_ request: SIPRequest, key: TransactionKey) {
        guard let actions = b2bua.receivedRequest(request, transaction: key) else {
            return respond(to: request, key: key, status: 481, reason: "Call/Transaction Does Not Exist")
        }
        execute(actions)
    }

    /// RFC 3261 §9.2: CANCEL is answered 200 when it matches an INVITE of ours (and the INVITE
    /// then gets 487 from its call), 481 otherwise.
    func handleCancel(_ request: SIPRequest, key: TransactionKey) {
        guard let invite = transactions.inviteTransaction(forCancel: request),
            let actions = b2bua.receivedCancel(forInvite: invite)
        else {
            return respond(to: request, key: key, status: 481)
        }
        respond(to: request, key: key, status: 200)
        execute(actions)
    }

    /// The ACK for a 2xx belongs to a call's dialog.
    func handleACK(_ ack: SIPRequest) {
        execute(b2bua.receivedACK(ack))
    }

    // MARK: Responses and failures of our requests

    /// A response to a request a call sent; `false` when the transaction is not a call's.
    func callResponseArrived(_ response: SIPResponse, key: TransactionKey) -> Bool {
        guard let branch = callTransactions[key] else { return false }
        execute(b2bua.receivedResponse(response, branch: branch))
        return true
    }

    func callRequestFailed(key: TransactionKey, status: Int) {
        guard let branch = callTransactions.removeValue(forKey: key) else { return }
        execute(b2bua.requestFailed(branch: branch, status: status))
    }

    // MARK: Actions

    func execute(_ actions: [B2BUAStateMachine.Action]) {
        // Every call the actions belong to moved on: its teardown is rewritten.
        if let callID = actions.first?.callID { callChanged(callID) }
        for action in actions {
            switch action.action {
            case .respond(let response, let key):
                sendCallResponse(response, for: key)
            case .send(let request, let branch, let peer):
                sendCallRequest(request, branch: branch, to: peer)
            case .startTimer(let timer, let duration):
                timers.arm(timer, forCall: action.callID, after: duration)
            case .cancelTimer(let timer):
                timers.cancel(timer, forCall: action.callID)
            case .lineChanged(let number, let dialog):
                changeLine(number, now: Date()) { $0.apply(dialog) }
            case .ended:
                metrics.callsEnded.increment()
                logger.debug("Call ended", metadata: [LogKey.callID: "\(action.callID)"])
                timers.cancelAll(forCall: action.callID)
            }
        }
    }

    /// RFC 3261 §12.1.1: a 101–299 answer to INVITE (or another target refresh request)
    /// carries our Contact, the remote target of the dialog it makes or refreshes.
    private func sendCallResponse(_ response: SIPResponse, for key: TransactionKey) {
        var response = response
        if (101..<300).contains(response.statusCode),
            let method = response.cseq?.method, Dialog.targetRefreshMethods.contains(method),
            !response.headers.contains(.contact), let flow = inboundFlows[key]
        {
            response.headers.add(.contact, "<\(localURI(for: flow))>")
        }
        response.headers.add(.server, configuration.serverName)
        execute(transactions.sendResponse(response, for: key), flow: inboundFlows[key])
    }

    private func sendCallRequest(_ request: SIPRequest, branch: String, to peer: SIPPeer) {
        guard let flow = flow(to: peer, like: nil) else {
            return execute(b2bua.requestFailed(branch: branch, status: 503))
        }
        let actions = startRequest(request, branch: branch, to: peer, over: flow)
        for case .transaction(let key, _, _) in actions where request.method != .ack {
            callTransactions[key] = branch
        }
        for case .refused(_, let reason) in actions {
            metrics.callRequestsRefused.increment("\(reason)")
            return execute(b2bua.requestFailed(branch: branch, status: 503))
        }
        execute(actions, flow: flow)
    }
}

/// One timer of one call.
// MARK: - The demo's simulated calls

extension SIPShard {
    /// Shows `dialog` on the lamps of line `number` as if a call had reported it, for
    /// `busylamp demo`'s simulated calls, so that a newcomer sees lamps change before any phone
    /// calls. The dialog is applied when the line has no live registration, or when every live
    /// registration's `User-Agent` is `simulatedUserAgent` (the demo's own simulated phones,
    /// which place no calls). A line with any other phone registered is left alone: its real
    /// calls speak for it. A `terminated` dialog is always applied, so that a simulated call
    /// never stays on a lamp. Returns `false` when the line was left alone.
    func simulate(
        _ dialog: LineDialog,
        onLine number: String,
        simulatedUserAgent: String? = nil
    ) async -> Bool {
        (try? await eventLoop.submit { [self] () -> Bool in
            let onlySimulatedPhones = currentBindings(number: number).allSatisfy {
                simulatedUserAgent != nil && $0.userAgent == simulatedUserAgent
            }
            guard onlySimulatedPhones || dialog.state == .terminated else { return false }
            changeLine(number, now: Date()) { $0.apply(dialog) }
            return true
        }.get()) ?? false
    }
}
