import BusyLampCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import SIPAuth
import SIPCore
import ServiceLifecycle

/// `busylamp demo`'s phones (issue 8): one simulated SIP phone per line of the demo office, in
/// this process, speaking real SIP over UDP to the server's own listener, so that the console
/// shows registered lines and live subscriptions rather than grey lamps.
///
/// Each phone binds 127.0.0.1 on a port of its own (never another address), REGISTERs with
/// digest (`Expires: 120`, refreshed before expiry) and answers every request the server sends
/// it: 200 to NOTIFY and OPTIONS, 486 to an INVITE (it places and takes no calls; the lamps'
/// calls are ``DemoCallSimulator``'s). A phone with BLF keys (``DemoOffice/Person/keys``)
/// SUBSCRIBEs `Event: dialog` to each (`Expires: 300`, refreshed in the dialog), and tries again
/// every 30 s when refused: Zoe's key on Bob, across groups, is the demo's orange lamp. Every
/// 40 s one phone without keys (Alice, Bob, Joe in turn) unregisters for 8 s, so that a lamp
/// goes grey and comes back.
///
/// Everything is logged at debug level; a request without an answer is retried quietly with
/// backoff. On graceful shutdown the phones unregister and unsubscribe (the server stops after
/// them), then close their sockets.
struct DemoPhones: Service {
    /// The phones' `User-Agent`: ``SIPServer/simulate(_:onLine:simulatedUserAgent:)`` shows the
    /// simulated calls on a line registered only by phones that say this.
    static let userAgent = "BusyLamp demo phone"

    /// How often the phones do what they do.
    struct Timing: Sendable {
        /// Seconds asked in REGISTER and SUBSCRIBE; each is refreshed at three quarters of what
        /// the server granted.
        var registrationExpires = 120
        var subscriptionExpires = 300
        /// One phone without keys rests (unregistered) every `restEvery`, for `rest`.
        var restEvery: Duration = .seconds(40)
        var rest: Duration = .seconds(8)
        /// After a final refusal (Zoe's 403), the next attempt.
        var retryAfterRefusal: Duration = .seconds(30)
        /// After no answer: the first retry, doubled per failure up to `longestRetry`.
        var firstRetry: Duration = .seconds(2)
        var longestRetry: Duration = .seconds(60)
        /// How often a phone looks whether the server ended one of its subscriptions.
        var endedCheck: Duration = .seconds(1)
        /// How long a request waits for its final answer (retransmitted meanwhile); on shutdown,
        /// the shorter `goodbyeTimeout`.
        var transactionTimeout: TimeAmount = .seconds(8)
        var goodbyeTimeout: TimeAmount = .seconds(1)
    }

    let office: DemoOffice
    /// The server's UDP listener as the phones reach it, on loopback; `nil` when it has none there.
    let server: SocketAddress?
    let logger: Logger
    var timing = Timing()

    init(office: DemoOffice, listeners: [SIPTransportListenerDescription], logger: Logger) {
        self.office = office
        self.server = Self.loopbackAddress(of: listeners)
        self.logger = logger
    }

    /// The first UDP listener on a loopback or wildcard address, as 127.0.0.1 reaches it
    /// (`--sip udp:0.0.0.0:5060` is reached at 127.0.0.1:5060).
    static func loopbackAddress(of listeners: [SIPTransportListenerDescription]) -> SocketAddress? {
        for listener in listeners where listener.transport == "udp" {
            let host: String
            if listener.host.hasPrefix("127.") {
                host = listener.host
            } else if listener.host == "0.0.0.0" || listener.host == "::" {
                host = "127.0.0.1"
            } else {
                continue
            }
            if let address = try? SocketAddress(ipAddress: host, port: listener.port) { return address }
        }
        return nil
    }

    func run() async throws {
        guard let server else {
            logger.notice("Demo phones not started: no UDP listener on 127.0.0.1 or a wildcard address")
            try? await gracefulShutdown()
            return
        }
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        var phones: [DemoPhone] = []
        do {
            for person in office.people {
                phones.append(
                    try await DemoPhone.start(
                        person: person,
                        number: office.number(person.extensionNumber),
                        server: server,
                        eventLoop: eventLoop
                    )
                )
            }
        } catch {
            logger.notice("Demo phones not started: no UDP socket on 127.0.0.1", metadata: [LogKey.error: "\(error)"])
            for phone in phones { await phone.close() }
            try? await gracefulShutdown()
            return
        }
        let resting = phones.filter { $0.person.keys.isEmpty }
        let started = ContinuousClock.now
        let everyone = phones
        // Graceful shutdown cancels the loops' sleeps; each loop then says goodbye.
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for phone in everyone {
                    let rests = resting.firstIndex { $0.number == phone.number }.map {
                        RestSchedule(slot: $0, count: resting.count, every: timing.restEvery, since: started)
                    }
                    group.addTask { await keepRegistered(phone, rests: rests) }
                    for key in phone.person.keys {
                        group.addTask { await keepSubscribed(phone, to: key) }
                    }
                }
            }
        }
        for phone in phones { await phone.close() }
    }

    // MARK: What each phone does

    /// REGISTER, refresh before expiry, rest when the schedule says so; unregister when cancelled.
    private func keepRegistered(_ phone: DemoPhone, rests: RestSchedule?) async {
        var registration = DemoPhone.Registration()
        var expires = timing.registrationExpires
        var failures = 0
        var registered = false
        registering: while !Task.isCancelled {
            switch await phone.register(&registration, expires: expires, timeout: timing.transactionTimeout) {
            case .accepted(let granted):
                failures = 0
                registered = true
                logger.debug("Demo phone registered", metadata: [LogKey.line: "\(phone.number)"])
                let now = ContinuousClock.now
                let refresh = now + refreshDelay(granted: granted)
                guard let rest = rests?.next(after: now), rest < refresh else {
                    guard await pause(until: refresh) else { break registering }
                    continue registering
                }
                guard await pause(until: rest) else { break registering }
                _ = await phone.register(&registration, expires: 0, timeout: timing.transactionTimeout)
                registered = false
                logger.debug("Demo phone unregistered for a while", metadata: [LogKey.line: "\(phone.number)"])
                guard await pause(until: .now + timing.rest) else { break registering }
            case .refused(_, .some(let minimumExpires)) where minimumExpires > expires:
                expires = minimumExpires
            case .refused(let status, _):
                logger.debug(
                    "Demo phone registration refused",
                    metadata: [LogKey.line: "\(phone.number)", DemoLogKey.status: "\(status)"]
                )
                guard await pause(until: .now + timing.retryAfterRefusal) else { break registering }
            case .noAnswer:
                failures += 1
                logger.debug("Demo phone registration unanswered", metadata: [LogKey.line: "\(phone.number)"])
                guard await pause(until: .now + backoff(failures: failures)) else { break registering }
            }
        }
        if registered {
            _ = await phone.register(&registration, expires: 0, timeout: timing.goodbyeTimeout)
        }
    }

    /// SUBSCRIBE to one key's target and refresh it in its dialog; subscribe afresh when the
    /// server ends it or a refresh fails, later when refused; unsubscribe when cancelled.
    private func keepSubscribed(_ phone: DemoPhone, to target: String) async {
        var expires = timing.subscriptionExpires
        var failures = 0
        subscribing: while !Task.isCancelled {
            var subscription = DemoPhone.Subscription(target: target)
            let metadata: Logger.Metadata = [LogKey.line: "\(phone.number)", LogKey.target: "\(target)"]
            switch await phone.subscribe(&subscription, expires: expires, timeout: timing.transactionTimeout) {
            case .accepted(var granted):
                failures = 0
                logger.debug("Demo phone subscribed", metadata: metadata)
                await phone.watch(subscription)
                while await pause(
                    until: .now + refreshDelay(granted: granted),
                    unlessServerEnds: subscription,
                    of: phone
                ),
                    case .accepted(let next) = await phone.subscribe(
                        &subscription,
                        expires: expires,
                        timeout: timing.transactionTimeout
                    )
                {
                    granted = next
                }
                let endedByServer = await phone.forget(subscription)
                if Task.isCancelled {
                    if !endedByServer {
                        _ = await phone.subscribe(&subscription, expires: 0, timeout: timing.goodbyeTimeout)
                    }
                    break subscribing
                }
                logger.debug("Demo phone subscription ended", metadata: metadata)
                guard await pause(until: .now + timing.firstRetry) else { break subscribing }
            case .refused(_, .some(let minimumExpires)) where minimumExpires > expires:
                expires = minimumExpires
            case .refused(let status, _):
                logger.debug(
                    "Demo phone subscription refused",
                    metadata: metadata.merging([DemoLogKey.status: "\(status)"]) { $1 }
                )
                guard await pause(until: .now + timing.retryAfterRefusal) else { break subscribing }
            case .noAnswer:
                failures += 1
                logger.debug("Demo phone subscription unanswered", metadata: metadata)
                guard await pause(until: .now + backoff(failures: failures)) else { break subscribing }
            }
        }
    }

    // MARK: Time

    /// Three quarters of what the server granted, so that the refresh lands well before expiry.
    private func refreshDelay(granted: Int) -> Duration {
        .seconds(max(granted * 3 / 4, 1))
    }

    private func backoff(failures: Int) -> Duration {
        min(timing.firstRetry * (1 << min(failures - 1, 16)), timing.longestRetry)
    }

    /// Sleeps until `deadline`; `false` when the task was cancelled meanwhile.
    private func pause(until deadline: ContinuousClock.Instant) async -> Bool {
        try? await Task.sleep(until: deadline, clock: .continuous)
        return !Task.isCancelled
    }

    /// As `pause(until:)`, and `false` as soon as the server has ended `subscription` (a NOTIFY
    /// with `Subscription-State: terminated`, e.g. when presence is turned off): the phone
    /// looks every `endedCheck`, which costs one hop to its event loop.
    private func pause(
        until deadline: ContinuousClock.Instant,
        unlessServerEnds subscription: DemoPhone.Subscription,
        of phone: DemoPhone
    ) async -> Bool {
        while ContinuousClock.now < deadline {
            guard await pause(until: min(deadline, .now + timing.endedCheck)) else { return false }
            if await phone.serverEnded(subscription) { return false }
        }
        return true
    }

    /// When a phone without keys rests: every `every`, one phone after the other.
    struct RestSchedule: Sendable {
        var slot: Int
        var count: Int
        var every: Duration
        var since: ContinuousClock.Instant

        /// The first rest after `now`: slot `s` of `n` rests at `since + every × (s + 1 + k·n)`.
        func next(after now: ContinuousClock.Instant) -> ContinuousClock.Instant {
            let first = since + every * (slot + 1)
            guard now >= first else { return first }
            let period = every * count
            let periods = Int((now - first) / period) + 1
            return first + period * periods
        }
    }
}

/// Metadata keys of the demo's logs, declared once.
enum DemoLogKey {
    static let call: Logger.Metadata.Key = "demo.call"
    static let state: Logger.Metadata.Key = "demo.state"
    static let status: Logger.Metadata.Key = "sip.status"
}

// MARK: - One phone

/// One simulated phone: a UDP socket on 127.0.0.1 and its ``DemoPhoneHandler``, which does the
/// transactions and the digest; this side builds the requests of its registration and
/// subscriptions (RFC 3261 §10.2, RFC 6665 §4.1).
struct DemoPhone: Sendable {
    let person: DemoOffice.Person
    /// The line's number: the digest user name and the AOR's user part.
    let number: String
    private let channel: any Channel
    private let handler: NIOLoopBound<DemoPhoneHandler>
    private let contactURI: SIPURI

    /// What became of a REGISTER or SUBSCRIBE.
    enum Outcome: Sendable {
        /// 2xx with the expiry the server granted, in seconds.
        case accepted(expires: Int)
        /// A final refusal; a 423 says the shortest expiry accepted.
        case refused(status: Int, minimumExpires: Int?)
        /// No final answer within the timeout.
        case noAnswer
    }

    /// The REGISTER Call-ID (RFC 3261 §10.2.4: the same for every refresh) and its CSeq.
    struct Registration: Sendable {
        var callID = DemoPhone.token() + "@demo.busylamp"
        var cseq: UInt32 = 0
    }

    /// One key's subscription dialog, as the subscriber sees it (RFC 3261 §12.1.2).
    struct Subscription: Sendable {
        var target: String
        var callID = DemoPhone.token() + "@demo.busylamp"
        var fromTag = DemoPhone.token()
        var cseq: UInt32 = 0
        /// Set by the 200 that made the dialog.
        var toTag: String?
        var remoteTarget: SIPURI?
        var routeSet: [String] = []

        init(target: String) { self.target = target }
    }

    static func start(
        person: DemoOffice.Person,
        number: String,
        server: SocketAddress,
        eventLoop: any EventLoop
    ) async throws -> DemoPhone {
        let password = person.password
        let handler = try await eventLoop.submit {
            NIOLoopBound(
                DemoPhoneHandler(username: number, password: password, server: server, eventLoop: eventLoop),
                eventLoop: eventLoop
            )
        }.get()
        let channel = try await DatagramBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler.value) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else {
            try? await channel.close()
            throw ChannelError.unknownLocalAddress
        }
        return DemoPhone(
            person: person,
            number: number,
            channel: channel,
            handler: handler,
            contactURI: SIPURI(user: number, host: "127.0.0.1", port: port)
        )
    }

    func close() async {
        try? await channel.close()
    }

    /// REGISTER for `expires` seconds (0 unregisters this phone's contact only).
    func register(_ registration: inout Registration, expires: Int, timeout: TimeAmount) async -> Outcome {
        // Two CSeq numbers per transaction: the request's, and its answer to a challenge's.
        registration.cseq += 2
        let request = makeRequest(
            .register,
            uri: SIPURI(host: DemoOffice.domain),
            to: identity.description,
            fromTag: Self.token(),
            callID: registration.callID,
            cseq: registration.cseq,
            expires: expires
        )
        guard let response = await send(request, timeout: timeout) else { return .noAnswer }
        guard response.isSuccess else { return refusal(response) }
        // RFC 3261 §10.2.4: the 200 lists every binding with its expiry; ours is the one to refresh.
        let ours = response.contacts?.lazy.compactMap { contact -> NameAddress? in
            guard case .address(let address) = contact, address.uri.description == contactURI.description else {
                return nil
            }
            return address
        }.first
        let granted = ours?.parameters.unquotedValue("expires").flatMap { Int($0) } ?? response.expires
        return .accepted(expires: granted ?? expires)
    }

    /// The initial SUBSCRIBE of `subscription` (`Event: dialog`), or a refresh in its dialog
    /// (`expires` 0 unsubscribes).
    func subscribe(_ subscription: inout Subscription, expires: Int, timeout: TimeAmount) async -> Outcome {
        subscription.cseq += 2
        let targetURI = SIPURI(user: subscription.target, host: DemoOffice.domain)
        var to = NameAddress(uri: targetURI)
        to.tag = subscription.toTag
        var request = makeRequest(
            .subscribe,
            uri: subscription.remoteTarget ?? targetURI,
            to: to.description,
            fromTag: subscription.fromTag,
            callID: subscription.callID,
            cseq: subscription.cseq,
            expires: expires
        )
        for route in subscription.routeSet { request.headers.add(.route, route) }
        request.headers.add(.event, "dialog")
        request.headers.add(.accept, "application/dialog-info+xml")
        guard let response = await send(request, timeout: timeout) else { return .noAnswer }
        guard response.isSuccess else { return refusal(response) }
        if subscription.toTag == nil {
            // RFC 3261 §12.1.2: the dialog's remote tag, remote target and route set.
            subscription.toTag = response.to?.tag
            subscription.remoteTarget =
                response.contacts?.lazy.compactMap { contact -> SIPURI? in
                    guard case .address(let address) = contact else { return nil }
                    return address.uri
                }.first
            subscription.routeSet = response.headers.listElements(.recordRoute).reversed()
        }
        return .accepted(expires: response.expires ?? expires)
    }

    /// From now on a NOTIFY ending `subscription` is remembered, for ``serverEnded(_:)``.
    func watch(_ subscription: Subscription) async {
        let callID = subscription.callID
        try? await channel.eventLoop.submit { [handler] in handler.value.watch(callID: callID) }.get()
    }

    /// Whether the server has ended `subscription`.
    func serverEnded(_ subscription: Subscription) async -> Bool {
        let callID = subscription.callID
        return (try? await channel.eventLoop.submit { [handler] in handler.value.isEnded(callID: callID) }.get())
            ?? true
    }

    /// Stops watching `subscription`; returns whether the server had ended it.
    func forget(_ subscription: Subscription) async -> Bool {
        let callID = subscription.callID
        return (try? await channel.eventLoop.submit { [handler] in handler.value.forget(callID: callID) }.get()) ?? true
    }

    private func send(_ request: SIPRequest, timeout: TimeAmount) async -> SIPResponse? {
        try? await channel.eventLoop.flatSubmit { [handler] in handler.value.send(request, timeout: timeout) }.get()
    }

    private func refusal(_ response: SIPResponse) -> Outcome {
        let minimumExpires = response.headers[.minExpires].flatMap { Int($0.trimmingSIPWhitespace()) }
        return .refused(status: response.statusCode, minimumExpires: response.statusCode == 423 ? minimumExpires : nil)
    }

    /// `"Leo" <sip:6495550220@sip.busylamp.test>`: From of every request, To of REGISTER.
    private var identity: NameAddress {
        NameAddress(displayName: person.name, uri: SIPURI(user: number, host: DemoOffice.domain))
    }

    private func makeRequest(
        _ method: SIPMethod,
        uri: SIPURI,
        to: String,
        fromTag: String,
        callID: String,
        cseq: UInt32,
        expires: Int
    ) -> SIPRequest {
        var from = identity
        from.tag = fromTag
        var headers = SIPHeaders()
        headers.add(.maxForwards, "70")
        headers.add(.from, from.description)
        headers.add(.to, to)
        headers.add(.callID, callID)
        headers.add(.cseq, CSeq(number: cseq, method: method).description)
        headers.add(.contact, "<\(contactURI)>")
        headers.add(.expires, String(expires))
        headers.add(.userAgent, DemoPhones.userAgent)
        return SIPRequest(method: method, uri: uri, headers: headers)
    }

    /// A random token for tags, Call-IDs, branches and cnonces.
    static func token() -> String {
        String(UInt64.random(in: .min ... .max), radix: 36)
    }
}

// MARK: - The phone's socket

/// A demo phone's UDP channel handler, confined to its event loop: the client transactions of
/// its requests (RFC 3261 §17.1.2: retransmitted from T1, doubling up to T2, until a final
/// answer or the timeout), digest credentials computed from the server's latest challenge
/// (RFC 7616 §3.4, `qop=auth` with a rising nonce count) with one retry after a 401, and an
/// answer to every request the server sends.
final class DemoPhoneHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    /// RFC 3261 §17.1.2.2: a non-INVITE request is retransmitted after T1, then at doubling
    /// intervals capped at T2 (§17.1.1.1: T1 = 500 ms, T2 = 4 s).
    static let t1 = TimeAmount.milliseconds(500)
    static let t2 = TimeAmount.seconds(4)

    private let username: String
    private let password: String
    private let server: SocketAddress
    private let eventLoop: any EventLoop
    private let parser = SIPParser()
    private var context: ChannelHandlerContext?
    private var localPort: Int?
    /// The last challenge the server sent, and how many requests answered its nonce.
    private var challenge: DigestChallenge?
    private var nonceCount: UInt32 = 0
    private var transactions: [String: ClientTransaction] = [:]
    /// The subscriptions being watched (by Call-ID), and whether the server has ended each.
    private var subscriptions: [String: Bool] = [:]

    /// A request's timeout passed without a final answer.
    struct NoAnswer: Error {}

    private struct ClientTransaction {
        /// The request as the phone built it: no Via, no credentials.
        var request: SIPRequest
        var datagram: ByteBuffer
        var promise: EventLoopPromise<SIPResponse>
        var deadline: NIODeadline
        var interval: TimeAmount
        var timer: Scheduled<Void>?
        var answersChallenge: Bool
    }

    init(username: String, password: String, server: SocketAddress, eventLoop: any EventLoop) {
        self.username = username
        self.password = password
        self.server = server
        self.eventLoop = eventLoop
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        localPort = context.channel.localAddress?.port
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        let pending = transactions.values
        transactions = [:]
        for transaction in pending {
            transaction.timer?.cancel()
            transaction.promise.fail(ChannelError.ioOnClosedChannel)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A datagram error (the server not listening yet, or gone) is what a timeout reports.
    }

    // MARK: Requests from the phone

    /// Sends `request` and completes with its final response, or fails after `timeout`.
    func send(_ request: SIPRequest, timeout: TimeAmount) -> EventLoopFuture<SIPResponse> {
        let promise = eventLoop.makePromise(of: SIPResponse.self)
        transmit(request, promise: promise, deadline: .now() + timeout, answersChallenge: false)
        return promise.futureResult
    }

    private func transmit(
        _ request: SIPRequest,
        promise: EventLoopPromise<SIPResponse>,
        deadline: NIODeadline,
        answersChallenge: Bool
    ) {
        guard let context, let localPort else {
            return promise.fail(ChannelError.ioOnClosedChannel)
        }
        let branch = Via.magicCookie + DemoPhone.token()
        var wire = request
        wire.headers.prepend(.via, "SIP/2.0/UDP 127.0.0.1:\(localPort);branch=\(branch);rport")
        if let challenge {
            wire.headers.set(.authorization, authorization(for: wire, answering: challenge))
        }
        var datagram = context.channel.allocator.buffer(capacity: 1024)
        wire.serialize(into: &datagram)
        write(datagram)
        transactions[branch] = ClientTransaction(
            request: request,
            datagram: datagram,
            promise: promise,
            deadline: deadline,
            interval: Self.t1,
            timer: schedule(branch, at: min(.now() + Self.t1, deadline)),
            answersChallenge: answersChallenge
        )
    }

    private func schedule(_ branch: String, at deadline: NIODeadline) -> Scheduled<Void> {
        eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in timerFired(branch: branch) }
    }

    private func timerFired(branch: String) {
        guard var transaction = transactions[branch] else { return }
        guard NIODeadline.now() < transaction.deadline else {
            transactions[branch] = nil
            return transaction.promise.fail(DemoPhoneHandler.NoAnswer())
        }
        write(transaction.datagram)
        transaction.interval = .nanoseconds(min(transaction.interval.nanoseconds * 2, Self.t2.nanoseconds))
        transaction.timer = schedule(branch, at: min(.now() + transaction.interval, transaction.deadline))
        transactions[branch] = transaction
    }

    private func received(_ response: SIPResponse) {
        guard let branch = response.topVia?.branch, var transaction = transactions[branch],
            !response.isProvisional
        else { return }
        transactions[branch] = nil
        transaction.timer?.cancel()
        // RFC 3261 §22.2: a 401 is answered once with credentials for its challenge (a stale
        // nonce gets a new one); a second 401 is the final answer.
        if response.statusCode == 401, !transaction.answersChallenge,
            let challenge = response.headers.values(.wwwAuthenticate).lazy.compactMap(DigestChallenge.init(parsing:))
                .first
        {
            self.challenge = challenge
            nonceCount = 0
            if let cseq = transaction.request.cseq {
                transaction.request.headers.set(.cseq, CSeq(number: cseq.number + 1, method: cseq.method).description)
            }
            return transmit(
                transaction.request,
                promise: transaction.promise,
                deadline: transaction.deadline,
                answersChallenge: true
            )
        }
        transaction.promise.succeed(response)
    }

    /// RFC 7616 §3.4 credentials for `request`, computed from the password as a phone does.
    private func authorization(for request: SIPRequest, answering challenge: DigestChallenge) -> String {
        let uri = request.uri.description
        let ha1 = challenge.algorithm.ha1(username: username, realm: challenge.realm, password: password)
        var qop: DigestAlgorithm.QualityOfProtection?
        if challenge.offersQualityOfProtection {
            nonceCount += 1
            let count = String(nonceCount, radix: 16)
            qop = DigestAlgorithm.QualityOfProtection(
                nonceCount: String(repeating: "0", count: max(0, 8 - count.count)) + count,
                cnonce: DemoPhone.token()
            )
        }
        let response = challenge.algorithm.response(
            ha1: ha1,
            nonce: challenge.nonce,
            method: request.method.rawValue,
            digestURI: uri,
            qop: qop
        )
        var value = "Digest username=\(username.quotedSIPString), realm=\(challenge.realm.quotedSIPString)"
        value += ", nonce=\(challenge.nonce.quotedSIPString), uri=\(uri.quotedSIPString)"
        value += ", response=\"\(response)\", algorithm=\(challenge.algorithm.rawValue)"
        if let opaque = challenge.opaque { value += ", opaque=\(opaque.quotedSIPString)" }
        if let qop { value += ", qop=\(qop.value), nc=\(qop.nonceCount), cnonce=\(qop.cnonce.quotedSIPString)" }
        return value
    }

    // MARK: Requests from the server

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        // Only the server talks to a demo phone; anything else, or unreadable, is dropped.
        guard envelope.remoteAddress == server,
            let message = try? parser.parse(Array(envelope.data.readableBytesView))
        else { return }
        switch message {
        case .response(let response):
            received(response)
        case .request(let request):
            answer(request)
        }
    }

    /// 200 to every request but an INVITE (486: the phone takes no calls) and an ACK (none).
    private func answer(_ request: SIPRequest) {
        guard request.method != .ack else { return }
        // RFC 6665 §4.1.3: `Subscription-State: terminated` ends the subscription.
        if request.method == .notify, let callID = request.callID, subscriptions[callID] != nil,
            let state = request.headers[.subscriptionState],
            state.trimmingSIPWhitespace().lowercased().hasPrefix("terminated")
        {
            subscriptions[callID] = true
        }
        let status = request.method == .invite ? 486 : 200
        let response = SIPResponse(replyingTo: request, statusCode: status, toTag: DemoPhone.token())
        guard let context else { return }
        var datagram = context.channel.allocator.buffer(capacity: 512)
        response.serialize(into: &datagram)
        write(datagram)
    }

    private func write(_ datagram: ByteBuffer) {
        context?.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: server, data: datagram)), promise: nil)
    }

    // MARK: Subscriptions watched

    func watch(callID: String) {
        subscriptions[callID] = false
    }

    func isEnded(callID: String) -> Bool {
        subscriptions[callID] ?? true
    }

    func forget(callID: String) -> Bool {
        subscriptions.removeValue(forKey: callID) ?? true
    }
}

extension DigestChallenge {
    /// Reads a `WWW-Authenticate` value such as
    /// `Digest realm="sip.example", nonce="…", opaque="…", algorithm=MD5, qop="auth"`, as a
    /// phone does; `nil` for another scheme or an algorithm we do not speak.
    fileprivate init?(parsing value: String) {
        let text = value.trimmingSIPWhitespace()
        guard text.count > 7, text.prefix(7).lowercased() == "digest " else { return nil }
        var parameters: [String: String] = [:]
        for element in splitSIPList(String(text.dropFirst(7))) {
            guard let equals = element.firstIndex(of: "=") else { continue }
            let name = String(element[..<equals]).trimmingSIPWhitespace().lowercased()
            parameters[name] =
                String(element[element.index(after: equals)...]).trimmingSIPWhitespace()
                .unquotedSIPString
        }
        guard let realm = parameters["realm"], let nonce = parameters["nonce"],
            let algorithm = DigestAlgorithm(parameterValue: parameters["algorithm"] ?? "MD5")
        else { return nil }
        let offersAuth =
            parameters["qop"]?.split(separator: ",").contains {
                String($0).trimmingSIPWhitespace().lowercased() == "auth"
            } ?? false
        self.init(
            realm: realm,
            nonce: nonce,
            opaque: parameters["opaque"],
            algorithm: algorithm,
            offersQualityOfProtection: offersAuth,
            stale: parameters["stale"]?.lowercased() == "true"
        )
    }
}

extension DemoPhones: CustomStringConvertible {
    /// What ServiceLifecycle logs for the service (without the office's passwords).
    var description: String { "DemoPhones" }
}
