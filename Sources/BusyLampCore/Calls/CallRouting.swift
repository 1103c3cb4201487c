import SIPCore

/// Where an incoming INVITE goes, decided from its Request-URI and who sent it: the first
/// step of issue 4 ("Calls and pickup"; PRODUCT.md "Pressing the key").
///
/// A pure decision over the directory it was built with: it never reads a store, a socket or a
/// clock, and knows nothing of registrations or ringing calls. Whether a routed line has a
/// registered contact (480), is busy (486), or whether a pickup target is ringing at all (480)
/// is for the B2BUA and pickup machines that act on the ``Route``. Every refusal carries a
/// status and a reason phrase that says why, like ``SubscriptionAdmission``'s.
///
/// The caller was identified before routing: a line by digest authentication (the server
/// answers 407 until it is), a trunk by the address its request came from
/// (``Directory/trunk(from:)``). The user part is compared after its `%HH` escapes are resolved
/// (``SIPURI/user`` does that), so `%2A89201` is `*89201` and `%2388` is `#88`.
///
/// The checks, in order (the first that answers wins):
/// ```
/// INVITE ─► caller a line or a trunk? ──no──► 403 Caller Not Identified
///            │ Request-URI sip: or sips:? ──no──► 416 Unsupported URI Scheme
///            │ host ours (platform domain or one of our addresses)? ──no──► 404 Domain Not Served Here
///            │ user part (with user=phone: without separators or parameters) not empty? ──no──► 484
///            │
///            ├─ a trunk calls:
///            │   platform number (`+` allowed)? ──► .line
///            │   number-shaped (`+`? digits)? ──► 404 No Such Number
///            │   anything else ──► 403 Trunk May Only Call Platform Numbers
///            │
///            └─ a line calls (pickup codes first: `*89…` is never an extension):
///                user == the account's group code (`*88`)? ──► .groupPickup(account, caller's group)
///                user == directed code (`*89`) + something?
///                    nothing after the code ──► 484 Address Incomplete
///                    target (extension in the caller's account, then number) unknown ──► 404 No Such Pickup Target
///                    target in another account ──► 403 Pickup Target In Another Account
///                    target in another group ──► 403 Pickup Target In Another Group
///                    else ──► .directedPickup(target)
///                extension in the caller's account? ──► .line
///                platform number (`+` allowed), any account? ──► .line
///                number-shaped (`+`? digits)? ── first trunk ──► .trunk(trunk, number as dialed)
///                                              ── no trunk ──► 404 No Trunk For Outside Numbers
///                anything else ──► 404 No Such Extension Or Number
/// ```
///
/// Choices the order encodes:
/// - The group code is compared before the directed prefix, so that an account whose group code
///   starts with its directed code (or equals it, a misconfiguration) still reaches group pickup.
/// - Extensions are per account: another account's extension never reaches that account's line;
///   like any other unknown digits it goes out to the trunk, or gets 404 without one. Platform
///   numbers are reachable from every line, of any account, as from the public network: calling
///   a line is not watching it, so the account and group rule (PRODUCT.md) governs pickup and
///   subscriptions only.
/// - A trunk has no account, so extensions and pickup codes mean nothing from it, and it never
///   reaches the trunk (that would hairpin a carrier's call back to it, a toll-fraud path). An
///   unknown number from a trunk is 404, the status RFC 3398's ISUP-to-SIP table gives cause 1
///   "unallocated number": what a carrier expects for a DID we do not serve.
/// - Outside numbers go to the first trunk in directory order: the directory has no per-line or
///   per-prefix trunk choice yet. With no trunk the refusal is 404, not 503: it is the platform's
///   configuration, not a passing overload, and a 503 would send phones failing over to another
///   server for nothing (RFC 3261 §21.5.4: a UAC receiving 503 "SHOULD attempt to forward the
///   request to an alternate server").
/// - A line may call or pick up its own line (another of its phones ringing): nothing forbids it.
public struct CallRouting: Sendable {
    /// Who sent the INVITE, as the server identified it before routing.
    public enum Caller: Sendable, Hashable {
        /// A digest-authenticated line.
        case line(Line)
        /// A request from a trunk's address.
        case trunk(Trunk)
        /// Neither: the server should have challenged it; routing refuses it rather than guess.
        case unknown
    }

    /// Where the call goes.
    public enum Route: Sendable, Hashable {
        /// Ring every registered contact of this line (an extension, or a platform number).
        case line(Line)
        /// Pick up the call ringing at `target`, a line of the caller's account and group.
        case directedPickup(target: Line)
        /// Pick up the most recently started ringing call of this account's group.
        case groupPickup(accountID: String, group: String)
        /// Send the call out through `trunk` to `number`, as the phone dialed it (a leading `+` kept).
        case trunk(Trunk, number: String)
    }

    /// Why an INVITE is refused, as its response says it.
    public struct Refusal: Error, Sendable, Hashable {
        /// One code per reason, for metrics labels (`rawValue`) and tests.
        public enum Code: String, Sendable, Hashable, CaseIterable {
            case unknownCaller
            case unsupportedScheme
            case foreignDomain
            case addressIncomplete
            case unknownDestination
            case unknownNumberFromTrunk
            case notANumberFromTrunk
            case noTrunk
            case unknownPickupTarget
            case pickupTargetInAnotherAccount
            case pickupTargetInAnotherGroup
        }

        public var code: Code
        public var statusCode: Int
        /// Says why, e.g. "Pickup Target In Another Group": the phone's log and the operator see it.
        public var reasonPhrase: String

        public init(code: Code, statusCode: Int, reasonPhrase: String) {
            self.code = code
            self.statusCode = statusCode
            self.reasonPhrase = reasonPhrase
        }
    }

    public var directory: Directory

    public init(directory: Directory) {
        self.directory = directory
    }

    /// Routes an INVITE by its Request-URI. `isLocalHost(host)` says whether a Request-URI host
    /// means us (the platform domain or one of our addresses), as for ``SubscriptionAdmission``.
    public func route(
        _ requestURI: SIPURI,
        from caller: Caller,
        isLocalHost: (String) -> Bool
    ) -> Result<Route, Refusal> {
        let callingLine: Line?
        switch caller {
        case .line(let line): callingLine = line
        case .trunk: callingLine = nil
        case .unknown:
            return .failure(Refusal(code: .unknownCaller, statusCode: 403, reasonPhrase: "Caller Not Identified"))
        }
        // RFC 3261 §8.2.2.1: "If the Request-URI uses a scheme not supported by the UAS, it
        // SHOULD reject the request with a 416 (Unsupported URI Scheme) response."
        guard requestURI.isSIP else {
            return .failure(
                Refusal(code: .unsupportedScheme, statusCode: 416, reasonPhrase: "Unsupported URI Scheme")
            )
        }
        // We are no open relay: a host that is not ours is not served (PRODUCT.md rule 6's host
        // condition, the same as for subscriptions).
        guard isLocalHost(requestURI.hostWithoutBrackets) || isLocalHost(requestURI.host) else {
            return .failure(Refusal(code: .foreignDomain, statusCode: 404, reasonPhrase: "Domain Not Served Here"))
        }
        // RFC 3261 §21.4.22: "The server received a request with a Request-URI that was incomplete."
        let user = requestURI.user.map { Self.dialed($0, in: requestURI) } ?? ""
        guard !user.isEmpty else {
            return .failure(Self.addressIncomplete)
        }
        guard let callingLine else { return routeFromTrunk(user) }
        return route(user, fromLine: callingLine)
    }

    // MARK: The two callers

    /// A trunk reaches platform numbers only.
    func routeFromTrunk(_ user: String) -> Result<Route, Refusal> {
        if let line = directory.line(dialedNumber: user) { return .success(.line(line)) }
        if Self.isNumber(user) {
            return .failure(Refusal(code: .unknownNumberFromTrunk, statusCode: 404, reasonPhrase: "No Such Number"))
        }
        return .failure(
            Refusal(code: .notANumberFromTrunk, statusCode: 403, reasonPhrase: "Trunk May Only Call Platform Numbers")
        )
    }

    /// A line reaches pickup, its account's extensions, platform numbers, then the trunk.
    func route(_ user: String, fromLine caller: Line) -> Result<Route, Refusal> {
        // A line whose account is missing (a directory being edited) keeps the default codes.
        let codes = directory.account(id: caller.accountID)?.pickup ?? PickupCodes()
        if !codes.group.isEmpty, user == codes.group {
            return .success(.groupPickup(accountID: caller.accountID, group: caller.group))
        }
        if !codes.directed.isEmpty, user.hasPrefix(codes.directed) {
            return directedPickup(String(user.dropFirst(codes.directed.count)), caller: caller)
        }
        if let line = directory.line(dialed: user, accountID: caller.accountID) {
            return .success(.line(line))
        }
        guard Self.isNumber(user) else {
            return .failure(
                Refusal(code: .unknownDestination, statusCode: 404, reasonPhrase: "No Such Extension Or Number")
            )
        }
        guard let trunk = directory.trunks.first else {
            return .failure(Refusal(code: .noTrunk, statusCode: 404, reasonPhrase: "No Trunk For Outside Numbers"))
        }
        return .success(.trunk(trunk, number: user))
    }

    /// PRODUCT.md "Pressing the key": "Pickup obeys the same account and group rule as
    /// subscriptions" (rule 1), with reason phrases in the same words.
    func directedPickup(_ dialed: String, caller: Line) -> Result<Route, Refusal> {
        guard !dialed.isEmpty else { return .failure(Self.addressIncomplete) }
        guard let target = directory.line(dialed: dialed, accountID: caller.accountID) else {
            return .failure(
                Refusal(code: .unknownPickupTarget, statusCode: 404, reasonPhrase: "No Such Pickup Target")
            )
        }
        guard target.accountID == caller.accountID else {
            return .failure(
                Refusal(
                    code: .pickupTargetInAnotherAccount,
                    statusCode: 403,
                    reasonPhrase: "Pickup Target In Another Account"
                )
            )
        }
        guard target.group == caller.group else {
            return .failure(
                Refusal(
                    code: .pickupTargetInAnotherGroup,
                    statusCode: 403,
                    reasonPhrase: "Pickup Target In Another Group"
                )
            )
        }
        return .success(.directedPickup(target: target))
    }

    // MARK: Helpers

    static let addressIncomplete = Refusal(
        code: .addressIncomplete,
        statusCode: 484,
        reasonPhrase: "Address Incomplete"
    )

    /// What the caller dialed. RFC 3261 §19.1.6: with `user=phone` the user part is a
    /// `telephone-subscriber` (RFC 3966): its parameters follow a ';' (`;npdi`, `;rn=`, `;isub=`,
    /// `;phone-context=`, as carriers send them) and visual separators (`-`, `.`, `(`, `)`) may
    /// stand among the digits; both are dropped. Without `user=phone` the user part is kept as is.
    static func dialed(_ user: String, in uri: SIPURI) -> String {
        guard uri.parameters.unquotedValue("user")?.lowercased() == "phone" else { return user }
        let subscriber = user.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return String(subscriber.filter { !"-.()".contains($0) })
    }

    /// `+`? then one or more ASCII digits: what a phone dials for a number (E.164 or national).
    static func isNumber(_ user: String) -> Bool {
        let digits = user.utf8.first == UInt8(ascii: "+") ? user.utf8.dropFirst() : user.utf8[...]
        return !digits.isEmpty && digits.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }
}
