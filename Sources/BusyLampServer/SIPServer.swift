import BusyLampCore
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import SIPAuth
import SIPCore
import SIPTransactions
import SIPTransportNIO

/// Runs BusyLamp's SIP machines on one event loop and carries out their actions.
///
/// This is the only place where bytes leave, timers are scheduled and the store is written:
///
/// ```
/// transport ─bytes─► parse ─► TransactionLayer ─► handleRequest (registrar, OPTIONS, …)
///     ▲                             │                      │
///     └──────────── send ◄──────────┴── actions ◄──────────┘   store writes on `storeThread`,
///                                                             then the answer (persist, then 200)
/// ```
/// Everything mutable is touched only on `eventLoop`; store calls run on a single-threaded
/// pool so that the loop never blocks on disk and writes for one AOR never race.
public final class SIPServer: @unchecked Sendable {
    // @unchecked: all mutable state is confined to `eventLoop` (asserted where it matters).

    public struct Configuration: Sendable {
        public var listenAddresses: [SIPListenAddress] = SIPListenAddress.defaults
        public var transport = SIPTransport.Configuration()
        public var digestPolicy: DigestPolicy = .default
        /// How often expired bindings are removed from the store.
        public var bindingSweepInterval: TimeAmount = .seconds(30)
        /// The `Server` header of our responses.
        public var serverName = "BusyLamp"
        public init() {}
    }

    public let eventLoop: EventLoop
    public let transport: SIPTransport
    private let configuration: Configuration
    private let directoryStore: DirectoryStore
    private let registrationStore: RegistrationStore
    private let storeThread: NIOThreadPool
    private let logger: Logger
    private let parser: SIPParser

    private var directory: Directory
    private var transactions = TransactionLayer()
    private var authenticator: DigestAuthenticator
    private var registrar: Registrar
    private let capabilities = ServerCapabilities.registrar
    /// The flow each server transaction's request came over: its responses go back along it.
    private var inboundFlows: [TransactionKey: SIPFlow] = [:]
    private var timers: [TimerSlot: Scheduled<Void>] = [:]
    /// Host names and addresses that mean "this server" in a Request-URI.
    private var localHosts: Set<String> = []
    private var sweepTask: RepeatedTask?

    private struct TimerSlot: Hashable {
        var key: TransactionKey
        var timer: TransactionTimer
    }

    public init(
        eventLoop: EventLoop,
        directory: Directory,
        directoryStore: DirectoryStore,
        registrationStore: RegistrationStore,
        configuration: Configuration,
        logger: Logger
    ) {
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.directory = directory
        self.directoryStore = directoryStore
        self.registrationStore = registrationStore
        self.logger = logger
        self.parser = SIPParser(limits: configuration.transport.parserLimits)
        self.transport = SIPTransport(eventLoop: eventLoop, configuration: configuration.transport, logger: logger)
        self.storeThread = NIOThreadPool(numberOfThreads: 1)
        self.authenticator = DigestAuthenticator(
            realm: directory.platform.domain,
            secret: NonceManager.makeSecret(),
            policy: configuration.digestPolicy
        )
        self.registrar = Registrar(
            settings: Registrar.Settings(
                minimumExpires: directory.platform.minimumExpires,
                maximumExpires: directory.platform.maximumExpires
            )
        )
    }

    /// Binds the listeners and starts serving. Returns the bound listeners (with real ports).
    public func start() async throws -> [SIPTransport.BoundListener] {
        storeThread.start()
        transport.setMessageHandler { [self] bytes, framing, flow in
            self.received(bytes: bytes, framing: framing, flow: flow)
        }
        let listeners = try await transport.bind(configuration.listenAddresses)
        let hosts = Self.localHosts(domain: directory.platform.domain, listeners: listeners)
        try await eventLoop.submit {
            self.localHosts = hosts
            self.sweepTask = self.eventLoop.scheduleRepeatedTask(
                initialDelay: .seconds(1),
                delay: self.configuration.bindingSweepInterval
            ) { _ in self.sweepExpiredBindings() }
        }.get()
        logger.info("SIP listeners bound", metadata: ["sip.listeners": "\(listeners.map(\.localAddress))"])
        return listeners
    }

    /// Stops listening and waits for the store thread to finish its work.
    public func stop() async {
        try? await eventLoop.submit { self.sweepTask?.cancel() }.get()
        await transport.close()
        try? await storeThread.shutdownGracefully()
    }

    // MARK: Inbound

    private func received(bytes: [UInt8], framing: SIPFraming, flow: SIPFlow) {
        let message: SIPMessage
        do {
            message = try parser.parse(bytes, framing: framing)
        } catch {
            refuseUnparseable(error, flow: flow)
            return
        }
        let peer = SIPPeer(flow)
        switch message {
        case .request(var request):
            request.stampReceived(from: peer)
            if let key = TransactionKey(incoming: request), inboundFlows[key] == nil, request.method != .ack {
                inboundFlows[key] = flow
            }
            execute(transactions.receivedRequest(request, from: peer), flow: flow)
        case .response(let response):
            execute(transactions.receivedResponse(response, from: peer), flow: flow)
        }
    }

    /// RFC 4475 §3.1.2: answer 400 naming the fault when enough is readable, else drop.
    private func refuseUnparseable(_ error: SIPParseError, flow: SIPFlow) {
        Counter(label: "busylamp_sip_parse_errors_total", dimensions: [("reason", error.code.rawValue)]).increment()
        logger.debug(
            "Unparseable message",
            metadata: ["sip.peer": "\(flow)", "sip.error": "\(error.reasonPhrase)"]
        )
        guard var response = error.makeResponse(toTag: Self.makeTag()) else {
            transport.countDrop(.unparseable)
            return
        }
        response.headers.add(.server, configuration.serverName)
        send(.response(response), to: flow)
    }

    // MARK: Actions

    private func execute(_ actions: [TransactionLayer.Action], flow: SIPFlow?) {
        for action in actions {
            switch action {
            case .transaction(let key, let transactionAction, let peer):
                execute(transactionAction, key: key, peer: peer, flow: flow ?? inboundFlows[key])
            case .deliverACK:
                // An ACK for a 2xx belongs to a dialog; there are no INVITE dialogs yet.
                break
            case .discardStrayResponse, .discardUnmatchable:
                transport.countDrop(.noRoute)
            case .rejectWithServiceUnavailable(let request, _):
                guard let flow else { continue }
                var response = SIPResponse(replyingTo: request, statusCode: 503, toTag: Self.makeTag())
                response.headers.add(.retryAfter, "5")
                send(.response(response), to: flow)
            case .refused(let request, let reason):
                logger.warning(
                    "Request refused by the transaction layer",
                    metadata: ["sip.method": "\(request.method)", "sip.reason": "\(reason)"]
                )
            case .sendWithoutTransaction(let request, let peer):
                if let flow = flow ?? self.flow(to: peer, like: nil) { send(.request(request), to: flow) }
            case .unknownTransaction(let key):
                logger.debug("Response for a finished transaction", metadata: ["sip.transaction": "\(key)"])
            }
        }
    }

    private func execute(_ action: TransactionAction, key: TransactionKey, peer: SIPPeer, flow: SIPFlow?) {
        switch action {
        case .send(let message):
            if case .response(let response) = message, let via = response.topVia {
                let destination = ResponseDestination(topVia: via, from: peer)
                if let target = self.flow(for: destination, like: flow) { send(message, to: target) }
            } else if let target = flow ?? self.flow(to: peer, like: nil) {
                send(message, to: target)
            }
        case .deliverToTransactionUser(.request(let request)):
            guard let flow else { return }
            handleRequest(request, key: key, flow: flow)
        case .deliverToTransactionUser(.response):
            // Client transactions start with the NOTIFY and call layers.
            break
        case .startTimer(let timer, let duration):
            let slot = TimerSlot(key: key, timer: timer)
            timers[slot]?.cancel()
            timers[slot] = eventLoop.scheduleTask(in: TimeAmount(duration)) { [self] in
                self.timers[slot] = nil
                self.execute(self.transactions.timerFired(timer, for: key), flow: self.inboundFlows[key])
            }
        case .cancelTimer(let timer):
            timers.removeValue(forKey: TimerSlot(key: key, timer: timer))?.cancel()
        case .timeout, .transportError:
            logger.debug("Transaction failed", metadata: ["sip.transaction": "\(key)", "sip.event": "\(action)"])
        case .terminated:
            inboundFlows[key] = nil
            for timer in TransactionTimer.allCases {
                timers.removeValue(forKey: TimerSlot(key: key, timer: timer))?.cancel()
            }
        }
    }

    private func send(_ message: SIPMessage, to flow: SIPFlow) {
        var buffer = ByteBufferAllocator().buffer(capacity: 1024)
        message.serialize(into: &buffer)
        transport.send(buffer, to: flow).whenFailure { [logger] error in
            logger.debug("Send failed", metadata: ["sip.peer": "\(flow)", "error": "\(error)"])
        }
    }

    /// Where RFC 3261 §18.2.2 sends a response, as a flow of ours.
    private func flow(for destination: ResponseDestination, like inbound: SIPFlow?) -> SIPFlow? {
        switch destination {
        case .sameConnection(let connectionID, let fallback):
            guard var flow = inbound else { return self.flow(to: fallback, like: nil) }
            flow.connectionID = ConnectionID(connectionID)
            return flow
        case .address(let peer):
            return self.flow(to: peer, like: inbound)
        }
    }

    private func flow(to peer: SIPPeer, like inbound: SIPFlow?) -> SIPFlow? {
        guard let address = try? SocketAddress(ipAddress: peer.host, port: peer.port) else { return nil }
        let transportKind = SIPTransportKind(rawValue: peer.transport.rawValue) ?? .udp
        let listenerIndex =
            inbound?.listenerIndex
            ?? transport.listeners.firstIndex { $0.transport == transportKind } ?? 0
        return SIPFlow(
            transport: transportKind,
            remoteAddress: address,
            listenerIndex: listenerIndex,
            connectionID: peer.connectionID.map(ConnectionID.init)
        )
    }

    // MARK: Requests

    private func handleRequest(_ request: SIPRequest, key: TransactionKey, flow: SIPFlow) {
        Counter(label: "busylamp_sip_requests_total", dimensions: [("method", Self.metricMethod(request.method))])
            .increment()
        // RFC 3261 §8.2.1: a method we have never heard of gets 501.
        guard SIPMethod.known.contains(request.method) else {
            return respond(to: request, key: key, status: 501, includeCapabilities: true)
        }
        // §8.2.2.1: only SIP URIs name something here.
        guard request.uri.isSIP else {
            return respond(to: request, key: key, status: 416)
        }
        // Never an open relay: a request for another domain is refused, not forwarded.
        guard isLocal(request.uri) else {
            return respond(to: request, key: key, status: 403, reason: "Domain Not Served Here")
        }
        // §8.2.2.3: option tags we do not know in Require get 420 with Unsupported.
        let unsupported = capabilities.unsupportedRequirements(of: request)
        guard unsupported.isEmpty else {
            return respond(
                to: request,
                key: key,
                status: 420,
                headers: [SIPHeaders.Field(name: .unsupported, value: unsupported.joined(separator: ", "))]
            )
        }
        switch request.method {
        case .options:
            respond(to: request, key: key, status: 200, includeCapabilities: true)
        case .register:
            handleRegister(request, key: key, flow: flow)
        case .cancel:
            // §9.2: a CANCEL that matches no transaction of ours gets 481.
            respond(to: request, key: key, status: 481)
        default:
            // §8.2.1: a method we know but do not serve gets 405 with Allow.
            respond(to: request, key: key, status: 405, includeCapabilities: true)
        }
    }

    private func handleRegister(_ request: SIPRequest, key: TransactionKey, flow: SIPFlow) {
        let directory = self.directory
        let outcome = authenticator.verify(
            request: request,
            headerName: .authorization,
            ha1Lookup: { username, algorithm in directory.line(number: username)?.credentials[algorithm] },
            now: Date()
        )
        guard case .authenticated(let username) = outcome, let line = directory.line(number: username) else {
            return challenge(request, key: key, outcome: outcome)
        }
        // RFC 3261 §10.3 step 5: the authenticated line may change only its own bindings. The To
        // user is its number, or its extension (phones configured with the short form).
        guard let toURI = request.to?.uri, isLocal(toURI),
            toURI.user == line.number || toURI.user == line.extensionNumber
        else {
            countRefusal("register", reason: "foreign_aor")
            return respond(to: request, key: key, status: 403, reason: "Not Your Address Of Record")
        }
        let aor = line.number
        let source = SIPPeer(flow)
        let registrar = self.registrar
        let store = registrationStore
        storeThread.runIfActive(eventLoop: eventLoop) { () throws -> (Registrar.Decision, Date) in
            let now = Date()
            let decision = registrar.decide(
                register: request,
                aor: aor,
                existing: try store.bindings(aor: aor),
                source: source,
                now: now
            )
            if case .apply(let upserts, let removals, _) = decision, !upserts.isEmpty || !removals.isEmpty {
                try store.apply(aor: aor, upserts: upserts, removals: removals)
            }
            return (decision, now)
        }.whenComplete { [self] result in
            switch result {
            case .success((.reject(let status, let reason, let headers), _)):
                countRefusal("register", reason: String(status))
                respond(to: request, key: key, status: status, reason: reason, headers: headers)
            case .success((.apply(_, _, let bindings), let now)):
                var response = registrar.okResponse(to: request, bindings: bindings, now: now, toTag: Self.makeTag())
                response.headers.add(.server, configuration.serverName)
                execute(transactions.sendResponse(response, for: key), flow: inboundFlows[key])
                logger.debug(
                    "Registered",
                    metadata: ["line": "\(aor)", "sip.peer": "\(flow)", "sip.bindings": "\(bindings.count)"]
                )
            case .failure(let error):
                logger.error("Registration store failed", metadata: ["line": "\(aor)", "error": "\(error)"])
                respond(to: request, key: key, status: 500, reason: "Registration Not Stored")
            }
        }
    }

    /// 401 with our challenges, or 400 when the credentials cannot be read.
    private func challenge(_ request: SIPRequest, key: TransactionKey, outcome: DigestOutcome) {
        let reason: String
        switch outcome {
        case .malformed(let error):
            countRefusal(request.method.rawValue, reason: "malformed_credentials")
            return respond(
                to: request,
                key: key,
                status: 400,
                reason: "Malformed Authorization: \(error.code.rawValue)"
            )
        case .authenticated: reason = "unknown_line"
        case .stale: reason = "stale_nonce"
        case .wrongCredentials: reason = "wrong_credentials"
        case .replayed: reason = "replayed_nonce"
        case .realmMismatch: reason = "other_realm"
        case .invalidNonce: reason = "invalid_nonce"
        case .missingCredentials: reason = "challenge"
        }
        countRefusal(request.method.rawValue, reason: reason)
        // RFC 2617 §3.2.1 and PRODUCT.md rule 5: a stale nonce gets a fresh challenge with
        // stale=true, never a bare 401.
        let headers = authenticator.challengeHeaders(stale: outcome == .stale, now: Date()).map {
            SIPHeaders.Field(name: .wwwAuthenticate, value: $0)
        }
        respond(to: request, key: key, status: 401, headers: headers)
    }

    private func respond(
        to request: SIPRequest,
        key: TransactionKey,
        status: Int,
        reason: String? = nil,
        headers: [SIPHeaders.Field] = [],
        includeCapabilities: Bool = false
    ) {
        var response = SIPResponse(replyingTo: request, statusCode: status, reasonPhrase: reason, toTag: Self.makeTag())
        for field in headers { response.headers.add(field.name, field.value) }
        if includeCapabilities { capabilities.describe(into: &response.headers) }
        response.headers.add(.server, configuration.serverName)
        execute(transactions.sendResponse(response, for: key), flow: inboundFlows[key])
    }

    private func countRefusal(_ method: String, reason: String) {
        Counter(
            label: "busylamp_sip_refusals_total",
            dimensions: [("method", Self.metricMethod(SIPMethod(method))), ("reason", reason)]
        ).increment()
    }

    // MARK: Housekeeping

    private func sweepExpiredBindings() {
        let store = registrationStore
        storeThread.runIfActive(eventLoop: eventLoop) { try store.removeExpired(now: Date()) }
            .whenComplete { [logger] result in
                switch result {
                case .success(let removed) where !removed.isEmpty:
                    logger.debug("Expired bindings removed", metadata: ["sip.bindings": "\(removed.count)"])
                case .success: break
                case .failure(let error):
                    logger.error("Binding sweep failed", metadata: ["error": "\(error)"])
                }
            }
    }

    // MARK: Helpers

    private func isLocal(_ uri: SIPURI) -> Bool {
        localHosts.contains(uri.hostWithoutBrackets.lowercased())
    }

    /// The platform domain, "localhost", and every address the listeners answer on (all of the
    /// machine's addresses for a wildcard listener: snom phones send `222@<ip>`).
    static func localHosts(domain: String, listeners: [SIPTransport.BoundListener]) -> Set<String> {
        var hosts: Set<String> = [domain.lowercased(), "localhost"]
        for listener in listeners {
            guard let ip = listener.localAddress.ipAddress else { continue }
            if ip == "0.0.0.0" || ip == "::" {
                for device in (try? System.enumerateDevices()) ?? [] {
                    if let address = device.address?.ipAddress { hosts.insert(address.lowercased()) }
                }
            } else {
                hosts.insert(ip.lowercased())
            }
        }
        return hosts
    }

    /// A random tag of 64 bits (RFC 3261 §19.3 asks for at least 32).
    static func makeTag() -> String {
        String(UInt64.random(in: .min ... .max), radix: 16)
    }

    /// Unknown methods are counted under one label, so that garbage cannot grow the metric set.
    static func metricMethod(_ method: SIPMethod) -> String {
        SIPMethod.known.contains(method) ? method.rawValue : "other"
    }
}

extension SIPPeer {
    init(_ flow: SIPFlow) {
        let transport: SIPPeer.Transport
        switch flow.transport {
        case .udp: transport = .udp
        case .tcp: transport = .tcp
        case .tls: transport = .tls
        }
        self.init(
            transport: transport,
            host: flow.remoteHost,
            port: flow.remotePort,
            connectionID: flow.connectionID?.rawValue
        )
    }
}
