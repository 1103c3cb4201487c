import SIPCore

/// The checks every request passes before its method is handled, in RFC 3261 §8.2's order:
/// method (§8.2.1), URI scheme and domain (§8.2.2.1), Require (§8.2.2.3).
///
/// A value with no clock and no I/O: the driver asks it about each request that reaches the
/// transaction user and, on a refusal, answers with the refusal's parts. It promises that a
/// request it passes names a method we know, a SIP or SIPS URI, and only option tags in
/// `capabilities.supportedExtensions`.
public struct RequestGate: Sendable {
    /// Why the gate refuses a request, as the response's parts.
    public struct Refusal: Sendable, Hashable {
        public var status: Int
        public var reason: String?
        public var headers: [SIPHeaders.Field]
        /// Whether the answer lists Allow, Accept, Allow-Events and Supported.
        public var includeCapabilities: Bool
        /// The refusal counter's reason, for the refusals that are counted.
        public var countedAs: String?

        public init(
            status: Int,
            reason: String? = nil,
            headers: [SIPHeaders.Field] = [],
            includeCapabilities: Bool = false,
            countedAs: String? = nil
        ) {
            self.status = status
            self.reason = reason
            self.headers = headers
            self.includeCapabilities = includeCapabilities
            self.countedAs = countedAs
        }
    }

    public var capabilities: ServerCapabilities
    /// Host names and addresses (lowercased, IPv6 without brackets) that mean "this server" in
    /// a Request-URI.
    public var localHosts: Set<String>

    public init(capabilities: ServerCapabilities, localHosts: Set<String>) {
        self.capabilities = capabilities
        self.localHosts = localHosts
    }

    /// Whether `host` (without IPv6 brackets) names this server.
    public func isLocal(host: String) -> Bool {
        localHosts.contains(host.lowercased())
    }

    /// The refusal of `request`, or `nil` when it passes.
    public func refusal(of request: SIPRequest) -> Refusal? {
        // RFC 3261 §8.2.1: a method we have never heard of gets 501.
        guard SIPMethod.known.contains(request.method) else {
            return Refusal(status: 501, includeCapabilities: true)
        }
        // §8.2.2.1: only SIP URIs name something here.
        guard request.uri.isSIP else { return Refusal(status: 416) }
        // Never an open relay: a request for another domain is refused, not forwarded.
        // RFC 3261 §8.2.2.1: "If the Request-URI does not identify an address that the UAS is
        // willing to accept requests for, it SHOULD reject the request with a 404".
        // SUBSCRIBE is authenticated first and its admission checks the host in the order issue 3
        // gives (digest, event, Accept, target), so that a refusal always says the first fault;
        // INVITE likewise identifies its caller before `CallRouting` checks the host.
        guard
            isLocal(host: request.uri.hostWithoutBrackets) || request.method == .subscribe
                || request.method == .invite
        else {
            return Refusal(status: 404, reason: "Domain Not Served Here", countedAs: "foreign_domain")
        }
        // §8.2.2.3: option tags we do not know in Require get 420 with Unsupported.
        let unsupported = capabilities.unsupportedRequirements(of: request)
        guard unsupported.isEmpty else {
            return Refusal(
                status: 420,
                headers: [SIPHeaders.Field(name: .unsupported, value: unsupported.joined(separator: ", "))]
            )
        }
        return nil
    }
}
