import SIPCore
import SIPTransactions

/// Whether a SUBSCRIBE from an already digest-authenticated line may watch its target, and for
/// how long: the seeds' rules (PRODUCT.md "Rules the seeds state") in the order of issue 3.
///
/// A pure decision: it reads the directory it was built with and what the server passes in
/// (which hosts are ours, where the target is registered from, the jitter), never a store, a
/// socket or a clock. Every refusal carries a status, a reason phrase that says why (what the
/// operator's "why is my lamp orange" view shows) and the headers its status requires.
///
/// ```
/// SUBSCRIBE ─► Event known? ──no──► 489 Bad Event + Allow-Events
///               │ Accept acceptable? ──no──► 406 + Accept
///               │ target found (extension in the watcher's account, then number) and host ours? ──no──► 404
///               │ same account? ──no──► 403      same group? ──no──► 403
///               │ presence shown for the target? ──no──► 403
///               │ same_network_only satisfied? ──no──► 403
///               │ Expires readable? ──no──► 400     0 < Expires < min_expires ──► 423 + Min-Expires
///               └─► Accepted(event, target, entity, granted = min(Expires, max_expires) − jitter)
/// ```
public struct SubscriptionAdmission: Sendable {
    /// Why a SUBSCRIBE is refused, as its response says it.
    public struct Refusal: Error, Sendable, Hashable {
        public enum Code: String, Sendable, Hashable {
            case badEvent, notAcceptable, unknownTarget, otherAccount, otherGroup, presenceOff, otherNetwork
            case intervalTooBrief, badExpires
            case tooManyWatchers, tooManyFromSource
        }

        public var code: Code
        public var statusCode: Int
        /// Says why, e.g. "Target In Another Account": the phone's log and the operator see it.
        public var reasonPhrase: String
        /// What the status requires: Allow-Events on 489, Min-Expires on 423, Accept on 406.
        public var headers: [SIPHeaders.Field]

        public init(code: Code, statusCode: Int, reasonPhrase: String, headers: [SIPHeaders.Field] = []) {
            self.code = code
            self.statusCode = statusCode
            self.reasonPhrase = reasonPhrase
            self.headers = headers
        }
    }

    /// A SUBSCRIBE the rules allow: the server answers 200 with `Expires: grantedExpires`.
    public struct Accepted: Sendable, Hashable {
        public var event: EventPackage
        public var target: Line
        /// `sip:USER@HOST` as the phone wrote the Request-URI's user and host, without port or
        /// parameters: the watcher matches NOTIFY bodies against what it subscribed to
        /// (Browser-Phone#370). For a refresh, the subscription's stored entity.
        public var entity: String
        /// Seconds; 0 for `Expires: 0` (an unsubscription, or a fetch when initial).
        public var grantedExpires: Int

        public init(event: EventPackage, target: Line, entity: String, grantedExpires: Int) {
            self.event = event
            self.target = target
            self.entity = entity
            self.grantedExpires = grantedExpires
        }
    }

    /// The packages we notify, for `Allow-Events` (RFC 6665 §8.2.2).
    public static let eventPackages: [String] = EventPackage.allCases.map(\.rawValue)
    /// The body types we send, for `Accept` in a 406 (RFC 3261 §21.4.7).
    public static let contentTypes: [String] = EventPackage.allCases.map(\.contentType)
    /// RFC 4235 §3.3 and RFC 3856 §6.4: "the default subscription duration is 3600 seconds",
    /// used when a SUBSCRIBE names no expiry (then bounded by min and max expires).
    public static let defaultExpires = 3600
    /// RFC 3261 §20.19 / §25.1: `delta-seconds` larger than 2**32-1 are taken as 2**32-1.
    static let maximumDeltaSeconds = 4_294_967_295

    public var directory: Directory

    public init(directory: Directory) {
        self.directory = directory
    }

    /// How many live subscriptions one line may have watching it, and one source address may
    /// hold (issue 9): a flood of SUBSCRIBEs cannot take the memory of the server.
    public struct Limits: Sendable, Hashable {
        /// A receptionist's line watched by every phone of a large office fits.
        public var watchersPerLine = 20_000
        /// An office behind one NAT (100 phones with 100 BLF keys each) fits.
        public var subscriptionsPerSource = 50_000

        public init() {}
    }

    /// The refusal of a new subscription past a limit, given the live counts before it: a 403
    /// that says which limit (a phone retries a 503 at once, a 403 only later).
    public static func capacityRefusal(watchersOfTarget: Int, fromSource: Int, limits: Limits) -> Refusal? {
        if watchersOfTarget >= limits.watchersPerLine {
            return Refusal(code: .tooManyWatchers, statusCode: 403, reasonPhrase: "Too Many Watchers Of This Line")
        }
        if fromSource >= limits.subscriptionsPerSource {
            return Refusal(
                code: .tooManyFromSource,
                statusCode: 403,
                reasonPhrase: "Too Many Subscriptions From This Address"
            )
        }
        return nil
    }

    /// Initial (out-of-dialog) SUBSCRIBE. `isLocalHost(host)` says whether a Request-URI host means us.
    /// `registeredSourceHosts(number)` = source IPs of the line's current registrations (same_network_only).
    /// `jitter(granted)` returns how many seconds to take off a granted expiry (the server passes a random
    /// value; tests pass fixed ones); the result never goes below min_expires nor above the request.
    public func admit(
        _ request: SIPRequest,
        watcher: Line,
        source: SIPPeer,
        isLocalHost: (String) -> Bool,
        registeredSourceHosts: (String) -> [String],
        jitter: (Int) -> Int
    ) -> Result<Accepted, Refusal> {
        let event: EventPackage
        switch eventPackage(of: request) {
        case .success(let package): event = package
        case .failure(let refusal): return .failure(refusal)
        }
        if let refusal = checkAccept(request, event: event) { return .failure(refusal) }

        let target: Line
        switch resolveTarget(request.uri, watcher: watcher, isLocalHost: isLocalHost) {
        case .success(let line): target = line
        case .failure(let refusal): return .failure(refusal)
        }
        if let refusal = checkRules(
            target: target,
            watcher: watcher,
            source: source,
            registeredSourceHosts: registeredSourceHosts
        ) {
            return .failure(refusal)
        }
        return grantedExpires(request, jitter: jitter).map { granted in
            Accepted(event: event, target: target, entity: Self.entity(of: request.uri), grantedExpires: granted)
        }
    }

    /// In-dialog refresh of `subscription`: same event required, rules re-checked against the stored target
    /// (the Request-URI of a refresh is our Contact, not the target), expiry checked.
    public func admitRefresh(
        _ request: SIPRequest,
        subscription: Subscription,
        watcher: Line,
        source: SIPPeer,
        registeredSourceHosts: (String) -> [String],
        jitter: (Int) -> Int
    ) -> Result<Accepted, Refusal> {
        let event: EventPackage
        switch eventPackage(of: request) {
        case .success(let package): event = package
        case .failure(let refusal): return .failure(refusal)
        }
        // RFC 6665 §4.1.2.2: a refresh names the same event package as the subscription; another
        // package in the same dialog would be a second subscription (dialog reuse, which §4.5.2
        // discourages). We keep one subscription per dialog.
        guard event == subscription.event else {
            return .failure(
                Refusal(
                    code: .badEvent,
                    statusCode: 489,
                    reasonPhrase: "Event Differs From Subscription",
                    headers: [SIPHeaders.Field(name: .allowEvents, value: subscription.event.rawValue)]
                )
            )
        }
        if let refusal = checkAccept(request, event: event) { return .failure(refusal) }
        guard let target = directory.line(number: subscription.targetNumber) else {
            return .failure(Refusal(code: .unknownTarget, statusCode: 404, reasonPhrase: "Target No Longer Exists"))
        }
        if let refusal = checkRules(
            target: target,
            watcher: watcher,
            source: source,
            registeredSourceHosts: registeredSourceHosts
        ) {
            return .failure(refusal)
        }
        return grantedExpires(request, jitter: jitter).map { granted in
            Accepted(event: event, target: target, entity: subscription.entity, grantedExpires: granted)
        }
    }

    // MARK: The steps, in order

    /// RFC 6665 §8.2.1: the `Event` value is the package name, then parameters (`;id=`), which
    /// are ignored here. Package names are matched without regard to case, as the header names.
    func eventPackage(of request: SIPRequest) -> Result<EventPackage, Refusal> {
        let badEvent = Refusal(
            code: .badEvent,
            statusCode: 489,
            reasonPhrase: "Bad Event",
            headers: [SIPHeaders.Field(name: .allowEvents, value: Self.eventPackages.joined(separator: ", "))]
        )
        // RFC 6665 §7.2.1 / §8.2.1: a SUBSCRIBE without Event is not understood either
        // (asterisk testsuite `no_event_header` expects 489).
        guard let value = request.headers[.event] else { return .failure(badEvent) }
        let name = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first.map {
            String($0).trimmingSIPWhitespace().lowercased()
        }
        guard let name, let package = EventPackage(rawValue: name) else {
            // RFC 6665 §4.2.1.1 / RFC 3261: 489 "Bad Event" with Allow-Events listing what we know.
            // `message-summary` (MWI) and `ua-profile` land here by design (issue 3).
            return .failure(badEvent)
        }
        return .success(package)
    }

    /// RFC 3261 §21.4.7 / RFC 6665 §4.2.1.1: an `Accept` that names none of the package's body
    /// types gets 406. No Accept means the package's default type (RFC 6665 §7.2). An empty
    /// Accept means "no formats are acceptable" (RFC 3261 §20.1), so it is refused too.
    func checkAccept(_ request: SIPRequest, event: EventPackage) -> Refusal? {
        guard request.headers.contains(.accept) else { return nil }
        let wanted = event.contentType
        let slash = wanted.firstIndex(of: "/")!
        let wantedType = wanted[..<slash]
        for element in request.headers.listElements(.accept) {
            let range =
                element.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first.map {
                    String($0).trimmingSIPWhitespace().lowercased()
                } ?? ""
            if range == wanted || range == "*/*" || range == "\(wantedType)/*" { return nil }
        }
        return Refusal(
            code: .notAcceptable,
            statusCode: 406,
            reasonPhrase: "Body Type Not Accepted",
            headers: [SIPHeaders.Field(name: .accept, value: wanted)]
        )
    }

    /// PRODUCT.md rule 6: the target is the Request-URI user, an extension inside the
    /// subscriber's account first, then a number anywhere on the platform (the account rule
    /// comes next and refuses another account's number with 403, not 404, so that the reason
    /// says what is wrong). The host must name us: the platform domain or one of our addresses.
    func resolveTarget(
        _ uri: SIPURI,
        watcher: Line,
        isLocalHost: (String) -> Bool
    ) -> Result<Line, Refusal> {
        guard uri.isSIP, let user = uri.user, !user.isEmpty else {
            return .failure(Refusal(code: .unknownTarget, statusCode: 404, reasonPhrase: "No Target In Request-URI"))
        }
        guard isLocalHost(uri.hostWithoutBrackets) || isLocalHost(uri.host) else {
            return .failure(
                Refusal(code: .unknownTarget, statusCode: 404, reasonPhrase: "Target Domain Not Served Here")
            )
        }
        // PRODUCT.md rule 6: an extension of the watcher's account first, then a number (with or
        // without its E.164 plus) anywhere on the platform; the same lookup as dialing.
        if let line = directory.line(dialed: user, accountID: watcher.accountID) { return .success(line) }
        return .failure(Refusal(code: .unknownTarget, statusCode: 404, reasonPhrase: "Unknown Target"))
    }

    /// PRODUCT.md rules 1 to 3, in the order of issue 3.
    func checkRules(
        target: Line,
        watcher: Line,
        source: SIPPeer,
        registeredSourceHosts: (String) -> [String]
    ) -> Refusal? {
        // Rule 1: "A line may watch another line only if both are on the same account and in
        // the same group. Otherwise the SUBSCRIBE is refused with 403 and a reason phrase that
        // says why."
        guard target.accountID == watcher.accountID else {
            return Refusal(code: .otherAccount, statusCode: 403, reasonPhrase: "Target In Another Account")
        }
        guard target.group == watcher.group else {
            return Refusal(code: .otherGroup, statusCode: 403, reasonPhrase: "Target In Another Group")
        }
        // Rule 2: line setting, else account setting, else the platform default.
        guard directory.showsPresence(target) else {
            return Refusal(code: .presenceOff, statusCode: 403, reasonPhrase: "Presence Disabled For Target")
        }
        // Rule 3: "the subscriber's source address must equal a registered source address of the
        // watched line". Both lines are in one account here, so its setting is the target's.
        // A target with no registration has no address to match, so it is refused as well.
        if directory.account(id: target.accountID)?.sameNetworkOnly == true {
            let watcherHost = Self.normalizedHost(source.host)
            let targetHosts = registeredSourceHosts(target.number).map(Self.normalizedHost)
            guard targetHosts.contains(watcherHost) else {
                return Refusal(code: .otherNetwork, statusCode: 403, reasonPhrase: "Not On The Target's Network")
            }
        }
        return nil
    }

    /// RFC 6665 §4.2.1.1: the notifier "MAY shorten" the duration, never lengthen it; RFC 3261
    /// §10.3 step 7 (which RFC 6665 §4.2.1.1 borrows): a non-zero expiry below the minimum gets
    /// 423 with Min-Expires. Then jitter spreads refreshes over time (PHONES.md, FreeSWITCH).
    func grantedExpires(_ request: SIPRequest, jitter: (Int) -> Int) -> Result<Int, Refusal> {
        let minimum = directory.platform.minimumExpires
        let maximum = max(directory.platform.maximumExpires, minimum)
        let requested: Int
        if let value = request.headers[.expires] {
            guard let seconds = Self.deltaSeconds(value) else {
                return .failure(Refusal(code: .badExpires, statusCode: 400, reasonPhrase: "Malformed Expires"))
            }
            requested = seconds
        } else {
            requested = min(max(Self.defaultExpires, minimum), maximum)
        }
        // RFC 6665 §4.1.2.3 / §4.4.3: Expires 0 is an unsubscription (or a fetch): 200 and a
        // final NOTIFY, never 423 (Asterisk's 400 to an initial Expires: 0 is what to avoid).
        if requested == 0 { return .success(0) }
        guard requested >= minimum else {
            return .failure(
                Refusal(
                    code: .intervalTooBrief,
                    statusCode: 423,
                    reasonPhrase: "Interval Too Brief",
                    headers: [SIPHeaders.Field(name: .minExpires, value: String(minimum))]
                )
            )
        }
        let granted = min(requested, maximum)
        let jittered = granted - jitter(granted)
        return .success(min(max(jittered, minimum), granted))
    }

    // MARK: Helpers

    /// `sip:USER@HOST`, as written (host keeps its case and IPv6 brackets), no port or parameters.
    static func entity(of uri: SIPURI) -> String {
        "\(uri.scheme):\(uri.user ?? "")@\(uri.host)"
    }

    /// RFC 3261 §25.1 `delta-seconds = 1*DIGIT`; `nil` for anything else. Too many digits are
    /// taken as 2**32-1 (§20.19), which max_expires then shortens.
    static func deltaSeconds(_ value: String) -> Int? {
        let text = value.trimmingSIPWhitespace()
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        guard let number = Int(text), number <= maximumDeltaSeconds else { return maximumDeltaSeconds }
        return number
    }

    /// Hosts compared as addresses: lower-cased, without IPv6 brackets, an IPv4-mapped IPv6
    /// address (`::ffff:192.0.2.4`, what a dual-stack socket reports) as its IPv4 address.
    static func normalizedHost(_ host: String) -> String {
        var host = host.lowercased()
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.hasPrefix("::ffff:"), host.contains(".") { host = String(host.dropFirst(7)) }
        return host
    }
}
