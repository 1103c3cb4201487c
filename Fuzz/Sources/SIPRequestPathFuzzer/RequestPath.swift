import BusyLampCore
import Foundation
import SIPAuth
import SIPCore
import SIPTransactions

/// One server's request path, built from the sans-I/O machines in the order the driver
/// (`SIPShard` in BusyLampServer) runs them: the per-source rate limit, the stream framer and
/// the parser, the transaction layer, the request gate (``RequestGate``), digest with the
/// failed-authentication guard, then the registrar, subscription admission and the notifier,
/// call routing and the B2BUA. No sockets, no threads, no store: a clock that moves only when
/// the input says so, fixed randomness and counted identifiers, so that an input always does
/// the same and a crash replays.
///
/// What it checks, beyond "no crash, no leak, no hang":
/// - every message the server would send serializes and parses back (a phone can read it);
/// - a server transaction never sends two different final responses;
/// - a 2xx to REGISTER or SUBSCRIBE follows credentials that verified in that transaction;
/// - the transaction table stays within its cap.
/// A violation traps, so libFuzzer keeps the input as a crash.
///
/// The glue here is the driver's, without its I/O; where the two differ (no persistence, no
/// shards, no overload guard), the difference is only in what happens off the request path.
struct RequestPath {
    /// How one message arrives (``fuzzTestOneInput(_:_:)`` reads it from the input).
    struct Arrival {
        /// 1–3: UDP from 127.0.0.1–3; 0: TCP from 127.0.0.4.
        var source: Int
        var advanceSeconds: Int
        var signing: Signing
    }

    /// What ``signed(_:password:)`` puts in a request's credentials before it is handled.
    enum Signing {
        /// The credentials as they arrived.
        case asSent
        /// Valid ones: a phone with the right password.
        case rightPassword
        /// Well-formed ones for the newest nonce with a wrong password: a guesser.
        case wrongPassword
    }

    static let domain = "sip.busylamp.test"
    static let password = "fuzz-secret"
    static let directory = Directory(
        platform: PlatformSettings(domain: domain),
        accounts: [Account(id: "acme")],
        lines: ["201", "202", "203"].map { extensionNumber in
            let number = "6495550" + extensionNumber
            return Line(
                accountID: "acme",
                extensionNumber: extensionNumber,
                number: number,
                name: "Line \(extensionNumber)",
                credentials: Line.credentials(number: number, realm: domain, password: password)
            )
        }
    )

    /// Small caps, so that a short input reaches them.
    static let maximumTransactions = 6
    static let subscriptionLimits: SubscriptionAdmission.Limits = {
        var limits = SubscriptionAdmission.Limits()
        limits.watchersPerLine = 3
        limits.subscriptionsPerSource = 4
        return limits
    }()

    /// The wheel turns in steps of 100 ms: T1 is 500 ms.
    static let tick: Duration = .milliseconds(100)
    static let ticksPerSecond = 10
    /// Long enough for every transaction to end: Timer B/F/H/J are 32 s, a ring 60 s, and the
    /// longest chain (a call ringing out, its 480, Timer H) stays under this.
    static let quietSecondsBeforeTheEnd = 200

    private let parser = SIPParser()
    private var sourceRates: SourceRateLimiter<String> = {
        var settings = SourceRateLimiter<String>.Settings()
        settings.requestsPerSecond = 5
        settings.burst = 20
        settings.maximumTrackedSources = 2
        return SourceRateLimiter(settings: settings)
    }()
    private var transactions = TransactionLayer(maximumTransactionCount: maximumTransactions)
    private let gate = RequestGate(
        capabilities: .blfAndCalls,
        localHosts: [domain, "127.0.0.1", "localhost"]
    )
    private var authenticator = DigestAuthenticator(realm: domain, secret: Array(repeating: 7, count: 32))
    private var failedAuthentications: FailedAuthenticationGuard = {
        var settings = FailedAuthenticationGuard.Settings()
        settings.failuresBeforeLockout = 3
        settings.failingUsersPerAddress = 2
        settings.window = 60
        settings.lockoutDuration = 30
        settings.maximumTrackedAddresses = 2
        settings.maximumTrustedPairs = 4
        return FailedAuthenticationGuard(settings: settings)
    }()
    private let registrar = Registrar(settings: .init(minimumExpires: 60, maximumExpires: 3600))
    private var bindings: [String: [Binding]] = [:]
    private var notifier = NotifierStateMachine(directory: directory)
    private var b2bua: B2BUAStateMachine = {
        var settings = CallStateMachine.Settings()
        settings.maximumCalls = 4
        return B2BUAStateMachine(settings: settings, identifiers: .sequential(prefix: "c"))
    }()

    private enum PathTimer: Hashable {
        case transaction(TransactionKey, TransactionTimer)
        case call(String, CallTimer)
    }
    private var wheel = TimingWheel<PathTimer>(slotCount: 1024)
    private var armed: [PathTimer: TimingWheel<PathTimer>.Handle] = [:]
    private var currentTick: UInt64 = 0
    private var now = Date(timeIntervalSince1970: 1_800_000_000)
    private var random = SplitMix64(seed: 0x5EED)
    private var identifierCounter = 0
    /// The nonce of the newest challenge, which ``signed(_:)`` answers.
    private var latestNonce: String?
    private var tcpFramer = SIPStreamFramer()

    private var inboundPeers: [TransactionKey: SIPPeer] = [:]
    private var notifyTransactions: [TransactionKey: String] = [:]
    private var callTransactions: [TransactionKey: String] = [:]
    private var authenticatedTransactions: Set<TransactionKey> = []
    private var finalResponses: [TransactionKey: [UInt8]] = [:]
    /// The tick at which the layer first named each transaction, to find one that outlives its
    /// timers.
    private var transactionStarts: [TransactionKey: UInt64] = [:]

    // MARK: Input

    mutating func receive(_ bytes: [UInt8], arrival: Arrival) {
        advance(seconds: arrival.advanceSeconds)
        let peer = Self.peer(source: arrival.source)
        guard peer.transport == .tcp else {
            return received(bytes, framing: .datagram, from: peer, signing: arrival.signing)
        }
        tcpFramer.append(bytes)
        while true {
            let frame: SIPStreamFramer.Frame?
            do {
                frame = try tcpFramer.next()
            } catch {
                // The driver answers what it can and closes the connection: a new one starts clean.
                tcpFramer = SIPStreamFramer()
                return
            }
            guard case .message(let message)? = frame else {
                if frame == nil { return }
                continue
            }
            received(message, framing: .stream, from: peer, signing: arrival.signing)
        }
    }

    /// Lets the clock run on, so that every timer armed by the input fires, then checks that
    /// no transaction outlived its timers. The table need not be empty: a subscription or a
    /// binding that runs out during the quiet starts a NOTIFY then. But RFC 3261's timers end a
    /// transaction within 64·T1 of its last message, and an INVITE waits at most the ring
    /// timeout for its answer, then 64·T1 for the CANCEL and 64·T1 for the ACK: one that began
    /// more than ``longestTransactionSeconds`` ago is stuck.
    mutating func finish() {
        advance(seconds: Self.quietSecondsBeforeTheEnd)
        let stuck = transactionStarts.filter { key, startTick in
            transactions.contains(key)
                && currentTick - startTick > UInt64(Self.longestTransactionSeconds * Self.ticksPerSecond)
        }
        require(
            stuck.isEmpty,
            "transactions older than \(Self.longestTransactionSeconds) s still running: "
                + stuck.keys.map { key in
                    "\(key) (\(transactions.request(for: key).map { "\($0.method) \($0.uri)" } ?? "no request"))"
                }.joined(separator: ", ")
        )
    }

    /// The ring timeout (60 s) and twice 64·T1 (32 s), with a margin.
    static let longestTransactionSeconds = 150

    private static func peer(source: Int) -> SIPPeer {
        source == 0
            ? SIPPeer(transport: .tcp, host: "127.0.0.4", port: 5060, connectionID: 1)
            : SIPPeer(transport: .udp, host: "127.0.0.\(source)", port: 5060)
    }

    private mutating func received(_ bytes: [UInt8], framing: SIPFraming, from peer: SIPPeer, signing: Signing) {
        if !bytes.starts(with: Array("SIP/".utf8)) {
            guard case .admitted = sourceRates.admit(peer.host, now: nanoseconds) else { return }
        }
        let message: SIPMessage
        do {
            message = try parser.parse(bytes, framing: framing)
        } catch {
            if let response = error.makeResponse(toTag: makeIdentifier("t")) {
                require((400..<600).contains(response.statusCode), "a parse error answered \(response.statusCode)")
                send(.response(response), to: peer, answering: error)
            }
            return
        }
        switch message {
        case .request(var request):
            request.stampReceived(from: peer)
            switch signing {
            case .asSent: break
            case .rightPassword: request = signed(request, password: Self.password)
            case .wrongPassword: request = signed(request, password: "guess")
            }
            let key = TransactionKey(incoming: request)
            if key != nil, request.method == .subscribe || request.method == .register,
                request.headers[.authorization] == nil, gate.refusal(of: request) == nil
            {
                // The driver's stateless 401 for a first REGISTER or SUBSCRIBE.
                return send(.response(challengeResponse(to: request, role: .userAgentServer, stale: false)), to: peer)
            }
            let actions = transactions.receivedRequest(request, from: peer)
            require(transactions.count <= Self.maximumTransactions, "the transaction table passed its cap")
            if let key, inboundPeers[key] == nil, transactions.contains(key) { inboundPeers[key] = peer }
            execute(actions, peer: peer)
        case .response(let response):
            execute(transactions.receivedResponse(response, from: peer), peer: peer)
        }
    }

    // MARK: The clock

    private var nanoseconds: UInt64 { currentTick * 100_000_000 }

    private mutating func advance(seconds: Int) {
        for step in 0..<(seconds * Self.ticksPerSecond) {
            currentTick += 1
            now = now.addingTimeInterval(0.1)
            for (handle, timer) in wheel.advance(to: currentTick) where armed[timer] == handle {
                armed[timer] = nil
                fire(timer)
            }
            if step % Self.ticksPerSecond == Self.ticksPerSecond - 1 { sweepEverySecond() }
        }
    }

    private mutating func fire(_ timer: PathTimer) {
        switch timer {
        case .transaction(let key, let kind):
            execute(transactions.timerFired(kind, for: key), peer: nil)
        case .call(let callID, let kind):
            execute(b2bua.timerFired(kind, callID: callID))
        }
    }

    private mutating func arm(_ timer: PathTimer, after duration: Duration) {
        if let old = armed[timer] { wheel.cancel(old) }
        let ticks = UInt64(max(1, (duration / Self.tick).rounded(.up)))
        armed[timer] = wheel.schedule(timer, afterTicks: ticks)
    }

    private mutating func cancel(_ timer: PathTimer) {
        if let handle = armed.removeValue(forKey: timer) { wheel.cancel(handle) }
    }

    /// What the driver does once a second: subscriptions expire, bindings lapse.
    private mutating func sweepEverySecond() {
        execute(notifier.expire(now: now))
        for (aor, lineBindings) in bindings where lineBindings.contains(where: { $0.expiresAt <= now }) {
            let live = lineBindings.filter { $0.expiresAt > now }
            bindings[aor] = live.isEmpty ? nil : live
            execute(notifier.updateLine(aor, now: now) { _ = $0.setRegistered(!live.isEmpty) })
        }
    }

    // MARK: Transaction layer actions

    private mutating func execute(_ actions: [TransactionLayer.Action], peer: SIPPeer?) {
        for action in actions {
            switch action {
            case .transaction(let key, let transactionAction, let transactionPeer):
                execute(transactionAction, key: key, peer: peer ?? inboundPeers[key] ?? transactionPeer)
            case .deliverACK(let ack, _):
                execute(b2bua.receivedACK(ack))
            case .rejectWithServiceUnavailable(let request, let from):
                let response = makeResponse(
                    to: request,
                    status: 503,
                    headers: [SIPHeaders.Field(name: .retryAfter, value: "5")]
                )
                send(.response(response), to: from)
            case .sendWithoutTransaction(let request, let to):
                send(.request(request), to: to)
            case .discardStrayResponse, .discardUnmatchable, .refused, .unknownTransaction:
                break
            }
        }
    }

    private mutating func execute(_ action: TransactionAction, key: TransactionKey, peer: SIPPeer) {
        if transactionStarts[key] == nil { transactionStarts[key] = currentTick }
        switch action {
        case .send(let message):
            if case .response(let response) = message { checkResponse(response, key: key) }
            send(message, to: peer)
        case .deliverToTransactionUser(.request(let request)):
            handleRequest(request, key: key, peer: peer)
        case .deliverToTransactionUser(.response(let response)):
            if let branch = callTransactions[key] {
                execute(b2bua.receivedResponse(response, branch: branch))
            } else if let subscriptionID = notifyTransactions[key], response.statusCode >= 200 {
                notifyTransactions[key] = nil
                execute(
                    notifier.notifyAnswered(subscriptionID: subscriptionID, statusCode: response.statusCode, now: now)
                )
            }
        case .startTimer(let timer, let duration):
            arm(.transaction(key, timer), after: duration)
        case .cancelTimer(let timer):
            cancel(.transaction(key, timer))
        case .timeout, .transportError:
            if let branch = callTransactions.removeValue(forKey: key) {
                execute(b2bua.requestFailed(branch: branch, status: action == .timeout ? 408 : 503))
            }
            if let subscriptionID = notifyTransactions.removeValue(forKey: key) {
                execute(notifier.notifyFailed(subscriptionID: subscriptionID, now: now))
            }
        case .terminated:
            transactionStarts[key] = nil
            inboundPeers[key] = nil
            notifyTransactions[key] = nil
            callTransactions[key] = nil
            authenticatedTransactions.remove(key)
            finalResponses[key] = nil
            for timer in TransactionTimer.allCases { cancel(.transaction(key, timer)) }
        }
    }

    /// RFC 3261 §17.2: a server transaction's final response, once sent, is the one it repeats.
    /// A 2xx to REGISTER or SUBSCRIBE promises the credentials verified.
    private mutating func checkResponse(_ response: SIPResponse, key: TransactionKey) {
        require((100..<700).contains(response.statusCode), "a response with status \(response.statusCode)")
        if (200..<300).contains(response.statusCode), let method = response.cseq?.method,
            method == .register || method == .subscribe
        {
            require(authenticatedTransactions.contains(key), "a 2xx to \(method) that did not authenticate")
        }
        guard response.statusCode >= 200 else { return }
        let bytes = SIPMessage.response(response).serializedBytes
        if let first = finalResponses[key] {
            require(first == bytes, "a transaction sent a second, different final response")
        } else {
            finalResponses[key] = bytes
        }
    }

    // MARK: Requests

    private mutating func handleRequest(_ request: SIPRequest, key: TransactionKey, peer: SIPPeer) {
        if let refusal = gate.refusal(of: request) {
            return respond(
                to: request,
                key: key,
                status: refusal.status,
                reason: refusal.reason,
                headers: refusal.headers,
                includeCapabilities: refusal.includeCapabilities
            )
        }
        switch request.method {
        case .options:
            respond(to: request, key: key, status: 200, includeCapabilities: true)
        case .register:
            handleRegister(request, key: key, peer: peer)
        case .subscribe:
            handleSubscribe(request, key: key, peer: peer)
        case .invite:
            handleInvite(request, key: key, peer: peer)
        case .cancel:
            guard let invite = transactions.inviteTransaction(forCancel: request),
                let actions = b2bua.receivedCancel(forInvite: invite)
            else {
                return respond(to: request, key: key, status: 481)
            }
            respond(to: request, key: key, status: 200)
            execute(actions)
        case _ where request.to?.tag != nil:
            inDialog(request, key: key)
        default:
            respond(to: request, key: key, status: 405, includeCapabilities: true)
        }
    }

    private mutating func handleRegister(_ request: SIPRequest, key: TransactionKey, peer: SIPPeer) {
        guard let line = authenticatedLine(request, key: key, peer: peer, role: .userAgentServer) else { return }
        guard let toURI = request.to?.uri, gate.isLocal(host: toURI.hostWithoutBrackets),
            toURI.user == line.number || toURI.user == line.extensionNumber
        else {
            return respond(to: request, key: key, status: 403, reason: "Not Your Address Of Record")
        }
        let aor = line.number
        switch registrar.decide(register: request, aor: aor, existing: bindings[aor] ?? [], source: peer, now: now) {
        case .reject(let status, let reason, let headers):
            respond(to: request, key: key, status: status, reason: reason, headers: headers)
        case .apply(_, _, let result):
            var response = registrar.okResponse(to: request, bindings: result, now: now, toTag: makeIdentifier("t"))
            response.headers.add(.server, "BusyLamp")
            execute(transactions.sendResponse(response, for: key), peer: peer)
            let live = result.filter { $0.expiresAt > now }
            bindings[aor] = live.isEmpty ? nil : live
            execute(notifier.updateLine(aor, now: now) { _ = $0.setRegistered(!live.isEmpty) })
        }
    }

    private mutating func handleSubscribe(_ request: SIPRequest, key: TransactionKey, peer: SIPPeer) {
        guard let watcher = authenticatedLine(request, key: key, peer: peer, role: .userAgentServer) else { return }
        let admission = SubscriptionAdmission(directory: Self.directory)
        let registered = bindings
        let registeredSourceHosts: (String) -> [String] = { registered[$0]?.map(\.source.host) ?? [] }

        if let localTag = request.to?.tag, let callID = request.callID {
            let id = Subscription.id(callID: callID, localTag: localTag)
            guard let subscription = notifier.subscription(id: id) else {
                return respond(to: request, key: key, status: 481, reason: "Subscription Does Not Exist")
            }
            guard subscription.watcherNumber == watcher.number else {
                return respond(to: request, key: key, status: 403, reason: "Not Your Subscription")
            }
            switch admission.admitRefresh(
                request,
                subscription: subscription,
                watcher: watcher,
                source: peer,
                registeredSourceHosts: registeredSourceHosts,
                jitter: { _ in 0 }
            ) {
            case .failure(let refusal):
                refuse(request, key: key, refusal)
            case .success(let accepted):
                let response = acceptance(of: request, expires: accepted.grantedExpires)
                execute(transactions.sendResponse(response, for: key), peer: peer)
                if accepted.grantedExpires == 0 {
                    execute(notifier.unsubscribe(id: id, now: now))
                } else {
                    let expiresAt = now.addingTimeInterval(TimeInterval(accepted.grantedExpires))
                    execute(notifier.refresh(id: id, expiresAt: expiresAt, now: now) ?? [])
                }
            }
            return
        }

        let accepted: SubscriptionAdmission.Accepted
        switch admission.admit(
            request,
            watcher: watcher,
            source: peer,
            isLocalHost: { [gate] in gate.isLocal(host: $0) },
            registeredSourceHosts: registeredSourceHosts,
            jitter: { _ in 0 }
        ) {
        case .failure(let refusal):
            return refuse(request, key: key, refusal)
        case .success(let value):
            accepted = value
        }
        if accepted.grantedExpires > 0,
            let refusal = SubscriptionAdmission.capacityRefusal(
                watchersOfTarget: notifier.watcherCount(ofLine: accepted.target.number),
                fromSource: notifier.subscriptionCount(fromHost: peer.host),
                limits: Self.subscriptionLimits
            )
        {
            return refuse(request, key: key, refusal)
        }
        let response = acceptance(of: request, expires: accepted.grantedExpires)
        guard let dialog = Dialog(uasRequest: request, response: response, receivedOverTLS: false) else {
            return respond(to: request, key: key, status: 400, reason: "Missing Or Invalid Contact")
        }
        let subscription = Subscription(
            event: accepted.event,
            accountID: watcher.accountID,
            watcherNumber: watcher.number,
            targetNumber: accepted.target.number,
            entity: accepted.entity,
            dialog: dialog,
            source: peer,
            expiresAt: now.addingTimeInterval(TimeInterval(accepted.grantedExpires)),
            userAgent: request.headers[.userAgent],
            createdAt: now
        )
        execute(transactions.sendResponse(response, for: key), peer: peer)
        execute(notifier.add(subscription, now: now))
    }

    private mutating func refuse(_ request: SIPRequest, key: TransactionKey, _ refusal: SubscriptionAdmission.Refusal) {
        respond(
            to: request,
            key: key,
            status: refusal.statusCode,
            reason: refusal.reasonPhrase,
            headers: refusal.headers
        )
    }

    private mutating func acceptance(of request: SIPRequest, expires: Int) -> SIPResponse {
        var response = SIPResponse(replyingTo: request, statusCode: 200, toTag: makeIdentifier("t"))
        response.headers.add(.expires, String(expires))
        response.headers.add(.contact, "<sip:127.0.0.1:5060>")
        response.headers.add(.server, "BusyLamp")
        return response
    }

    private mutating func handleInvite(_ request: SIPRequest, key: TransactionKey, peer: SIPPeer) {
        if request.to?.tag != nil { return inDialog(request, key: key) }
        guard let line = authenticatedLine(request, key: key, peer: peer, role: .proxy) else { return }
        let party = CallStateMachine.Party(line: line, identity: line.identity(domain: Self.domain))
        let invite = CallStateMachine.IncomingInvite(request: request, transaction: key, peer: peer, party: party)
        if let replaces = request.headers[.replaces] {
            guard let parsed = Replaces(replaces) else {
                return respond(to: request, key: key, status: 400, reason: "Malformed Replaces")
            }
            return execute(b2bua.pickUp(.replaces(parsed), by: invite))
        }
        let routing = CallRouting(directory: Self.directory)
        switch routing.route(request.uri, from: .line(line), isLocalHost: { [gate] in gate.isLocal(host: $0) }) {
        case .failure(let refusal):
            respond(to: request, key: key, status: refusal.statusCode, reason: refusal.reasonPhrase)
        case .success(.line(let callee)):
            let destinations = (bindings[callee.number] ?? []).filter { $0.expiresAt > now }.compactMap { binding in
                SIPURI(binding.contact).map { CallStateMachine.Destination(requestURI: $0, peer: binding.source) }
            }
            execute(
                b2bua.placeCall(
                    caller: invite,
                    calleeLine: callee,
                    calleeIdentity: callee.identity(domain: Self.domain),
                    destinations: destinations,
                    now: now
                )
            )
        case .success(.trunk(_, let number)):
            // The directory has no trunk; a route to one would be a routing bug.
            fatalError("routed \(number) to a trunk the directory does not have")
        case .success(.directedPickup(let target)):
            execute(b2bua.pickUp(.directed(target: target), by: invite))
        case .success(.groupPickup(let accountID, let group)):
            execute(b2bua.pickUp(.group(accountID: accountID, group: group), by: invite))
        }
    }

    private mutating func inDialog(_ request: SIPRequest, key: TransactionKey) {
        guard let actions = b2bua.receivedRequest(request, transaction: key) else {
            return respond(to: request, key: key, status: 481, reason: "Call/Transaction Does Not Exist")
        }
        execute(actions)
    }

    // MARK: Digest

    private enum ChallengeRole {
        case userAgentServer
        case proxy

        var credentialsHeader: SIPHeaderName { self == .proxy ? .proxyAuthorization : .authorization }
        var challengeHeader: SIPHeaderName { self == .proxy ? .proxyAuthenticate : .wwwAuthenticate }
        var challengeStatus: Int { self == .proxy ? 407 : 401 }
    }

    /// The driver's `authenticatedLine`: lockouts first, then the digest, failures counted.
    private mutating func authenticatedLine(
        _ request: SIPRequest,
        key: TransactionKey,
        peer: SIPPeer,
        role: ChallengeRole
    ) -> Line? {
        let claimedUser = request.headers[role.credentialsHeader].flatMap { try? DigestCredentials(parsing: $0) }?
            .username
        if let claimedUser,
            case .lockedOut = failedAuthentications.verdict(address: peer.host, user: claimedUser, now: now)
        {
            respond(to: request, key: key, status: 403, reason: "Too Many Failed Authentications")
            return nil
        }
        let outcome = authenticator.verify(
            request: request,
            headerName: role.credentialsHeader,
            ha1Lookup: { username, algorithm in Self.directory.line(number: username)?.credentials[algorithm] },
            now: now,
            servesHost: { [gate] in gate.isLocal(host: $0) }
        )
        if Self.tracing { print("digest: \(outcome) for \(request.headers[role.credentialsHeader] ?? "-")") }
        guard case .authenticated(let username) = outcome, let line = Self.directory.line(number: username) else {
            if outcome == .wrongCredentials, let claimedUser {
                _ = failedAuthentications.recordFailure(address: peer.host, user: claimedUser, now: now)
            }
            if case .malformed = outcome {
                respond(to: request, key: key, status: 400, reason: "Malformed Credentials")
            } else {
                let response = challengeResponse(to: request, role: role, stale: outcome == .stale)
                execute(transactions.sendResponse(response, for: key), peer: nil)
            }
            return nil
        }
        failedAuthentications.recordSuccess(address: peer.host, user: username)
        authenticatedTransactions.insert(key)
        return line
    }

    private mutating func challengeResponse(to request: SIPRequest, role: ChallengeRole, stale: Bool) -> SIPResponse {
        let values = authenticator.challengeHeaders(realm: Self.domain, stale: stale, now: now, using: &random)
        if let nonce = values.first.flatMap(Self.nonce(in:)) { latestNonce = nonce }
        return makeResponse(
            to: request,
            status: role.challengeStatus,
            headers: values.map { SIPHeaders.Field(name: role.challengeHeader, value: $0) }
        )
    }

    /// `nonce="…"` of a challenge we made (our nonces hold no quote or backslash).
    private static func nonce(in challenge: String) -> String? {
        guard let start = challenge.range(of: "nonce=\"") else { return nil }
        let rest = challenge[start.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }

    /// `request` with its credentials replaced by ones made with `password` for its user (the
    /// To user of a REGISTER, the From user otherwise), answering the newest challenge: what a
    /// phone sends.
    private mutating func signed(_ request: SIPRequest, password: String) -> SIPRequest {
        let role: ChallengeRole = request.method == .invite ? .proxy : .userAgentServer
        let identity = request.method == .register ? request.to : request.from
        guard let username = identity?.uri.user else { return request }
        if latestNonce == nil { _ = challengeResponse(to: request, role: role, stale: false) }
        guard let nonce = latestNonce else { return request }
        let ha1 = DigestAlgorithm.md5.ha1(username: username, realm: Self.domain, password: password)
        let nonceCount = String(format: "%08x", makeCount())
        let qop = DigestAlgorithm.QualityOfProtection(nonceCount: nonceCount, cnonce: "fuzz")
        let uri = request.uri.description
        let response = DigestAlgorithm.md5.response(
            ha1: ha1,
            nonce: nonce,
            method: request.method.rawValue,
            digestURI: uri,
            qop: qop
        )
        var signed = request
        signed.headers.remove(role.credentialsHeader)
        signed.headers.add(
            role.credentialsHeader,
            "Digest username=\"\(username)\", realm=\"\(Self.domain)\", nonce=\"\(nonce)\", uri=\"\(uri)\", "
                + "response=\"\(response)\", algorithm=MD5, qop=auth, nc=\(nonceCount), cnonce=\"fuzz\""
        )
        return signed
    }

    // MARK: Answers and requests of ours

    private mutating func respond(
        to request: SIPRequest,
        key: TransactionKey,
        status: Int,
        reason: String? = nil,
        headers: [SIPHeaders.Field] = [],
        includeCapabilities: Bool = false
    ) {
        var response = makeResponse(to: request, status: status, reason: reason, headers: headers)
        if includeCapabilities { gate.capabilities.describe(into: &response.headers) }
        execute(transactions.sendResponse(response, for: key), peer: nil)
    }

    private mutating func makeResponse(
        to request: SIPRequest,
        status: Int,
        reason: String? = nil,
        headers: [SIPHeaders.Field] = []
    ) -> SIPResponse {
        var response = SIPResponse(
            replyingTo: request,
            statusCode: status,
            reasonPhrase: reason,
            toTag: makeIdentifier("t")
        )
        for field in headers { response.headers.add(field.name, field.value) }
        response.headers.add(.server, "BusyLamp")
        return response
    }

    /// The driver's `startRequest`: our Via with `branch`, a Contact on target refresh requests.
    private mutating func startRequest(
        _ request: SIPRequest,
        branch: String,
        to peer: SIPPeer
    ) -> [TransactionLayer
        .Action]
    {
        var request = request
        let token = peer.transport == .tcp ? "TCP" : "UDP"
        request.headers.prepend(.via, "SIP/2.0/\(token) 127.0.0.1:5060;branch=\(branch);rport")
        if Dialog.targetRefreshMethods.contains(request.method) {
            request.headers.add(.contact, "<sip:127.0.0.1:5060>")
        }
        request.headers.add(.userAgent, "BusyLamp")
        return transactions.sendRequest(request, to: peer)
    }

    private mutating func execute(_ actions: [NotifierStateMachine.Action]) {
        for action in actions {
            guard case .sendNotify(let notify, let subscriptionID, let destination) = action else { continue }
            let actions = startRequest(notify, branch: makeIdentifier("z9hG4bKn"), to: destination)
            for case .transaction(let key, _, _) in actions { notifyTransactions[key] = subscriptionID }
            if actions.contains(where: { if case .refused = $0 { true } else { false } }) {
                execute(notifier.notifyFailed(subscriptionID: subscriptionID, now: now))
                continue
            }
            execute(actions, peer: destination)
        }
    }

    private mutating func execute(_ actions: [B2BUAStateMachine.Action]) {
        for action in actions {
            switch action.action {
            case .respond(var response, let key):
                if (101..<300).contains(response.statusCode), let method = response.cseq?.method,
                    Dialog.targetRefreshMethods.contains(method), !response.headers.contains(.contact)
                {
                    response.headers.add(.contact, "<sip:127.0.0.1:5060>")
                }
                execute(transactions.sendResponse(response, for: key), peer: nil)
            case .send(let request, let branch, let peer):
                let sent = startRequest(request, branch: branch, to: peer)
                for case .transaction(let key, _, _) in sent where request.method != .ack {
                    callTransactions[key] = branch
                }
                if sent.contains(where: { if case .refused = $0 { true } else { false } }) {
                    execute(b2bua.requestFailed(branch: branch, status: 503))
                    continue
                }
                execute(sent, peer: peer)
            case .startTimer(let timer, let duration):
                arm(.call(action.callID, timer), after: duration)
            case .cancelTimer(let timer):
                cancel(.call(action.callID, timer))
            case .lineChanged(let number, let dialog):
                execute(notifier.updateLine(number, now: now) { _ = $0.apply(dialog) })
            case .ended:
                for timer in CallTimer.allCases { cancel(.call(action.callID, timer)) }
            }
        }
    }

    /// Every message the server sends must be one a phone can parse. The answer to an
    /// unparseable request (`answering`) copies its Via, From, To, Call-ID and CSeq (RFC 3261
    /// §8.2.6.2), so it may carry a fault of those values back, but nothing worse.
    private func send(_ message: SIPMessage, to peer: SIPPeer, answering requestFault: SIPParseError? = nil) {
        let framing: SIPFraming = peer.transport == .tcp ? .stream : .datagram
        let bytes = message.serializedBytes
        if Self.tracing {
            print("--> \(peer.transport) \(peer.host)\n\(String(decoding: bytes, as: UTF8.self))")
        }
        do {
            _ = try parser.parse(bytes, framing: framing)
        } catch {
            // The copied Via, From, To, Call-ID or CSeq may be what was wrong with the request,
            // or wrong besides its first fault (a byte that was not UTF-8 comes back as U+FFFD):
            // echoed, as §8.2.6.2 asks. Never a control character: that would fail as
            // `invalidBytes`, not as a bad or missing header.
            if requestFault != nil, error.code == .badHeaderValue || error.code == .missingHeader {
                return
            }
            fatalError(
                "the server would send what it cannot parse (\(error)):\n\(String(decoding: bytes, as: UTF8.self))"
            )
        }
    }

    /// `FUZZ_TRACE=1`: print every message the server would send (to write seeds, or to
    /// read what a crashing input did before it crashed).
    static let tracing = ProcessInfo.processInfo.environment["FUZZ_TRACE"] == "1"

    // MARK: Identifiers

    private mutating func makeIdentifier(_ prefix: String) -> String {
        identifierCounter += 1
        return "\(prefix)\(identifierCounter)"
    }

    private mutating func makeCount() -> Int {
        identifierCounter += 1
        return identifierCounter
    }
}

/// Traps with `message` when `condition` fails: libFuzzer keeps the input as a crash.
private func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("invariant broken: \(message())") }
}
