import SIPCore

/// Identifies a transaction, so that retransmissions, ACKs, CANCELs and responses find the
/// machine they belong to (RFC 3261 §17.1.3, §17.2.3).
///
/// A key promises: two messages of the same transaction produce equal keys, and messages of
/// different transactions (by the RFC's rules) produce different ones. Client and server keys
/// never compare equal, so one table can hold both sides of a loop through ourselves.
///
/// - Server side, RFC 3261 branch (it starts with the magic cookie `z9hG4bK`): the top Via's
///   branch, its sent-by, and the method, with ACK folded onto INVITE (the ACK for a non-2xx
///   belongs to the INVITE's transaction) while CANCEL keeps its own.
/// - Server side, RFC 2543 request (no cookie): Request-URI, To tag, From tag, Call-ID, CSeq
///   number, top Via and method (ACK folded onto INVITE). §17.2.3 matches an ACK by the To tag
///   of the response the transaction sent, which an INVITE without a To tag does not carry: the
///   transaction layer therefore also tries the ACK's key without its To tag.
/// - Client side: the top Via's branch (one we generated) and the CSeq method.
public struct TransactionKey: Hashable, Sendable, CustomStringConvertible {
    public enum Role: Sendable, Hashable {
        /// We sent the request.
        case client
        /// We received the request.
        case server
    }

    public let role: Role
    /// The method of the request that created the transaction (INVITE for its ACK).
    public let method: SIPMethod
    /// The top Via's branch; empty for an RFC 2543 request, whose identity is `rfc2543`.
    let branch: String
    /// The top Via's sent-by, on the server side.
    let sentBy: String?
    /// The rare RFC 2543 identity, seven fields with a URI and a Via, out of line: a key is
    /// stored with its transaction, its flow and each of its timers, and compared on every
    /// lookup (an enum of the two identities cost a copy, with its retains, per comparison:
    /// 5 % of a shard's time in issue 10's profile).
    let rfc2543: RFC2543Box?

    /// An immutable box: copies share it, and a changed identity is a new box.
    final class RFC2543Box: Hashable, Sendable {
        let identity: RFC2543Identity
        init(_ identity: RFC2543Identity) { self.identity = identity }
        static func == (lhs: RFC2543Box, rhs: RFC2543Box) -> Bool { lhs === rhs || lhs.identity == rhs.identity }
        func hash(into hasher: inout Hasher) { hasher.combine(identity) }
    }

    struct RFC2543Identity: Hashable, Sendable {
        var requestURI: SIPURI
        var toTag: String?
        var fromTag: String?
        var callID: String
        var sequenceNumber: UInt32
        var topVia: Via
    }

    init(role: Role, branch: String, sentBy: String?, method: SIPMethod) {
        self.role = role
        self.method = method
        self.branch = branch
        self.sentBy = sentBy
        self.rfc2543 = nil
    }

    init(role: Role, rfc2543 identity: RFC2543Identity, method: SIPMethod) {
        self.role = role
        self.method = method
        self.branch = ""
        self.sentBy = nil
        self.rfc2543 = RFC2543Box(identity)
    }

    public static func == (lhs: TransactionKey, rhs: TransactionKey) -> Bool {
        lhs.branch == rhs.branch && lhs.role == rhs.role && lhs.method == rhs.method && lhs.sentBy == rhs.sentBy
            && lhs.rfc2543 == rhs.rfc2543
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(branch)
        hasher.combine(method)
        if let rfc2543 { hasher.combine(rfc2543) }
    }

    /// The key of the server transaction a received request belongs to; `nil` when the request
    /// lacks the top Via or CSeq that matching needs (the parser refuses those already).
    public init?(incoming request: SIPRequest) {
        guard let topVia = request.topVia, let cseq = request.cseq else { return nil }
        // RFC 3261 §17.2.3: "the ACK ... matches the INVITE transaction"; CANCEL does not.
        let method = request.method == .ack ? SIPMethod.invite : request.method
        if let branch = topVia.branch, branch.hasPrefix(Via.magicCookie) {
            // > 1. the branch parameter in the request is equal to the one in the top Via header
            // >    field of the request that created the transaction, and
            // > 2. the sent-by value in the top Via of the request is equal to the one in the
            // >    request that created the transaction, and
            // > 3. the method of the request matches the one that created the transaction,
            // >    except for ACK, where the method of the request that created the transaction
            // >    is INVITE.
            self.init(role: .server, branch: branch, sentBy: TransactionKey.sentBy(topVia), method: method)
            return
        }
        // RFC 3261 §17.2.3, for requests from RFC 2543 elements: "the INVITE request matches a
        // transaction if the Request-URI, To tag, From tag, Call-ID, CSeq, and top Via header
        // field match those of the INVITE request which created the transaction."
        guard let callID = request.callID else { return nil }
        self.init(
            role: .server,
            rfc2543: RFC2543Identity(
                requestURI: request.uri,
                toTag: request.to?.tag,
                fromTag: request.from?.tag,
                callID: callID,
                sequenceNumber: cseq.number,
                topVia: topVia
            ),
            method: method
        )
    }

    /// The key of the client transaction that sends `request` (whose top Via we wrote).
    public init?(outgoing request: SIPRequest) {
        guard let branch = request.topVia?.branch, !branch.isEmpty else { return nil }
        self.init(role: .client, branch: branch, sentBy: nil, method: request.method)
    }

    /// The key of the client transaction a received response belongs to.
    ///
    /// RFC 3261 §17.1.3: "1. If the response has the same value of the branch parameter in the
    /// top Via header field as the branch parameter in the top Via header field of the request
    /// that created the transaction. 2. If the method parameter in the CSeq header field matches
    /// the method of the request that created the transaction."
    public init?(incoming response: SIPResponse) {
        guard let branch = response.topVia?.branch, !branch.isEmpty, let cseq = response.cseq else { return nil }
        self.init(role: .client, branch: branch, sentBy: nil, method: cseq.method)
    }

    /// The key of the INVITE server transaction a received CANCEL targets.
    ///
    /// RFC 3261 §9.2: "The TU determines the transaction to be cancelled by taking the CANCEL
    /// request, and then assuming that the request method is anything but CANCEL or ACK and
    /// applying the transaction matching procedures of Section 17.2.3." Only INVITE transactions
    /// can be cancelled usefully (§9.1), so the key names the INVITE. An RFC 2543 CANCEL carries
    /// the INVITE's Request-URI, tags, Call-ID, CSeq number and top Via, so its fallback key
    /// matches as well.
    public static func matchingInvite(forCancel cancel: SIPRequest) -> TransactionKey? {
        guard cancel.method == .cancel, let key = TransactionKey(incoming: cancel) else { return nil }
        return key.withMethod(.invite)
    }

    /// Whether the request carried an RFC 3261 branch or this is the RFC 2543 fallback.
    public var isRFC2543: Bool { rfc2543 != nil }

    func withMethod(_ method: SIPMethod) -> TransactionKey {
        if let rfc2543 { return TransactionKey(role: role, rfc2543: rfc2543.identity, method: method) }
        return TransactionKey(role: role, branch: branch, sentBy: sentBy, method: method)
    }

    /// For an RFC 2543 ACK: the key without the To tag our response added (see the type's doc).
    var withoutToTag: TransactionKey? {
        guard var identity = rfc2543?.identity, identity.toTag != nil else { return nil }
        identity.toTag = nil
        return TransactionKey(role: role, rfc2543: identity, method: method)
    }

    static func sentBy(_ via: Via) -> String {
        if let port = via.port { return via.host + ":" + String(port) }
        return via.host
    }

    public var description: String {
        let side = role == .client ? "client" : "server"
        if let identity = rfc2543?.identity {
            return "\(side) \(method) rfc2543 \(identity.callID) \(identity.sequenceNumber)"
        }
        if let sentBy { return "\(side) \(method) \(branch) \(sentBy)" }
        return "\(side) \(method) \(branch)"
    }
}

extension Via {
    /// A new RFC 3261 branch: the magic cookie and 64 random bits in hex (§8.1.1.7: "The branch
    /// ID ... MUST be unique across space and time for all requests sent by the UA").
    public static func makeBranch<Generator: RandomNumberGenerator>(using generator: inout Generator) -> String {
        let value = generator.next() as UInt64
        let hex = String(value, radix: 16)
        return magicCookie + String(repeating: "0", count: 16 - hex.count) + hex
    }

    public static func makeBranch() -> String {
        var generator = SystemRandomNumberGenerator()
        return makeBranch(using: &generator)
    }
}
