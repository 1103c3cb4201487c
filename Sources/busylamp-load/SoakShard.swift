import Foundation
import NIOCore
import NIOPosix
import SIPCore

/// Runs a soak on one event loop: phones that REGISTER and refresh, watchers that SUBSCRIBE,
/// refresh and answer every NOTIFY, and calls between the phones (answered, cancelled, or
/// picked up by a third phone with the directed pickup code), at bounded rates, until the
/// plan's time is up; then every call ends, the load settles, and `report` says what the
/// phones believe (each watcher's last lamp, each phone's registration) for the caller to
/// hold against the server's API.
///
/// Stages: registering → subscribing → warm-up calls → running → ending calls → settling → done.
/// Registrations and subscriptions are refreshed in every stage after their first success.
///
/// Confined to `loop`: every method runs there, hence `@unchecked Sendable`.
final class SoakShard: DatagramReceiver, @unchecked Sendable {
    enum Stage: String { case registering, subscribing, warmup, running, ending, settling, done }

    /// A client transaction of ours (RFC 3261 §17.1): retransmitted from T1 (INVITE: until a
    /// provisional; the others: doubling up to T2) until its final response or Timer B/F.
    struct Transaction {
        enum Owner {
            case register(Int)
            case subscribe(Int)
            case invite(Int)
            case bye(Int)
            case cancel(Int)
        }
        var owner: Owner
        var method: String
        var request: ByteBuffer
        var socket: Int
        var startedAt: UInt64
        var nextAt: UInt64
        var interval: UInt64
        var provisional = false
    }

    struct Phone {
        var callID: String
        var cseq: UInt32 = 0
        var authAttempts = 0
        /// The last REGISTER got 200 (and the phone has not unregistered since).
        var registered = false
        var everRegistered = false
        var registerInFlight = false
        var nextRegisterAt: UInt64 = .max
        /// Taken by a call (caller, callee or picker) until that call has ended.
        var busy = false
        /// How this phone answers the next INVITE the server sends it: after these ms, or
        /// never (it rings until cancelled, e.g. for a pickup).
        var answerAfter: UInt64?
    }

    struct Watch {
        var watcher: Int
        var target: Int
        var callID: String
        var fromTag: String
        var cseq: UInt32 = 0
        var authAttempts = 0
        var toTag: String?
        var remoteTarget: String?
        var routes: [String] = []
        /// Accepted (2xx) and not ended.
        var active = false
        var inFlight = false
        var nextRefreshAt: UInt64 = .max
        var lastLamp: LineLamp?
        var lastNotifyCSeq: UInt32 = 0
        var notifies = 0
        var endedByServer = false
    }

    struct Call {
        enum Kind { case normal, pickup }
        enum Phase { case inviting, ringing, talking, cancelling, ending, done }
        /// What the caller does next, at `nextAt`.
        enum Next { case none, bye, cancel, pickup }
        var kind: Kind
        var caller: Int
        /// The dialled phone; for a pickup, the ringing phone picked up.
        var callee: Int
        var requestURI: String
        var callID: String
        var fromTag: String
        var cseq: UInt32 = 0
        var inviteCSeq: UInt32 = 0
        var inviteBranch = ""
        var authAttempts = 0
        var phase: Phase = .inviting
        var next: Next = .none
        var nextAt: UInt64 = .max
        var toValue: String?
        var remoteTarget: String?
        var routes: [String] = []
        var ack: ByteBuffer?
        /// For a call to be picked up: the picker's call, once placed.
        var pickerCall: Int?
        var picker: Int?
        /// For a picker's call: the ringing call it picks up.
        var pickedCall: Int?
        var endRequested = false
        var talkMillis: UInt64 = 0
    }

    /// A phone's side of an INVITE from the server (RFC 3261 §13.3): the first one of a call
    /// to it, or a re-INVITE in a dialog of ours (the picker's, carrying the caller's offer).
    struct Leg {
        enum Phase { case ringing, answered, ended }
        var phone: Int
        var request: SIPRequest
        var remote: SocketAddress
        var socket: Int
        var tag: String
        var phase: Phase
        var last: ByteBuffer
        var answerAt: UInt64 = .max
        var answeredAt: UInt64 = 0
        var interval: UInt64 = 0
        var nextAt: UInt64 = .max
    }

    let plan: SoakPlan
    let loop: EventLoop
    let done: EventLoopPromise<Void>
    /// Fulfilled when the warm-up is over (registrations, subscriptions, warm-up calls).
    let warm: EventLoopPromise<Void>

    private let parser = SIPParser()
    private let allocator = ByteBufferAllocator()
    private var io = LoopbackSocketSet()
    private var task: RepeatedTask?
    private var origin: UInt64 = 0
    private var random: SplitMix64

    private(set) var stage: Stage = .registering
    private var stageStartedAt: UInt64 = 0
    private var offered = 0
    private var phones: [Phone] = []
    private var phoneByUser: [String: Int] = [:]
    private var watches: [Watch] = []
    private var watchByCallID: [String: Int] = [:]
    private var calls: [Call] = []
    private var callByCallID: [String: Int] = [:]
    private var liveCalls: Set<Int> = []
    private var transactions: [String: Transaction] = [:]
    private var legs: [String: Leg] = [:]
    private var callsStartedInRun = 0
    private var legsMade = 0
    private var lastPhoneScan: UInt64 = 0

    private(set) var counts: [String: Int] = [:]
    /// Failures by kind (`timeout REGISTER`, `SUBSCRIBE 481`, …), and the first few in words.
    private(set) var failures: [String: Int] = [:]
    private(set) var failureSamples: [String] = []
    private(set) var timeline: [String: Double] = [:]

    init(plan: SoakPlan, loop: EventLoop) {
        self.plan = plan
        self.loop = loop
        self.done = loop.makePromise()
        self.warm = loop.makePromise()
        self.random = SplitMix64(seed: plan.seed)
    }

    // MARK: Sockets

    func bind() -> EventLoopFuture<Void> {
        let ports = Array(repeating: 0, count: plan.sockets)
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

    /// Milliseconds since the start.
    private func now() -> UInt64 { (NIODeadline.now().uptimeNanoseconds - origin) / 1_000_000 }

    func start() {
        origin = NIODeadline.now().uptimeNanoseconds
        phones = plan.phones.indices.map { index in Phone(callID: "sr\(index).\(plan.token)") }
        for (index, phone) in plan.phones.enumerated() {
            phoneByUser[phone.number] = index
            phoneByUser[phone.ext] = index
        }
        makeWatches()
        enter(.registering, at: 0)
        task = loop.scheduleRepeatedTask(initialDelay: .milliseconds(10), delay: .milliseconds(10)) { _ in
            self.tick()
        }
    }

    /// Watcher `i` (phone `callPool + i`) watches `targetsPerWatcher` distinct phones of the
    /// call pool, spread so that every pool phone has watchers.
    private func makeWatches() {
        let pool = min(plan.callPool, plan.phones.count)
        let watcherCount = min(plan.watchers, plan.phones.count - pool)
        for index in 0..<max(0, watcherCount) {
            let watcher = pool + index
            for slot in 0..<min(plan.targetsPerWatcher, pool) {
                let target = (index * plan.targetsPerWatcher + slot) % pool
                let number = watches.count
                let callID = "sw\(number).\(plan.token)"
                watchByCallID[callID] = number
                watches.append(Watch(watcher: watcher, target: target, callID: callID, fromTag: "wf\(number)"))
            }
        }
    }

    private func enter(_ next: Stage, at time: UInt64) {
        stage = next
        stageStartedAt = time
        offered = 0
        timeline[next.rawValue] = Double(time) / 1000
    }

    private func tick() {
        let time = now()
        runTransactions(time)
        runLegs(time)
        runCalls(time)
        if time >= lastPhoneScan + 100 {
            lastPhoneScan = time
            refreshRegistrations(time)
            refreshSubscriptions(time)
        }
        advance(time)
        flush()
    }

    /// Offers the stage's new work at its rate, and moves on when the stage is over.
    private func advance(_ time: UInt64) {
        let elapsed = Double(time - stageStartedAt) / 1000
        switch stage {
        case .registering:
            let target = min(phones.count, Int(elapsed * plan.registerRate) + 1)
            while offered < target {
                register(offered, at: time)
                offered += 1
            }
            if offered >= phones.count && !phones.contains(where: \.registerInFlight) || elapsed > 120 {
                enter(.subscribing, at: time)
            }
        case .subscribing:
            let target = min(watches.count, Int(elapsed * plan.subscribeRate) + 1)
            while offered < target {
                subscribe(offered, at: time)
                offered += 1
            }
            let settled = watches.allSatisfy { !$0.inFlight && ($0.lastLamp != nil || !$0.active) }
            if offered >= watches.count && settled || elapsed > 120 {
                enter(plan.warmupCallSeconds > 0 ? .warmup : .running, at: time)
                if plan.warmupCallSeconds <= 0 { warm.succeed(()) }
            }
        case .warmup:
            offerCalls(elapsed: elapsed, at: time)
            if elapsed >= plan.warmupCallSeconds {
                enter(.running, at: time)
                warm.succeed(())
            }
        case .running:
            offerCalls(elapsed: elapsed, at: time)
            if elapsed >= plan.durationSeconds {
                enter(.ending, at: time)
                for index in liveCalls.sorted() { endCall(index, at: time) }
            }
        case .ending:
            let legsUp = legs.values.contains { $0.phase != .ended }
            if liveCalls.isEmpty && !legsUp || elapsed > plan.endSeconds {
                if !liveCalls.isEmpty { failure("calls not ended", "\(liveCalls.count) calls still up after the end") }
                enter(.settling, at: time)
            }
        case .settling:
            if elapsed >= plan.settleSeconds && transactions.isEmpty || elapsed > plan.settleSeconds + 40 {
                enter(.done, at: time)
                task?.cancel()
                task = nil
                done.succeed(())
            }
        case .done:
            break
        }
    }

    private func count(_ name: String, _ amount: Int = 1) { counts[name, default: 0] += amount }

    private func failure(_ kind: String, _ detail: String) {
        failures[kind, default: 0] += 1
        if failureSamples.count < 50 { failureSamples.append("[\(Double(now()) / 1000) s] \(kind): \(detail)") }
    }

    // MARK: Client transactions

    private func key(_ callID: String, _ cseq: UInt32, _ method: String) -> String { "\(callID) \(cseq) \(method)" }

    private func startTransaction(
        _ owner: Transaction.Owner,
        method: String,
        callID: String,
        cseq: UInt32,
        request: ByteBuffer,
        socket: Int,
        at time: UInt64
    ) {
        let interval = UInt64(plan.t1Millis)
        transactions[key(callID, cseq, method)] = Transaction(
            owner: owner,
            method: method,
            request: request,
            socket: socket,
            startedAt: time,
            nextAt: time + interval,
            interval: interval
        )
        count("sent \(method)")
        send(request, socket: socket, to: plan.server)
    }

    private func runTransactions(_ time: UInt64) {
        var expired: [String] = []
        for (key, transaction) in transactions where transaction.nextAt <= time {
            if time >= transaction.startedAt + UInt64(plan.timeoutMillis) {
                expired.append(key)
                continue
            }
            if transaction.provisional && transaction.method == "INVITE" {
                // Timer A stops at a provisional; Timer C's job is the caller's own timer.
                transactions[key]?.nextAt = transaction.startedAt + UInt64(plan.timeoutMillis) + 60_000
                continue
            }
            count("retransmitted \(transaction.method)")
            send(transaction.request, socket: transaction.socket, to: plan.server)
            let doubled = transaction.interval * 2
            let next = transaction.method == "INVITE" ? doubled : min(doubled, UInt64(plan.t2Millis))
            transactions[key]?.interval = next
            transactions[key]?.nextAt = min(time + next, transaction.startedAt + UInt64(plan.timeoutMillis))
        }
        for key in expired {
            guard let transaction = transactions.removeValue(forKey: key) else { continue }
            failure("timeout \(transaction.method)", key)
            transactionFailed(transaction.owner, status: nil, at: time)
        }
    }

    /// A transaction of ours ended without success (nil: timeout).
    private func transactionFailed(_ owner: Transaction.Owner, status: Int?, at time: UInt64) {
        switch owner {
        case .register(let index):
            phones[index].registerInFlight = false
            phones[index].registered = false
            phones[index].nextRegisterAt = time + 5_000
        case .subscribe(let index):
            watches[index].inFlight = false
            watches[index].active = false
            watches[index].toTag = nil
            watches[index].nextRefreshAt = time + 5_000
        case .invite(let index):
            callEnded(index, at: time)
        case .bye(let index):
            callEnded(index, at: time)
        case .cancel:
            break
        }
    }

    private func credentials(
        _ response: SIPResponse,
        phone: Int,
        method: String,
        uri: String,
        cnonce: String
    ) -> (StaticString, String)? {
        let proxy = response.statusCode == 407
        guard let value = response.headers[proxy ? .proxyAuthenticate : .wwwAuthenticate],
            let challenge = ClientChallenge(headerValue: value)
        else { return nil }
        let line = plan.phones[phone]
        let text = challenge.credentials(
            username: line.number,
            password: line.password,
            method: method,
            uri: uri,
            cnonce: cnonce
        )
        return (proxy ? "Proxy-Authorization" : "Authorization", text)
    }

    // MARK: Registrations

    private func register(_ index: Int, at time: UInt64, challenge: SIPResponse? = nil) {
        let line = plan.phones[index]
        phones[index].cseq += 1
        phones[index].registerInFlight = true
        let socket = index % plan.sockets
        var request = SIPMessages.Request(
            method: "REGISTER",
            requestURI: "sip:\(plan.domain)",
            local: io.locals[socket],
            branch: "z9hG4bK.r\(index).\(phones[index].cseq).\(plan.token)",
            fromValue: "<sip:\(line.number)@\(plan.domain)>;tag=rf\(index)",
            toValue: "<sip:\(line.number)@\(plan.domain)>",
            callID: phones[index].callID,
            cseq: phones[index].cseq,
            contactUser: line.number,
            fixedHeaders: "Expires: \(plan.registerExpires)\r\n"
        )
        if let challenge {
            request.credentials = credentials(
                challenge,
                phone: index,
                method: "REGISTER",
                uri: request.requestURI,
                cnonce: "cr\(index).\(phones[index].cseq)"
            )
        } else {
            phones[index].authAttempts = 0
        }
        startTransaction(
            .register(index),
            method: "REGISTER",
            callID: phones[index].callID,
            cseq: phones[index].cseq,
            request: SIPMessages.write(request, allocator: allocator),
            socket: socket,
            at: time
        )
    }

    /// When to refresh what lasts `expires` seconds from `time`: between 40 % and 60 % of it,
    /// spread so that the refreshes do not bunch.
    private func refreshTime(_ time: UInt64, expires: Int) -> UInt64 {
        let millis = UInt64(max(1, expires)) * 1000
        return time + millis * 2 / 5 + random.next(below: millis / 5)
    }

    private func refreshRegistrations(_ time: UInt64) {
        guard stage != .registering else { return }
        for index in phones.indices where !phones[index].registerInFlight && phones[index].nextRegisterAt <= time {
            count("register refreshes")
            register(index, at: time)
        }
    }

    private func registerResponse(_ response: SIPResponse, phone index: Int, at time: UInt64) {
        switch response.statusCode {
        case 401 where phones[index].authAttempts < 2, 407 where phones[index].authAttempts < 2:
            phones[index].authAttempts += 1
            count("challenges REGISTER")
            register(index, at: time, challenge: response)
        case 200..<300:
            phones[index].registerInFlight = false
            phones[index].registered = true
            phones[index].everRegistered = true
            count("ok REGISTER")
            phones[index].nextRegisterAt = refreshTime(time, expires: plan.registerExpires)
        default:
            phones[index].registerInFlight = false
            phones[index].registered = false
            phones[index].nextRegisterAt = time + 5_000
            failure("REGISTER \(response.statusCode)", plan.phones[index].ext)
        }
    }

    // MARK: Subscriptions

    private func subscribe(_ index: Int, at time: UInt64, challenge: SIPResponse? = nil) {
        let watch = watches[index]
        let watcher = plan.phones[watch.watcher]
        let target = plan.phones[watch.target]
        watches[index].cseq += 1
        watches[index].inFlight = true
        let socket = watch.watcher % plan.sockets
        let inDialog = watch.toTag != nil
        let requestURI =
            inDialog ? (watch.remoteTarget ?? "sip:\(target.ext)@\(plan.domain)") : "sip:\(target.ext)@\(plan.domain)"
        var to = "<sip:\(target.ext)@\(plan.domain)>"
        if let tag = watch.toTag { to += ";tag=\(tag)" }
        var request = SIPMessages.Request(
            method: "SUBSCRIBE",
            requestURI: requestURI,
            local: io.locals[socket],
            branch: "z9hG4bK.w\(index).\(watches[index].cseq).\(plan.token)",
            fromValue: "<sip:\(watcher.number)@\(plan.domain)>;tag=\(watch.fromTag)",
            toValue: to,
            callID: watch.callID,
            cseq: watches[index].cseq,
            contactUser: watcher.number,
            routes: inDialog ? watch.routes : [],
            fixedHeaders:
                "Event: dialog\r\nAccept: application/dialog-info+xml\r\nExpires: \(plan.subscribeExpires)\r\n"
        )
        if let challenge {
            request.credentials = credentials(
                challenge,
                phone: watch.watcher,
                method: "SUBSCRIBE",
                uri: requestURI,
                cnonce: "cw\(index).\(watches[index].cseq)"
            )
        } else {
            watches[index].authAttempts = 0
        }
        startTransaction(
            .subscribe(index),
            method: "SUBSCRIBE",
            callID: watch.callID,
            cseq: watches[index].cseq,
            request: SIPMessages.write(request, allocator: allocator),
            socket: socket,
            at: time
        )
    }

    private func refreshSubscriptions(_ time: UInt64) {
        guard stage != .registering, stage != .subscribing else { return }
        for index in watches.indices where !watches[index].inFlight && watches[index].nextRefreshAt <= time {
            count(watches[index].active ? "subscribe refreshes" : "subscribe retries")
            subscribe(index, at: time)
        }
    }

    private func subscribeResponse(_ response: SIPResponse, watch index: Int, at time: UInt64) {
        switch response.statusCode {
        case 401 where watches[index].authAttempts < 2, 407 where watches[index].authAttempts < 2:
            watches[index].authAttempts += 1
            count("challenges SUBSCRIBE")
            subscribe(index, at: time, challenge: response)
        case 200..<300:
            watches[index].inFlight = false
            watches[index].active = true
            count("ok SUBSCRIBE")
            if watches[index].toTag == nil {
                watches[index].toTag = Self.tag(response.headers[.to])
                watches[index].remoteTarget = response.headers[.contact].map(SIPMessages.uri(ofContact:))
                watches[index].routes = Array(response.headers.values(.recordRoute).flatMap(splitSIPList).reversed())
            }
            let expires = Self.expires(response.headers[.expires]) ?? plan.subscribeExpires
            watches[index].nextRefreshAt = refreshTime(time, expires: expires)
        default:
            let wasActive = watches[index].active
            watches[index].inFlight = false
            watches[index].active = false
            watches[index].toTag = nil
            watches[index].remoteTarget = nil
            watches[index].routes = []
            watches[index].nextRefreshAt = time + 5_000
            let line = "\(plan.phones[watches[index].watcher].ext)→\(plan.phones[watches[index].target].ext)"
            failure("SUBSCRIBE \(response.statusCode)\(wasActive ? " (refresh)" : "")", line)
        }
    }

    private func receivedNotify(_ request: SIPRequest, from address: SocketAddress, socket: Int) {
        guard let callID = request.callID, let index = watchByCallID[callID], let cseq = request.cseq?.number else {
            count("NOTIFY unmatched")
            respond(request, 481, "Call/Transaction Does Not Exist", socket: socket, to: address)
            return
        }
        respond(request, 200, "OK", socket: socket, to: address)
        if watches[index].notifies > 0 && cseq <= watches[index].lastNotifyCSeq {
            count("NOTIFY retransmissions")
            return
        }
        count("NOTIFY")
        watches[index].notifies += 1
        watches[index].lastNotifyCSeq = cseq
        watches[index].lastLamp = LineLamp(dialogInfo: request.body)
        if watches[index].toTag == nil { watches[index].toTag = Self.tag(request.headers[.from]) }
        if let state = request.headers[.subscriptionState], state.lowercased().hasPrefix("terminated") {
            watches[index].active = false
            watches[index].toTag = nil
            watches[index].endedByServer = true
            watches[index].nextRefreshAt = now() + 1_000
            failure(
                "NOTIFY terminated",
                "\(plan.phones[watches[index].watcher].ext)→\(plan.phones[watches[index].target].ext): \(state)"
            )
        }
    }

    // MARK: Calls

    /// Places calls at the plan's rate between idle phones of the pool: answered, cancelled
    /// while ringing, or picked up by a third phone.
    private func offerCalls(elapsed: Double, at time: UInt64) {
        let target = Int(elapsed * plan.callsPerSecond)
        while offered < target {
            offered += 1
            placeCall(at: time)
        }
    }

    private func idlePoolPhone(excluding: Set<Int>) -> Int? {
        let pool = min(plan.callPool, phones.count)
        for _ in 0..<20 {
            let index = Int(random.next(below: UInt64(pool)))
            if !phones[index].busy && phones[index].registered && !excluding.contains(index) { return index }
        }
        return nil
    }

    private func placeCall(at time: UInt64) {
        guard let caller = idlePoolPhone(excluding: []), let callee = idlePoolPhone(excluding: [caller]) else {
            count("calls skipped (no idle phones)")
            return
        }
        let roll = Double(random.next(below: 1000)) / 1000
        var picker: Int?
        if roll < plan.pickupShare {
            guard let third = idlePoolPhone(excluding: [caller, callee]) else {
                count("calls skipped (no idle phones)")
                return
            }
            picker = third
        }
        let ring = UInt64(random.next(in: plan.ringMillis))
        let talk = UInt64(random.next(in: plan.talkMillis))
        let index = newCall(
            .normal,
            caller: caller,
            callee: callee,
            requestURI: "sip:\(plan.phones[callee].ext)@\(plan.domain)"
        )
        calls[index].talkMillis = talk
        phones[callee].busy = true
        if let picker {
            phones[picker].busy = true
            phones[callee].answerAfter = nil
            calls[index].picker = picker
            calls[index].next = .pickup
            count("calls placed (pickup)")
        } else if roll < plan.pickupShare + plan.cancelShare {
            phones[callee].answerAfter = nil
            calls[index].next = .cancel
            count("calls placed (cancel)")
        } else {
            phones[callee].answerAfter = ring
            count("calls placed (answer)")
        }
        calls[index].nextAt = .max
        // the pickup or the cancel comes `ring` ms after the ringing began
        calls[index].talkMillis = talk
        ringDelay[index] = ring
        if stage == .running { callsStartedInRun += 1 }
        invite(index, at: time)
    }

    private var ringDelay: [Int: UInt64] = [:]

    private func newCall(_ kind: Call.Kind, caller: Int, callee: Int, requestURI: String) -> Int {
        let index = calls.count
        let callID = "sc\(index).\(plan.token)"
        calls.append(
            Call(
                kind: kind,
                caller: caller,
                callee: callee,
                requestURI: requestURI,
                callID: callID,
                fromTag: "cf\(index)"
            )
        )
        callByCallID[callID] = index
        liveCalls.insert(index)
        phones[caller].busy = true
        return index
    }

    private func invite(_ index: Int, at time: UInt64, challenge: SIPResponse? = nil) {
        let call = calls[index]
        let line = plan.phones[call.caller]
        calls[index].cseq += 1
        let cseq = calls[index].cseq
        let socket = call.caller % plan.sockets
        let branch = "z9hG4bK.c\(index).\(cseq).\(plan.token)"
        calls[index].inviteCSeq = cseq
        calls[index].inviteBranch = branch
        var request = SIPMessages.Request(
            method: "INVITE",
            requestURI: call.requestURI,
            local: io.locals[socket],
            branch: branch,
            fromValue: "<sip:\(line.number)@\(plan.domain)>;tag=\(call.fromTag)",
            toValue: "<\(call.requestURI)>",
            callID: call.callID,
            cseq: cseq,
            contactUser: line.number,
            body: SIPMessages.sdp(user: line.number, version: 1),
            contentType: "application/sdp"
        )
        if let challenge {
            request.credentials = credentials(
                challenge,
                phone: call.caller,
                method: "INVITE",
                uri: call.requestURI,
                cnonce: "cc\(index).\(cseq)"
            )
        }
        startTransaction(
            .invite(index),
            method: "INVITE",
            callID: call.callID,
            cseq: cseq,
            request: SIPMessages.write(request, allocator: allocator),
            socket: socket,
            at: time
        )
    }

    private func inviteResponse(_ response: SIPResponse, call index: Int, cseq: UInt32, at time: UInt64) {
        let status = response.statusCode
        let call = calls[index]
        switch status {
        case 100..<200:
            transactions[key(call.callID, cseq, "INVITE")]?.provisional = true
            guard status > 100, call.phase == .inviting else { return }
            calls[index].phase = .ringing
            if call.endRequested {
                cancel(index, at: time)
            } else if call.next == .cancel || call.next == .pickup {
                calls[index].nextAt = time + (ringDelay[index] ?? 1000)
            }
        case 200..<300:
            transactions[key(call.callID, cseq, "INVITE")] = nil
            if let ack = call.ack {
                count("2xx retransmissions")
                send(ack, socket: call.caller % plan.sockets, to: plan.server)
                return
            }
            guard call.phase == .inviting || call.phase == .ringing || call.phase == .cancelling else { return }
            count(call.kind == .pickup ? "ok INVITE (picker)" : "ok INVITE")
            calls[index].toValue = response.headers[.to]
            calls[index].remoteTarget = response.headers[.contact].map(SIPMessages.uri(ofContact:))
            calls[index].routes = Array(response.headers.values(.recordRoute).flatMap(splitSIPList).reversed())
            let ack = dialogRequest(
                index,
                method: "ACK",
                cseq: cseq,
                branch: "z9hG4bK.c\(index).a\(cseq).\(plan.token)"
            )
            calls[index].ack = ack
            count("sent ACK")
            send(ack, socket: call.caller % plan.sockets, to: plan.server)
            calls[index].phase = .talking
            if call.kind == .pickup {
                // the picker waits: the caller hangs up, and the server relays its BYE
                calls[index].next = .none
                calls[index].nextAt = .max
            } else if call.endRequested || stage == .ending || call.phase == .cancelling {
                bye(index, at: time)
            } else {
                calls[index].next = .bye
                calls[index].nextAt = time + call.talkMillis
            }
        default:
            transactions[key(call.callID, cseq, "INVITE")] = nil
            sendNon2xxAck(response, call: index, cseq: cseq)
            if (status == 401 || status == 407) && call.authAttempts < 2 && call.phase == .inviting {
                calls[index].authAttempts += 1
                count("challenges INVITE")
                invite(index, at: time, challenge: response)
                return
            }
            if status == 487 && call.phase == .cancelling {
                count("cancelled INVITE")
            } else {
                failure("INVITE \(status)", "\(plan.phones[call.caller].ext)→\(call.requestURI)")
            }
            callEnded(index, at: time)
        }
    }

    private func sendNon2xxAck(_ response: SIPResponse, call index: Int, cseq: UInt32) {
        let call = calls[index]
        guard cseq == call.inviteCSeq else { return }
        let socket = call.caller % plan.sockets
        let ack = SIPMessages.write(
            SIPMessages.Request(
                method: "ACK",
                requestURI: call.requestURI,
                local: io.locals[socket],
                branch: call.inviteBranch,
                fromValue: "<sip:\(plan.phones[call.caller].number)@\(plan.domain)>;tag=\(call.fromTag)",
                toValue: response.headers[.to] ?? "<\(call.requestURI)>",
                callID: call.callID,
                cseq: cseq,
                contactUser: nil
            ),
            allocator: allocator
        )
        send(ack, socket: socket, to: plan.server)
    }

    /// RFC 3261 §12.2.1.1: a request in the caller's dialog, to the remote target through the
    /// route set.
    private func dialogRequest(_ index: Int, method: StaticString, cseq: UInt32, branch: String) -> ByteBuffer {
        let call = calls[index]
        let socket = call.caller % plan.sockets
        return SIPMessages.write(
            SIPMessages.Request(
                method: method,
                requestURI: call.remoteTarget ?? call.requestURI,
                local: io.locals[socket],
                branch: branch,
                fromValue: "<sip:\(plan.phones[call.caller].number)@\(plan.domain)>;tag=\(call.fromTag)",
                toValue: call.toValue ?? "<\(call.requestURI)>",
                callID: call.callID,
                cseq: cseq,
                contactUser: plan.phones[call.caller].number,
                routes: call.routes
            ),
            allocator: allocator
        )
    }

    private func bye(_ index: Int, at time: UInt64) {
        calls[index].phase = .ending
        calls[index].next = .none
        calls[index].nextAt = .max
        calls[index].cseq += 1
        let cseq = calls[index].cseq
        let request = dialogRequest(index, method: "BYE", cseq: cseq, branch: "z9hG4bK.c\(index).\(cseq).\(plan.token)")
        startTransaction(
            .bye(index),
            method: "BYE",
            callID: calls[index].callID,
            cseq: cseq,
            request: request,
            socket: calls[index].caller % plan.sockets,
            at: time
        )
    }

    /// RFC 3261 §9.1: CANCEL with the INVITE's Request-URI, Call-ID, From, To, CSeq number
    /// and branch.
    private func cancel(_ index: Int, at time: UInt64) {
        let call = calls[index]
        calls[index].phase = .cancelling
        calls[index].next = .none
        calls[index].nextAt = .max
        let socket = call.caller % plan.sockets
        let request = SIPMessages.write(
            SIPMessages.Request(
                method: "CANCEL",
                requestURI: call.requestURI,
                local: io.locals[socket],
                branch: call.inviteBranch,
                fromValue: "<sip:\(plan.phones[call.caller].number)@\(plan.domain)>;tag=\(call.fromTag)",
                toValue: "<\(call.requestURI)>",
                callID: call.callID,
                cseq: call.inviteCSeq,
                contactUser: nil
            ),
            allocator: allocator
        )
        startTransaction(
            .cancel(index),
            method: "CANCEL",
            callID: call.callID,
            cseq: call.inviteCSeq,
            request: request,
            socket: socket,
            at: time
        )
    }

    /// The end of the load: a talking call gets BYE, a ringing one CANCEL, one not yet ringing
    /// is cancelled at its first provisional (§9.1: not before); a picker's call is ended by
    /// the caller's BYE, relayed.
    private func endCall(_ index: Int, at time: UInt64) {
        let call = calls[index]
        guard call.kind == .normal else { return }
        calls[index].endRequested = true
        switch call.phase {
        case .talking:
            bye(index, at: time)
        case .ringing where call.pickerCall == nil:
            cancel(index, at: time)
        default:
            break
        }
    }

    private func runCalls(_ time: UInt64) {
        for index in liveCalls where calls[index].nextAt <= time {
            let call = calls[index]
            calls[index].nextAt = .max
            switch call.next {
            case .bye where call.phase == .talking:
                bye(index, at: time)
            case .cancel where call.phase == .ringing:
                cancel(index, at: time)
            case .pickup where call.phase == .ringing:
                pickUp(index, at: time)
            default:
                break
            }
        }
    }

    private func pickUp(_ index: Int, at time: UInt64) {
        guard let picker = calls[index].picker else { return }
        calls[index].next = .none
        let callee = calls[index].callee
        let uri = "sip:\(plan.pickupCode)\(plan.phones[callee].ext)@\(plan.domain)"
        let pickerCall = newCall(.pickup, caller: picker, callee: callee, requestURI: uri)
        calls[index].pickerCall = pickerCall
        calls[pickerCall].pickedCall = index
        count("pickups")
        invite(pickerCall, at: time)
    }

    /// A call of ours is over: its phones are free (the picked-up call frees its picker
    /// through the picker's own call).
    private func callEnded(_ index: Int, at time: UInt64) {
        guard calls[index].phase != .done else { return }
        calls[index].phase = .done
        calls[index].nextAt = .max
        liveCalls.remove(index)
        ringDelay[index] = nil
        phones[calls[index].caller].busy = false
        if calls[index].kind == .normal {
            phones[calls[index].callee].busy = false
            phones[calls[index].callee].answerAfter = nil
            if let picker = calls[index].picker, calls[index].pickerCall == nil { phones[picker].busy = false }
        }
        count(calls[index].kind == .pickup ? "ended calls (picker)" : "ended calls")
        // a pickup that failed leaves its call ringing: the caller gives up
        if let picked = calls[index].pickedCall, calls[picked].phase == .ringing {
            cancel(picked, at: time)
        }
    }

    // MARK: Phones answering the server

    private func respond(_ request: SIPRequest, _ status: Int, _ reason: String, socket: Int, to address: SocketAddress)
    {
        count("responded \(status)")
        send(
            SIPMessages.response(to: request, status: status, reason: reason, allocator: allocator),
            socket: socket,
            to: address
        )
    }

    private func received(_ request: SIPRequest, from address: SocketAddress, socket: Int) {
        switch request.method {
        case .notify:
            receivedNotify(request, from: address, socket: socket)
        case .invite:
            receivedInvite(request, from: address, socket: socket)
        case .ack:
            guard let callID = request.callID, let cseq = request.cseq?.number else { return }
            let legKey = "\(callID) \(cseq)"
            if let leg = legs[legKey], leg.phase == .answered {
                count("ACK received")
                endLeg(legKey)
            }
        case .bye:
            respond(request, 200, "OK", socket: socket, to: address)
            guard let callID = request.callID else { return }
            count("BYE received")
            if let index = callByCallID[callID] {
                callEnded(index, at: now())
            }
            for (legKey, leg) in legs where leg.request.callID == callID && leg.phase != .ended {
                endLeg(legKey)
            }
        case .cancel:
            respond(request, 200, "OK", socket: socket, to: address)
            guard let callID = request.callID, let cseq = request.cseq?.number else { return }
            let legKey = "\(callID) \(cseq)"
            guard let leg = legs[legKey], leg.phase == .ringing else { return }
            count("CANCEL received")
            let terminated = SIPMessages.response(
                to: leg.request,
                status: 487,
                reason: "Request Terminated",
                toTag: leg.tag,
                allocator: allocator
            )
            legs[legKey]?.last = terminated
            endLeg(legKey)
            count("responded 487")
            send(terminated, socket: socket, to: address)
        case .options:
            respond(request, 200, "OK", socket: socket, to: address)
        default:
            respond(request, 501, "Not Implemented", socket: socket, to: address)
        }
    }

    /// An ended leg is kept a while, for retransmissions of its INVITE (Timer H's 64·T1).
    private func endLeg(_ legKey: String) {
        legs[legKey]?.phase = .ended
        legs[legKey]?.nextAt = now() + UInt64(plan.timeoutMillis)
    }

    /// An INVITE from the server: to a phone of ours (ring, then answer or not), or a
    /// re-INVITE in a picker's dialog (answer at once with SDP).
    private func receivedInvite(_ request: SIPRequest, from address: SocketAddress, socket: Int) {
        guard let callID = request.callID, let cseq = request.cseq?.number else { return }
        let legKey = "\(callID) \(cseq)"
        if let leg = legs[legKey] {
            count("INVITE retransmissions")
            send(leg.last, socket: socket, to: address)
            return
        }
        let time = now()
        legsMade += 1
        let tag = "lt\(legsMade).\(plan.token)"
        if let call = callByCallID[callID] {
            // a re-INVITE in our dialog (the picker's): our answer at once
            let phone = calls[call].caller
            let contact = "<sip:\(plan.phones[phone].number)@\(io.locals[socket])>"
            let answer = SIPMessages.response(
                to: request,
                status: 200,
                reason: "OK",
                contact: contact,
                sdp: SIPMessages.sdp(user: plan.phones[phone].number, version: 2),
                allocator: allocator
            )
            count("re-INVITE received")
            legs[legKey] = Leg(
                phone: phone,
                request: request,
                remote: address,
                socket: socket,
                tag: tag,
                phase: .answered,
                last: answer,
                answeredAt: time,
                interval: UInt64(plan.t1Millis),
                nextAt: time + UInt64(plan.t1Millis)
            )
            count("responded 200")
            send(answer, socket: socket, to: address)
            return
        }
        guard let user = request.uri.user, let phone = phoneByUser[user] else {
            count("INVITE to unknown phone")
            respond(request, 404, "Not Found", socket: socket, to: address)
            return
        }
        count("INVITE received")
        let contact = "<sip:\(plan.phones[phone].number)@\(io.locals[socket])>"
        let ringing = SIPMessages.response(
            to: request,
            status: 180,
            reason: "Ringing",
            toTag: tag,
            contact: contact,
            copyRecordRoute: true,
            allocator: allocator
        )
        var leg = Leg(
            phone: phone,
            request: request,
            remote: address,
            socket: socket,
            tag: tag,
            phase: .ringing,
            last: ringing
        )
        if let after = phones[phone].answerAfter {
            leg.answerAt = time + after
            leg.nextAt = leg.answerAt
        }
        legs[legKey] = leg
        count("responded 180")
        send(ringing, socket: socket, to: address)
    }

    /// Legs: the answer when its ring time is over, the 2xx again until the ACK (§13.3.1.4),
    /// and ended legs forgotten once no retransmission of their INVITE can come.
    private func runLegs(_ time: UInt64) {
        var forget: [String] = []
        for (legKey, leg) in legs where leg.nextAt <= time {
            switch leg.phase {
            case .ringing:
                let contact = "<sip:\(plan.phones[leg.phone].number)@\(io.locals[leg.socket])>"
                let answer = SIPMessages.response(
                    to: leg.request,
                    status: 200,
                    reason: "OK",
                    toTag: leg.tag,
                    contact: contact,
                    copyRecordRoute: true,
                    sdp: SIPMessages.sdp(user: plan.phones[leg.phone].number, version: 2),
                    allocator: allocator
                )
                legs[legKey]?.phase = .answered
                legs[legKey]?.last = answer
                legs[legKey]?.answeredAt = time
                legs[legKey]?.interval = UInt64(plan.t1Millis)
                legs[legKey]?.nextAt = time + UInt64(plan.t1Millis)
                count("responded 200")
                send(answer, socket: leg.socket, to: leg.remote)
            case .answered:
                if time >= leg.answeredAt + UInt64(plan.timeoutMillis) {
                    failure("no ACK", legKey)
                    endLeg(legKey)
                    continue
                }
                count("retransmitted 200")
                send(leg.last, socket: leg.socket, to: leg.remote)
                let next = min(leg.interval * 2, UInt64(plan.t2Millis))
                legs[legKey]?.interval = next
                legs[legKey]?.nextAt = time + next
            case .ended:
                forget.append(legKey)
            }
        }
        for legKey in forget { legs[legKey] = nil }
    }

    // MARK: Receiving

    func receive(_ envelope: AddressedEnvelope<ByteBuffer>, socket: Int) {
        var buffer = envelope.data
        guard let bytes = buffer.readBytes(length: buffer.readableBytes) else { return }
        let message: SIPMessage
        do {
            message = try parser.parse(bytes, framing: .datagram)
        } catch {
            failure("parse error", "\(error)")
            return
        }
        switch message {
        case .response(let response):
            received(response)
        case .request(let request):
            received(request, from: envelope.remoteAddress, socket: socket)
        }
    }

    private func received(_ response: SIPResponse) {
        guard let callID = response.callID, let cseq = response.cseq else { return }
        let method = cseq.method.rawValue
        let time = now()
        let transactionKey = key(callID, cseq.number, method)
        if method == "INVITE", let index = callByCallID[callID] {
            // 2xx retransmissions come after the transaction is gone
            guard transactions[transactionKey] != nil || calls[index].ack != nil else {
                count("late responses")
                return
            }
            inviteResponse(response, call: index, cseq: cseq.number, at: time)
            return
        }
        guard let transaction = transactions[transactionKey] else {
            count("late responses")
            return
        }
        if response.statusCode < 200 {
            transactions[transactionKey]?.provisional = true
            return
        }
        transactions[transactionKey] = nil
        switch transaction.owner {
        case .register(let index):
            registerResponse(response, phone: index, at: time)
        case .subscribe(let index):
            subscribeResponse(response, watch: index, at: time)
        case .bye(let index):
            if response.statusCode >= 300 {
                failure("BYE \(response.statusCode)", callID)
            } else {
                count("ok BYE")
            }
            callEnded(index, at: time)
        case .cancel:
            // 200 for the CANCEL; the INVITE's 487 ends the call. A 481 means the 200 won.
            count("CANCEL \(response.statusCode)")
        case .invite:
            break
        }
    }

    // MARK: The report

    /// What the phones believe at the end, and every count.
    func report() -> SoakReport {
        var report = SoakReport()
        report.counts = counts
        report.failures = failures
        report.failureSamples = failureSamples
        report.timeline = timeline
        report.phones = plan.phones.indices.map { index in
            SoakReport.PhoneState(ext: plan.phones[index].ext, registered: phones[index].registered)
        }
        report.watches = watches.map { watch in
            SoakReport.WatchState(
                watcher: plan.phones[watch.watcher].ext,
                target: plan.phones[watch.target].ext,
                active: watch.active,
                state: watch.lastLamp.map(\.apiState),
                notifies: watch.notifies
            )
        }
        report.callsInRun = callsStartedInRun
        report.callsLeftUp = liveCalls.count
        return report
    }

    static func tag(_ value: String?) -> String? {
        guard let value, let range = value.range(of: ";tag=") else { return nil }
        return String(value[range.upperBound...].prefix { $0 != ";" && $0 != ">" && $0 != " " })
    }

    static func expires(_ value: String?) -> Int? {
        value.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }
}

extension LineLamp {
    /// The API's name for the lamp (`GET …/lines/{ext}/state`).
    var apiState: String {
        switch self {
        case .early: return "ringing"
        case .confirmed: return "busy"
        case .idle: return "idle"
        }
    }
}

/// The soak's draws from SIPCore's seeded generator: the same seed, the same soak.
extension SplitMix64 {
    mutating func next(below bound: UInt64) -> UInt64 { bound == 0 ? 0 : next() % bound }

    mutating func next(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next(below: UInt64(range.upperBound - range.lowerBound + 1)))
    }
}
