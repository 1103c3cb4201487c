import NIOCore
import NIOPosix
import SIPCore
import SIPTransactions

/// One client flow: a REGISTER, a subscription, or a call's caller leg. Kept small: the
/// flows of a run live in one array and are found again from the index in their Call-ID.
struct ClientFlow {
    enum Kind: UInt8 {
        case register, subscribe, call
        /// A callee phone's REGISTER before calls (set-up, not the measured load).
        case calleeRegister
    }

    /// Where the flow is; each phase has at most one timer.
    enum Phase: UInt8 {
        /// A request is out and retransmitted (Timers A/E) until a response or Timer B/F.
        case requesting
        /// An INVITE got a provisional response: no more retransmissions, wait for the final.
        case proceeding
        /// A subscription was accepted; its initial NOTIFY has not come.
        case waitingNotify
        /// A call is answered and ACKed; the BYE goes after the talk time.
        case talking
        /// A subscription is up: it answers NOTIFYs and needs nothing else.
        case active
        case finished
    }

    var kind: Kind
    var phase: Phase = .requesting
    var user: Int32
    var socket: UInt16
    var authAttempts: UInt8 = 0
    /// Fan-out: the lamps (`LineLamp` bits) this watcher has shown during the current call.
    var lampsSeen: UInt8 = 0
    var got2xx = false
    var gotNotify = false
    var gotRinging = false
    /// The flow's one armed timer (retransmission, timeout, talk time), if any.
    var timer: TimingWheel<LoadTimer>.Handle?
    var cseq: UInt32 = 1
    var retransmitMillis: UInt32 = 0
    var startedAt: UInt64
    var transactionStartedAt: UInt64 = 0
    var lastNotifyCSeq: UInt32 = 0
    /// The request being retransmitted, until its transaction ends.
    var pending: ByteBuffer?
    var dialog: CallDialog?
}

/// A caller's dialog after the 200 (RFC 3261 §12.1.2): the remote target and route set for
/// the ACK and the BYE, and the ACK to send again if the 200 is retransmitted.
struct CallDialog {
    var toValue: String
    var remoteTarget: String
    var routes: [String]
    var ack: ByteBuffer
}

/// A callee phone's side of one incoming call (RFC 3261 §13.3: a UAS answering an INVITE).
struct CalleeLeg {
    enum Phase: UInt8 { case ringing, answered, confirmed, finished }
    var callID: String
    var inviteCSeq: UInt32
    var phase: Phase = .ringing
    /// The leg's one armed timer (ring time, 2xx retransmission), if any.
    var timer: TimingWheel<LoadTimer>.Handle?
    var socket: UInt16
    var remote: SocketAddress
    var invite: SIPRequest?
    var ringing: ByteBuffer
    var answer: ByteBuffer
    var retransmitMillis: UInt32 = 0
    var answeredAt: UInt64 = 0
}

/// One fan-out call's figures: when each lamp's trigger happened and how many watchers saw it.
struct FanoutCall: Sendable {
    var triggers: [UInt64] = [0, 0, 0]
    var reached: [Int] = [0, 0, 0]
    /// The last watcher's delay per lamp (nanoseconds from the trigger).
    var lastNanos: [UInt64] = [0, 0, 0]
    var watchers = 0
    var ended = false
}

/// What a timer of the load belongs to.
enum LoadTimer: Sendable {
    case flow(Int)
    case leg(Int)
}

/// Runs one share of a load on one event loop: its own sockets, flows, timer wheel and
/// statistics, so nothing is shared between shards while the load runs.
///
/// Confined to `loop`: every method runs there (the handlers call in from the loop's channels,
/// the main thread only through `loop.submit`), hence `@unchecked Sendable`.
final class LoadShard: DatagramReceiver, @unchecked Sendable {
    let plan: LoadPlan
    let loop: EventLoop
    private let parser = SIPParser()
    private let allocator = ByteBufferAllocator()

    private var io = LoopbackSocketSet()
    /// Index of the first callee socket in `channels`; callee sockets take INVITEs.
    private var firstCalleeSocket = 0
    private var callerSocket: Int?

    private var flows: [ClientFlow] = []
    private var legs: [CalleeLeg] = []
    private var freeLegs: [Int] = []
    private var legByCallID: [String: Int] = [:]
    private var ha1: [String?]
    private var realmOfHA1: String?

    private(set) var stats = LoadStatistics()
    /// Callee registrations, and the calls of a fan-out: what makes the load possible.
    private(set) var setup = LoadStatistics()
    private(set) var fanout: [FanoutCall] = []
    private var inFlight = 0
    private var setupInFlight = 0

    private enum Stage { case registeringCallees, offering, draining, fanoutCalls, settling, done }
    private var stage: Stage = .offering
    private var origin: UInt64 = 0
    private var offerStartedAt: UInt64 = 0
    private var drainDeadline: UInt64 = 0
    private var nextCallAt: UInt64 = 0
    private var currentCall: Int?
    private var settleUntil: UInt64 = 0
    private var task: RepeatedTask?
    let done: EventLoopPromise<Void>

    /// Every flow's and leg's timer, in milliseconds since `origin` (SIPTransactions' wheel:
    /// arming and cancelling are O(1)).
    private var wheel = TimingWheel<LoadTimer>(slotCount: 1 << 16)

    init(plan: LoadPlan, loop: EventLoop) {
        self.plan = plan
        self.loop = loop
        self.ha1 = Array(repeating: nil, count: max(plan.users.count, plan.callers.count, plan.callees.count))
        self.done = loop.makePromise()
    }

    // MARK: Sockets

    /// Binds the shard's sockets on 127.0.0.1 (ports from the OS, or the trunk's port).
    func bind() -> EventLoopFuture<Void> {
        var ports: [Int] = Array(repeating: 0, count: plan.sockets)
        let needsCallees = plan.scenario == .calls || plan.scenario == .fanout
        if needsCallees {
            if let port = plan.callerPort {
                callerSocket = ports.count
                ports.append(port)
            }
            firstCalleeSocket = ports.count
            ports += Array(repeating: 0, count: plan.calleeSockets)
        } else {
            firstCalleeSocket = ports.count
        }
        return LoopbackSockets.bind(ports: ports, on: loop, receiver: self).map { channels in
            self.io = LoopbackSocketSet(channels)
        }
    }

    func close() -> EventLoopFuture<Void> {
        task?.cancel()
        return io.close(on: loop)
    }

    private func send(_ buffer: ByteBuffer, socket: Int, to address: SocketAddress) {
        io.send(buffer, socket: socket, to: address)
    }

    func flush() {
        io.flush()
    }

    // MARK: Running

    private func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }
    private func millis(_ nanos: UInt64) -> UInt64 { (nanos - origin) / 1_000_000 }

    func start() {
        origin = now()
        wheel = TimingWheel(slotCount: 1 << 16)
        switch plan.scenario {
        case .register, .subscribe:
            beginOffering()
        case .calls:
            registerCallees()
        case .fanout:
            beginOffering()
        }
        let tick = TimeAmount.milliseconds(Int64(max(1, plan.tickMillis)))
        task = loop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { _ in
            self.tick()
        }
    }

    private func beginOffering() {
        stage = .offering
        offerStartedAt = now()
    }

    private func registerCallees() {
        stage = .registeringCallees
        for index in plan.callees.indices {
            startFlow(.calleeRegister, user: index, socket: firstCalleeSocket + index % plan.calleeSockets)
        }
        flush()
    }

    /// The flows the scenario offers, the users they take, and how many there are.
    private var offeredKind: ClientFlow.Kind {
        plan.scenario == .calls ? .call : (plan.scenario == .register ? .register : .subscribe)
    }
    private var offeredCount: Int {
        plan.scenario == .fanout ? min(plan.count, plan.users.count) : plan.count
    }

    private func tick() {
        let time = now()
        runWheel(until: millis(time))
        switch stage {
        case .registeringCallees:
            if setupInFlight == 0 {
                if setup.succeeded < plan.callees.count {
                    finish()
                } else {
                    plan.scenario == .fanout ? startFanoutCalls(time) : beginOffering()
                }
            }
        case .offering:
            offer(time)
        case .draining:
            if inFlight == 0 || time >= drainDeadline {
                if plan.scenario == .fanout {
                    registerCallees()
                } else {
                    finish()
                }
            }
        case .fanoutCalls:
            fanoutTick(time)
        case .settling:
            let call = fanout.last
            let allIdle = call.map { $0.reached[LineLamp.idle.rawValue] >= $0.watchers } ?? true
            if (allIdle && setupInFlight == 0) || time >= settleUntil { finish() }
        case .done:
            break
        }
        flush()
    }

    private func offer(_ time: UInt64) {
        let elapsed = Double(time - offerStartedAt) / 1e9
        let windowOver = elapsed >= plan.durationSeconds
        let target = min(offeredCount, Int(min(elapsed, plan.durationSeconds) * plan.rate) + 1)
        var begun = stats.started
        while begun < target {
            if plan.maxInFlight > 0 && inFlight >= plan.maxInFlight { break }
            let global = plan.shardIndex + begun * plan.shardCount
            switch offeredKind {
            case .call:
                startFlow(.call, user: global % plan.callers.count, socket: callerSocket ?? begun % plan.sockets)
            default:
                startFlow(offeredKind, user: global % plan.users.count, socket: begun % plan.sockets)
            }
            begun += 1
        }
        if begun >= offeredCount || windowOver {
            stage = .draining
            drainDeadline = time + UInt64(plan.drainSeconds * 1e9)
        }
    }

    private func finish() {
        guard stage != .done else { return }
        stage = .done
        task?.cancel()
        task = nil
        done.succeed(())
    }

    /// A copy of the figures so far, for the progress line; the window restarts.
    func snapshot() -> LoadStatistics {
        let copy = stats
        stats.window.reset()
        return copy
    }

    // MARK: Flows

    private func isSetup(_ kind: ClientFlow.Kind) -> Bool {
        kind == .calleeRegister || (kind == .call && plan.scenario == .fanout)
    }

    private func user(of flow: ClientFlow) -> SimulatedUser {
        switch flow.kind {
        case .register, .subscribe: return plan.users[Int(flow.user)]
        case .call: return plan.callers[Int(flow.user)]
        case .calleeRegister: return plan.callees[Int(flow.user)]
        }
    }

    @discardableResult
    private func startFlow(_ kind: ClientFlow.Kind, user: Int, socket: Int) -> Int {
        let time = now()
        let index = flows.count
        flows.append(ClientFlow(kind: kind, user: Int32(user), socket: UInt16(socket), startedAt: time))
        if isSetup(kind) {
            setup.begin(at: time)
            setupInFlight += 1
        } else {
            stats.begin(at: time)
            inFlight += 1
        }
        sendRequest(index, challenge: nil)
        return index
    }

    private func callID(_ index: Int) -> String { "bl\(plan.shardIndex).\(index).\(plan.token)" }
    private func fromTag(_ index: Int) -> String { "f\(index).\(plan.token)" }

    /// Call-ID `bl<shard>.<index>.<token>` → index.
    private func flowIndex(callID: String) -> Int? {
        let bytes = callID.utf8
        guard bytes.starts(with: "bl".utf8) else { return nil }
        var iterator = bytes.dropFirst(2).makeIterator()
        var shard = 0
        while let byte = iterator.next(), byte != UInt8(ascii: ".") {
            guard byte >= 48, byte <= 57 else { return nil }
            shard = shard * 10 + Int(byte - 48)
        }
        guard shard == plan.shardIndex else { return nil }
        var index = 0
        var digits = 0
        while let byte = iterator.next(), byte != UInt8(ascii: ".") {
            guard byte >= 48, byte <= 57 else { return nil }
            index = index * 10 + Int(byte - 48)
            digits += 1
        }
        guard digits > 0, index < flows.count, callID.hasSuffix(plan.token) else { return nil }
        return index
    }

    private static let subscribeHeaders = "Event: dialog\r\nAccept: application/dialog-info+xml\r\n"

    /// Sends the flow's initial request (REGISTER, SUBSCRIBE, INVITE), with credentials for
    /// `challenge` when given, as a new transaction.
    private func sendRequest(_ index: Int, challenge: (ClientChallenge, proxy: Bool)?) {
        let flow = flows[index]
        let phone = user(of: flow)
        let local = io.locals[Int(flow.socket)]
        let method: StaticString
        let requestURI: String
        var fixed = ""
        var body = ""
        var toValue: String
        switch flow.kind {
        case .register, .calleeRegister:
            method = "REGISTER"
            requestURI = "sip:\(plan.domain)"
            toValue = "<sip:\(phone.user)@\(plan.domain)>"
            fixed = "Expires: \(plan.registerExpires)\r\n"
        case .subscribe:
            method = "SUBSCRIBE"
            requestURI = "sip:\(phone.target)@\(plan.domain)"
            toValue = "<sip:\(phone.target)@\(plan.domain)>"
            fixed = Self.subscribeHeaders + "Expires: \(plan.subscribeExpires)\r\n"
        case .call:
            method = "INVITE"
            requestURI = "sip:\(phone.target)@\(plan.domain)"
            toValue = "<sip:\(phone.target)@\(plan.domain)>"
            body = SIPMessages.sdp(user: phone.user, version: 1)
        }
        var request = SIPMessages.Request(
            method: method,
            requestURI: requestURI,
            local: local,
            branch: "z9hG4bK.\(plan.shardIndex).\(index).\(flow.cseq).\(plan.token)",
            fromValue: "<sip:\(phone.user)@\(plan.domain)>;tag=\(fromTag(index))",
            toValue: toValue,
            callID: callID(index),
            cseq: flow.cseq,
            contactUser: phone.user,
            fixedHeaders: fixed,
            body: body,
            contentType: body.isEmpty ? nil : "application/sdp"
        )
        if let (challenge, proxy) = challenge, let authUser = phone.authUser, let password = phone.password {
            let userIndex = Int(flow.user)
            var cached: String? = nil
            if flow.kind != .call && flow.kind != .calleeRegister, realmOfHA1 == challenge.realm,
                challenge.algorithm == .md5
            {
                cached = ha1[userIndex]
            }
            let hash = cached ?? challenge.algorithm.ha1(username: authUser, realm: challenge.realm, password: password)
            if flow.kind != .call && flow.kind != .calleeRegister && challenge.algorithm == .md5 {
                if realmOfHA1 != challenge.realm {
                    realmOfHA1 = challenge.realm
                    for slot in ha1.indices { ha1[slot] = nil }
                }
                ha1[userIndex] = hash
            }
            let value = challenge.credentials(
                username: authUser,
                password: password,
                method: "\(method)",
                uri: requestURI,
                cnonce: "c\(index)\(flow.cseq)\(plan.token)",
                ha1: hash
            )
            request.credentials = (proxy ? "Proxy-Authorization" : "Authorization", value)
        }
        startTransaction(
            index,
            SIPMessages.write(request, allocator: allocator),
            trigger: flow.kind == .call ? .early : nil
        )
    }

    /// Sends a flow's request as a new client transaction: kept for retransmission from T1 on.
    /// A fan-out call's INVITE and BYE are the triggers of the early and idle lamps.
    private func startTransaction(_ index: Int, _ buffer: ByteBuffer, trigger: LineLamp?) {
        let time = now()
        flows[index].pending = buffer
        flows[index].phase = .requesting
        flows[index].transactionStartedAt = time
        flows[index].retransmitMillis = UInt32(plan.t1Millis)
        if let trigger, plan.scenario == .fanout, let call = currentCall {
            fanout[call].triggers[trigger.rawValue] = time
        }
        countSent(flows[index].kind)
        send(buffer, socket: Int(flows[index].socket), to: plan.server)
        schedule(flow: index, atMillis: millis(time) + UInt64(plan.t1Millis))
    }

    private func countSent(_ kind: ClientFlow.Kind) {
        if isSetup(kind) { setup[.requestsSent] += 1 } else { stats[.requestsSent] += 1 }
    }

    /// In-dialog requests of a caller (RFC 3261 §12.2.1.1): ACK for a 2xx and BYE, to the
    /// remote target through the route set.
    private func dialogRequest(_ index: Int, method: StaticString, cseq: UInt32, branch: String) -> ByteBuffer {
        let flow = flows[index]
        let phone = user(of: flow)
        let dialog = flow.dialog!
        return SIPMessages.write(
            SIPMessages.Request(
                method: method,
                requestURI: dialog.remoteTarget,
                local: io.locals[Int(flow.socket)],
                branch: branch,
                fromValue: "<sip:\(phone.user)@\(plan.domain)>;tag=\(fromTag(index))",
                toValue: dialog.toValue,
                callID: callID(index),
                cseq: cseq,
                contactUser: phone.user,
                routes: dialog.routes
            ),
            allocator: allocator
        )
    }

    private func sendBye(_ index: Int) {
        flows[index].cseq += 1
        let cseq = flows[index].cseq
        let branch = "z9hG4bK.\(plan.shardIndex).\(index).\(cseq).\(plan.token)"
        startTransaction(index, dialogRequest(index, method: "BYE", cseq: cseq, branch: branch), trigger: .idle)
    }

    private func succeed(_ index: Int, at time: UInt64) {
        let kind = flows[index].kind
        flows[index].pending = nil
        cancelTimer(flow: index)
        if kind == .call, plan.scenario == .fanout, let call = currentCall { fanout[call].ended = true }
        if isSetup(kind) {
            setup.succeed(at: time)
            setupInFlight -= 1
        } else {
            stats.succeed(at: time)
            inFlight -= 1
        }
    }

    private func fail(_ index: Int, status: Int?, at time: UInt64) {
        let kind = flows[index].kind
        flows[index].phase = .finished
        flows[index].pending = nil
        cancelTimer(flow: index)
        if kind == .call, plan.scenario == .fanout, let call = currentCall { fanout[call].ended = true }
        if isSetup(kind) {
            if let status { setup.fail(status: status, at: time) } else { setup.timeout(at: time) }
            setupInFlight -= 1
        } else {
            if let status { stats.fail(status: status, at: time) } else { stats.timeout(at: time) }
            inFlight -= 1
        }
    }

    private func record(_ kind: ClientFlow.Kind, _ metric: Metric, nanos: UInt64) {
        if isSetup(kind) {
            setup.record(metric, nanos: nanos)
        } else {
            let main: Metric
            switch plan.scenario {
            case .register: main = .register
            case .subscribe, .fanout: main = .subscribeAccepted
            case .calls: main = .inviteAnswered
            }
            stats.record(metric, nanos: nanos, window: metric == main)
        }
    }

    // MARK: Timers

    private func schedule(flow index: Int, atMillis when: UInt64) {
        cancelTimer(flow: index)
        flows[index].timer = wheel.schedule(.flow(index), afterTicks: ticks(until: when))
    }

    private func schedule(leg index: Int, atMillis when: UInt64) {
        cancelTimer(leg: index)
        legs[index].timer = wheel.schedule(.leg(index), afterTicks: ticks(until: when))
    }

    private func cancelTimer(flow index: Int) {
        if let timer = flows[index].timer { wheel.cancel(timer) }
        flows[index].timer = nil
    }

    private func cancelTimer(leg index: Int) {
        if let timer = legs[index].timer { wheel.cancel(timer) }
        legs[index].timer = nil
    }

    private func ticks(until when: UInt64) -> UInt64 {
        when > wheel.currentTick ? when - wheel.currentTick : 0
    }

    private func runWheel(until nowMillis: UInt64) {
        for (handle, timer) in wheel.advance(to: nowMillis) {
            // A timer re-armed or cancelled by one handled before it in this batch is stale.
            switch timer {
            case .flow(let index) where flows[index].timer == handle:
                flows[index].timer = nil
                flowTimer(index)
            case .leg(let index) where legs[index].timer == handle:
                legs[index].timer = nil
                legTimer(index)
            case .flow, .leg:
                continue
            }
        }
    }

    private func flowTimer(_ index: Int) {
        let time = now()
        let nowMillis = millis(time)
        let flow = flows[index]
        let timeout = UInt64(plan.transactionTimeoutMillis)
        switch flow.phase {
        case .requesting:
            let started = millis(flow.transactionStartedAt)
            if nowMillis >= started + timeout {
                fail(index, status: nil, at: time)
                return
            }
            guard let pending = flow.pending else { return }
            if isSetup(flow.kind) { setup.retransmissions += 1 } else { stats.retransmissions += 1 }
            send(pending, socket: Int(flow.socket), to: plan.server)
            // Timer A doubles without bound (§17.1.1.2); Timer E up to T2 (§17.1.2.2).
            let isInvite = flow.kind == .call && flow.dialog == nil
            let next = isInvite ? flow.retransmitMillis * 2 : min(flow.retransmitMillis * 2, UInt32(plan.t2Millis))
            flows[index].retransmitMillis = next
            schedule(flow: index, atMillis: min(nowMillis + UInt64(next), started + timeout))
        case .proceeding, .waitingNotify:
            fail(index, status: nil, at: time)
        case .talking:
            sendBye(index)
        case .active, .finished:
            break
        }
    }

    private func legTimer(_ index: Int) {
        let time = now()
        switch legs[index].phase {
        case .ringing:
            legs[index].phase = .answered
            legs[index].answeredAt = time
            legs[index].retransmitMillis = UInt32(plan.t1Millis)
            if plan.scenario == .fanout, let call = currentCall {
                fanout[call].triggers[LineLamp.confirmed.rawValue] = time
            }
            setup[.responsesSent] += 1
            send(legs[index].answer, socket: Int(legs[index].socket), to: legs[index].remote)
            schedule(leg: index, atMillis: millis(time) + UInt64(plan.t1Millis))
        case .answered:
            // RFC 3261 §13.3.1.4: the 2xx is sent again, T1 doubling up to T2, until the ACK
            // comes or 64·T1 passes.
            if millis(time) >= millis(legs[index].answeredAt) + UInt64(plan.transactionTimeoutMillis) {
                endLeg(index)
                return
            }
            setup.retransmissions += 1
            send(legs[index].answer, socket: Int(legs[index].socket), to: legs[index].remote)
            let next = min(legs[index].retransmitMillis * 2, UInt32(plan.t2Millis))
            legs[index].retransmitMillis = next
            schedule(leg: index, atMillis: millis(time) + UInt64(next))
        case .confirmed, .finished:
            break
        }
    }

    // MARK: Receiving

    func receive(_ envelope: AddressedEnvelope<ByteBuffer>, socket: Int) {
        var buffer = envelope.data
        guard let bytes = buffer.readBytes(length: buffer.readableBytes) else { return }
        stats[.messagesReceived] += 1
        let message: SIPMessage
        do {
            message = try parser.parse(bytes, framing: .datagram)
        } catch {
            stats[.parseErrors] += 1
            return
        }
        switch message {
        case .response(let response):
            guard let callID = response.callID, let index = flowIndex(callID: callID) else {
                stats[.unmatched] += 1
                return
            }
            received(response, flow: index)
        case .request(let request):
            received(request, from: envelope.remoteAddress, socket: socket)
        }
    }

    private func received(_ response: SIPResponse, flow index: Int) {
        guard let cseq = response.cseq else { return }
        let flow = flows[index]
        guard cseq.number == flow.cseq, flow.phase != .finished else {
            stats[.duplicatesReceived] += 1
            return
        }
        let time = now()
        let status = response.statusCode
        if cseq.method == .invite {
            receivedInviteResponse(response, flow: index, at: time)
            return
        }
        guard flow.phase == .requesting else {
            stats[.duplicatesReceived] += 1
            return
        }
        switch status {
        case 100..<200:
            flows[index].retransmitMillis = UInt32(plan.t2Millis)
        case 401, 407:
            if !challenged(response, flow: index) { fail(index, status: status, at: time) }
        case 200..<300:
            flows[index].pending = nil
            switch flow.kind {
            case .register, .calleeRegister:
                flows[index].phase = .finished
                record(flow.kind, .register, nanos: time - flow.startedAt)
                succeed(index, at: time)
            case .subscribe:
                flows[index].got2xx = true
                record(flow.kind, .subscribeAccepted, nanos: time - flow.startedAt)
                if flow.gotNotify {
                    flows[index].phase = .active
                    succeed(index, at: time)
                } else {
                    flows[index].phase = .waitingNotify
                    schedule(flow: index, atMillis: millis(time) + UInt64(plan.transactionTimeoutMillis))
                }
            case .call:
                // the BYE's 200
                flows[index].phase = .finished
                record(flow.kind, .byeAnswered, nanos: time - flow.transactionStartedAt)
                succeed(index, at: time)
            }
        default:
            fail(index, status: status, at: time)
        }
    }

    /// Answers a 401/407 with credentials, once, or again when the nonce was stale. Whether
    /// it did.
    private func challenged(_ response: SIPResponse, flow index: Int) -> Bool {
        let proxy = response.statusCode == 407
        let phone = user(of: flows[index])
        guard phone.authUser != nil,
            let value = response.headers[proxy ? .proxyAuthenticate : .wwwAuthenticate],
            let challenge = ClientChallenge(headerValue: value)
        else { return false }
        let stale = challenge.stale
        guard flows[index].authAttempts == 0 || (stale && flows[index].authAttempts < 3) else { return false }
        flows[index].authAttempts += 1
        if isSetup(flows[index].kind) { setup[.challenges] += 1 } else { stats[.challenges] += 1 }
        if stale { stats[.staleChallenges] += 1 }
        flows[index].cseq += 1
        sendRequest(index, challenge: (challenge, proxy))
        return true
    }

    private func receivedInviteResponse(_ response: SIPResponse, flow index: Int, at time: UInt64) {
        let flow = flows[index]
        let status = response.statusCode
        switch status {
        case 100..<200:
            guard flow.phase == .requesting || flow.phase == .proceeding else { return }
            if status > 100, !flow.gotRinging {
                flows[index].gotRinging = true
                record(flow.kind, .inviteRinging, nanos: time - flow.startedAt)
            }
            if flow.phase == .requesting {
                flows[index].phase = .proceeding
                flows[index].pending = nil
                let limit = UInt64(plan.transactionTimeoutMillis + plan.ringMillis)
                schedule(flow: index, atMillis: millis(time) + limit)
            }
        case 200..<300:
            if let dialog = flow.dialog {
                // the 200 again: our ACK was lost (§13.2.2.4)
                stats[.duplicatesReceived] += 1
                send(dialog.ack, socket: Int(flow.socket), to: plan.server)
                return
            }
            guard flow.phase == .requesting || flow.phase == .proceeding else { return }
            record(flow.kind, .inviteAnswered, nanos: time - flow.startedAt)
            let routes = response.headers.values(.recordRoute).flatMap(splitSIPList).reversed()
            let contact = response.headers[.contact].map(SIPMessages.uri(ofContact:)) ?? "sip:\(plan.domain)"
            flows[index].dialog = CallDialog(
                toValue: response.headers[.to] ?? "",
                remoteTarget: contact,
                routes: Array(routes),
                ack: ByteBuffer()
            )
            let ack = dialogRequest(
                index,
                method: "ACK",
                cseq: flow.cseq,
                branch: "z9hG4bK.\(plan.shardIndex).\(index).a\(flow.cseq).\(plan.token)"
            )
            flows[index].dialog?.ack = ack
            flows[index].pending = nil
            flows[index].phase = .talking
            countSent(flow.kind)
            send(ack, socket: Int(flow.socket), to: plan.server)
            schedule(flow: index, atMillis: millis(time) + UInt64(plan.talkMillis))
        default:
            // RFC 3261 §17.1.1.3: a non-2xx final is ACKed in its transaction (same branch).
            sendNon2xxAck(response, flow: index)
            guard flow.phase == .requesting || flow.phase == .proceeding else { return }
            if status == 401 || status == 407, challenged(response, flow: index) { return }
            fail(index, status: status, at: time)
        }
    }

    private func sendNon2xxAck(_ response: SIPResponse, flow index: Int) {
        let flow = flows[index]
        let phone = user(of: flow)
        let ack = SIPMessages.write(
            SIPMessages.Request(
                method: "ACK",
                requestURI: "sip:\(phone.target)@\(plan.domain)",
                local: io.locals[Int(flow.socket)],
                branch: "z9hG4bK.\(plan.shardIndex).\(index).\(flow.cseq).\(plan.token)",
                fromValue: "<sip:\(phone.user)@\(plan.domain)>;tag=\(fromTag(index))",
                toValue: response.headers[.to] ?? "",
                callID: callID(index),
                cseq: flow.cseq,
                contactUser: nil
            ),
            allocator: allocator
        )
        send(ack, socket: Int(flow.socket), to: plan.server)
    }

    private func respond(
        _ request: SIPRequest,
        _ status: Int,
        _ reason: String,
        socket: Int,
        to address: SocketAddress
    ) {
        stats[.responsesSent] += 1
        send(
            SIPMessages.response(to: request, status: status, reason: reason, allocator: allocator),
            socket: socket,
            to: address
        )
    }

    private func received(_ request: SIPRequest, from address: SocketAddress, socket: Int) {
        let method = request.method
        if socket >= firstCalleeSocket, method == .invite || method == .ack || method == .bye || method == .cancel {
            calleeReceived(request, from: address, socket: socket)
            return
        }
        switch method {
        case .notify:
            receivedNotify(request, from: address, socket: socket)
        case .bye:
            // the server ended a call of ours
            respond(request, 200, "OK", socket: socket, to: address)
            if let callID = request.callID, let index = flowIndex(callID: callID), flows[index].phase == .talking {
                succeed(index, at: now())
                flows[index].phase = .finished
            }
        case .options:
            respond(request, 200, "OK", socket: socket, to: address)
        case .ack:
            break
        default:
            respond(request, 501, "Not Implemented", socket: socket, to: address)
        }
    }

    private func receivedNotify(_ request: SIPRequest, from address: SocketAddress, socket: Int) {
        guard let callID = request.callID, let index = flowIndex(callID: callID), flows[index].kind == .subscribe,
            let cseq = request.cseq?.number
        else {
            stats[.unmatched] += 1
            respond(request, 481, "Call/Transaction Does Not Exist", socket: socket, to: address)
            return
        }
        respond(request, 200, "OK", socket: socket, to: address)
        let flow = flows[index]
        if flow.gotNotify && cseq <= flow.lastNotifyCSeq {
            stats[.notifyRetransmissionsReceived] += 1
            return
        }
        stats[.notifiesReceived] += 1
        flows[index].lastNotifyCSeq = cseq
        let time = now()
        if !flow.gotNotify {
            flows[index].gotNotify = true
            record(flow.kind, .subscribeFirstNotify, nanos: time - flow.startedAt)
            if flow.phase == .waitingNotify {
                flows[index].phase = .active
                succeed(index, at: time)
            }
            return
        }
        if plan.scenario == .fanout, let call = currentCall {
            let lamp = LineLamp(dialogInfo: request.body)
            let bit = UInt8(1) << UInt8(lamp.rawValue)
            let trigger = fanout[call].triggers[lamp.rawValue]
            guard flow.lampsSeen & bit == 0, trigger != 0, time >= trigger else { return }
            flows[index].lampsSeen |= bit
            let delay = time - trigger
            fanout[call].reached[lamp.rawValue] += 1
            fanout[call].lastNanos[lamp.rawValue] = max(fanout[call].lastNanos[lamp.rawValue], delay)
            let metric: Metric = [.fanoutEarly, .fanoutConfirmed, .fanoutIdle][lamp.rawValue]
            stats.record(metric, nanos: delay, window: lamp == .early)
        }
    }

    // MARK: Callee phones

    private func calleeReceived(_ request: SIPRequest, from address: SocketAddress, socket: Int) {
        guard let callID = request.callID, let cseq = request.cseq else { return }
        let existing = legByCallID[callID]
        switch request.method {
        case .invite:
            if let index = existing {
                if legs[index].inviteCSeq == cseq.number {
                    setup[.duplicatesReceived] += 1
                    let last = legs[index].phase == .ringing ? legs[index].ringing : legs[index].answer
                    send(last, socket: socket, to: address)
                } else {
                    respond(request, 491, "Request Pending", socket: socket, to: address)
                }
                return
            }
            setup[.calleeInvites] += 1
            let index = freeLegs.popLast() ?? legs.count
            let tag = "c\(index).\(plan.token)"
            let contact = "<sip:callee@\(io.locals[socket])>"
            let ringing = SIPMessages.response(
                to: request,
                status: 180,
                reason: "Ringing",
                toTag: tag,
                contact: contact,
                copyRecordRoute: true,
                allocator: allocator
            )
            let answer = SIPMessages.response(
                to: request,
                status: 200,
                reason: "OK",
                toTag: tag,
                contact: contact,
                copyRecordRoute: true,
                sdp: SIPMessages.sdp(user: "callee", version: 2),
                allocator: allocator
            )
            let leg = CalleeLeg(
                callID: callID,
                inviteCSeq: cseq.number,
                socket: UInt16(socket),
                remote: address,
                invite: request,
                ringing: ringing,
                answer: answer
            )
            if index == legs.count { legs.append(leg) } else { legs[index] = leg }
            legByCallID[callID] = index
            setup[.responsesSent] += 1
            send(ringing, socket: socket, to: address)
            schedule(leg: index, atMillis: millis(now()) + UInt64(max(0, plan.ringMillis)))
        case .ack:
            guard let index = existing, legs[index].phase == .answered else { return }
            legs[index].phase = .confirmed
            legs[index].invite = nil
            cancelTimer(leg: index)
            setup[.calleeAnswered] += 1
        case .bye:
            respond(request, 200, "OK", socket: socket, to: address)
            guard let index = existing else { return }
            setup[.calleeByes] += 1
            endLeg(index)
        case .cancel:
            respond(request, 200, "OK", socket: socket, to: address)
            guard let index = existing, legs[index].phase == .ringing, let invite = legs[index].invite else { return }
            send(
                SIPMessages.response(
                    to: invite,
                    status: 487,
                    reason: "Request Terminated",
                    toTag: "c\(index).\(plan.token)",
                    allocator: allocator
                ),
                socket: socket,
                to: address
            )
            endLeg(index)
        default:
            break
        }
    }

    private func endLeg(_ index: Int) {
        legByCallID[legs[index].callID] = nil
        legs[index].phase = .finished
        legs[index].invite = nil
        cancelTimer(leg: index)
        freeLegs.append(index)
    }

    // MARK: Fan-out

    private func startFanoutCalls(_ time: UInt64) {
        stage = .fanoutCalls
        nextCallAt = time
    }

    private func fanoutTick(_ time: UInt64) {
        if let call = currentCall, !fanout[call].ended { return }
        if fanout.count >= plan.fanoutCalls {
            stage = .settling
            settleUntil = time + UInt64(max(5_000, plan.callIntervalMillis)) * 1_000_000
            return
        }
        guard time >= nextCallAt else { return }
        // a new call: every watcher's lamps start again
        var call = FanoutCall()
        call.watchers = flows.reduce(0) { $0 + ($1.kind == .subscribe && $1.phase == .active ? 1 : 0) }
        for index in flows.indices where flows[index].kind == .subscribe { flows[index].lampsSeen = 0 }
        fanout.append(call)
        currentCall = fanout.count - 1
        nextCallAt = time + UInt64(plan.callIntervalMillis) * 1_000_000
        startFlow(.call, user: (fanout.count - 1) % plan.callers.count, socket: callerSocket ?? 0)
    }
}
