import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import SIPAuth
import SIPCore

/// Checks the tool against known answers and a tiny SIP registrar/notifier on loopback;
/// exits non-zero when anything is wrong, so `scripts/test` can keep the tool from rotting.
struct SelfCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "self-check",
        abstract:
            "Digest against RFC 2617's example, the message builders through SIPCore's parser, and REGISTER/SUBSCRIBE loads against an in-process responder."
    )

    @Flag(help: "Print each check.")
    var verbose = false

    func run() throws {
        var failures: [String] = []
        func check(_ condition: Bool, _ what: String) {
            if !condition { failures.append(what) }
            if verbose || !condition { print("\(condition ? "ok  " : "FAIL") \(what)") }
        }

        // RFC 2617 §3.5: the example's response.
        let header =
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
        let challenge = ClientChallenge(headerValue: header)
        check(challenge?.realm == "testrealm@host.com" && challenge?.qopAuth == true, "challenge parsed (realm, qop)")
        check(challenge?.opaque == "5ccc069c403ebaf9f0171e9517f40e41", "challenge parsed (opaque)")
        let credentials =
            challenge?.credentials(
                username: "Mufasa",
                password: "Circle Of Life",
                method: "GET",
                uri: "/dir/index.html",
                cnonce: "0a4f113b"
            ) ?? ""
        check(credentials.contains("response=\"6629fae49393a05397450978507c4ef1\""), "RFC 2617 §3.5 response 6629fae4…")
        check(
            credentials.contains("nc=00000001") && credentials.contains("cnonce=\"0a4f113b\""),
            "qop=auth carries nc and cnonce"
        )
        let parsed = try? DigestCredentials(parsing: credentials)
        check(parsed?.username == "Mufasa" && parsed?.qop == "auth", "SIPAuth parses the credentials we write")
        let plain = ClientChallenge(realm: "r", nonce: "n", qopAuth: false)
            .credentials(username: "u", password: "p", method: "SUBSCRIBE", uri: "sip:1@r", cnonce: "c")
        check(!plain.contains("qop="), "no qop offered: RFC 2069 form")

        // The builders through SIPCore's parser.
        let request = SIPMessages.write(
            SIPMessages.Request(
                method: "SUBSCRIBE",
                requestURI: "sip:201@example.test",
                local: "127.0.0.1:5999",
                branch: "z9hG4bK.0.1.1.tok",
                fromValue: "<sip:200@example.test>;tag=f1",
                toValue: "<sip:201@example.test>",
                callID: "bl0.1.tok",
                cseq: 2,
                contactUser: "200",
                fixedHeaders: "Event: dialog\r\nAccept: application/dialog-info+xml\r\nExpires: 600\r\n",
                credentials: ("Authorization", credentials)
            ),
            allocator: ByteBufferAllocator()
        )
        let message = try? SIPParser().parse(Array(request.readableBytesView), framing: .datagram)
        if case .request(let subscribe)? = message {
            check(subscribe.method == .subscribe && subscribe.callID == "bl0.1.tok", "SUBSCRIBE parses back")
            check(subscribe.headers[.event] == "dialog" && subscribe.cseq?.number == 2, "SUBSCRIBE's Event and CSeq")
            check(subscribe.topVia?.branch == "z9hG4bK.0.1.1.tok", "SUBSCRIBE's branch")
            let ok = SIPMessages.response(
                to: subscribe,
                status: 200,
                reason: "OK",
                toTag: "t9",
                allocator: ByteBufferAllocator()
            )
            if case .response(let response)? = try? SIPParser().parse(Array(ok.readableBytesView), framing: .datagram) {
                check(response.statusCode == 200 && response.to?.tag == "t9", "response parses back with its To tag")
                check(
                    response.callID == "bl0.1.tok" && response.cseq?.method == .subscribe,
                    "response copies Call-ID and CSeq"
                )
            } else {
                check(false, "response parses back")
            }
        } else {
            check(false, "SUBSCRIBE parses back")
        }
        check(LineLamp(dialogInfo: Array("<state>confirmed</state>".utf8)) == .confirmed, "lamp: confirmed")
        check(LineLamp(dialogInfo: Array("<state>early</state>".utf8)) == .early, "lamp: early")
        check(LineLamp(dialogInfo: Array("<dialog-info/>".utf8)) == .idle, "lamp: idle")
        check(
            UserSource.authentication("[authentication username=649 password=pw1x]")! == ("649", "pw1x"),
            "CSV credentials field"
        )

        // Loads against the responder: every flow must succeed, the dropped copies retransmitted.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let responder = try LoopbackResponder.start(on: group.next(), domain: "selfcheck.test")
        for scenario in [LoadPlan.Scenario.register, .subscribe] {
            var plan = LoadPlan(scenario: scenario, server: responder.address, domain: "selfcheck.test")
            plan.users = UserSource.generate(
                count: 300,
                prefix: "7",
                start: 0,
                width: 3,
                passwordPattern: "pw-{user}",
                target: nil
            )
            plan.rate = 600
            plan.count = 600
            plan.durationSeconds = 5
            plan.t1Millis = 50
            plan.transactionTimeoutMillis = 64 * 50
            plan.drainSeconds = 5
            plan.token = "sc\(scenario.rawValue)"
            let result = try LoadRunner.run(plans: [plan], threads: 1, progress: false, deadlineSeconds: 30)
            let stats = result.stats
            check(
                stats.started == 600 && stats.succeeded == 600,
                "\(scenario.rawValue): 600 of 600 succeeded (got \(stats.succeeded))"
            )
            check(stats.failed == 0 && stats.timeouts == 0, "\(scenario.rawValue): no failure, no timeout")
            check(
                stats.retransmissions >= 6,
                "\(scenario.rawValue): dropped requests were retransmitted (\(stats.retransmissions))"
            )
            check(stats[.challenges] == 600, "\(scenario.rawValue): every flow answered its challenge")
            if scenario == .subscribe {
                check(
                    stats.histograms[Metric.subscribeFirstNotify.rawValue].totalCount == 600,
                    "subscribe: 600 initial NOTIFYs"
                )
            }
        }
        try? responder.channel.close().wait()

        if failures.isEmpty {
            print("self-check: all checks passed")
        } else {
            print("self-check: \(failures.count) check(s) failed")
            throw ExitCode.failure
        }
    }
}

/// A registrar and notifier in miniature, for the self-check: REGISTER and SUBSCRIBE are
/// challenged (SIPAuth's DigestAuthenticator, qop=auth), verified against `pw-<user>`, and
/// answered 200 (a SUBSCRIBE also gets its NOTIFY). Every 50th authenticated request is
/// dropped the first time, so the client's retransmission is exercised.
final class LoopbackResponder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private var authenticator: DigestAuthenticator
    private let domain: String
    private var seen = 0
    private var dropped: Set<String> = []
    private(set) var channel: Channel!

    var address: SocketAddress { channel.localAddress! }

    private init(domain: String) {
        self.domain = domain
        authenticator = DigestAuthenticator(realm: domain, secret: Array("busylamp-load self-check secret".utf8))
    }

    static func start(on loop: EventLoop, domain: String) throws -> LoopbackResponder {
        let responder = LoopbackResponder(domain: domain)
        responder.channel = try DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(responder) }
            }
            .bind(host: "127.0.0.1", port: 0)
            .wait()
        return responder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard
            case .request(let request)? = try? SIPParser().parse(
                Array(envelope.data.readableBytesView),
                framing: .datagram
            ),
            request.method == .register || request.method == .subscribe
        else { return }
        func reply(_ buffer: ByteBuffer) {
            context.writeAndFlush(
                NIOAny(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: buffer)),
                promise: nil
            )
        }
        // drop before verifying: a real server's transaction layer absorbs the retransmission,
        // this one has none, and a second verification of the same nc would be a replay
        if request.headers.contains(.authorization) {
            seen += 1
            let key = request.topVia?.branch ?? ""
            if seen % 50 == 0, !dropped.contains(key) {
                dropped.insert(key)
                return
            }
        }
        let outcome = authenticator.verify(
            request: request,
            headerName: .authorization,
            ha1Lookup: { user, algorithm in algorithm.ha1(username: user, realm: self.domain, password: "pw-\(user)") },
            now: Date()
        )
        switch outcome {
        case .authenticated:
            reply(
                SIPMessages.response(
                    to: request,
                    status: 200,
                    reason: "OK",
                    toTag: "srv",
                    allocator: context.channel.allocator
                )
            )
            if request.method == .subscribe { reply(notify(for: request, allocator: context.channel.allocator)) }
        case .missingCredentials, .stale, .invalidNonce:
            var challenged = SIPMessages.response(
                to: request,
                status: 401,
                reason: "Unauthorized",
                toTag: "srv",
                allocator: context.channel.allocator
            )
            // insert the challenge before the blank line
            challenged.moveWriterIndex(to: challenged.writerIndex - 2)
            for value in authenticator.challengeHeaders(stale: outcome == .stale, now: Date()) {
                challenged.writeString("WWW-Authenticate: \(value)\r\n")
            }
            challenged.writeString("\r\n")
            reply(challenged)
        default:
            reply(
                SIPMessages.response(
                    to: request,
                    status: 403,
                    reason: "Forbidden",
                    toTag: "srv",
                    allocator: context.channel.allocator
                )
            )
        }
    }

    private func notify(for subscribe: SIPRequest, allocator: ByteBufferAllocator) -> ByteBuffer {
        let contact = subscribe.headers[.contact].map(SIPMessages.uri(ofContact:)) ?? "sip:\(domain)"
        let body =
            "<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"0\" state=\"full\" entity=\"\(subscribe.uri)\"/>\n"
        return SIPMessages.write(
            SIPMessages.Request(
                method: "NOTIFY",
                requestURI: contact,
                local: "\(channel.localAddress?.ipAddress ?? "127.0.0.1"):\(channel.localAddress?.port ?? 0)",
                branch: "z9hG4bK.n.\(subscribe.callID ?? "")",
                fromValue: "\(subscribe.headers[.to] ?? "");tag=srv",
                toValue: subscribe.headers[.from] ?? "",
                callID: subscribe.callID ?? "",
                cseq: 1,
                contactUser: "notifier",
                fixedHeaders: "Event: dialog\r\nSubscription-State: active;expires=600\r\n",
                body: body,
                contentType: "application/dialog-info+xml"
            ),
            allocator: allocator
        )
    }
}
