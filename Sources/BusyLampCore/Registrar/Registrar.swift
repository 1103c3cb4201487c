import Foundation
import SIPCore
import SIPTransactions

/// The registrar of RFC 3261 §10.3, as a decision over a REGISTER and the AOR's current
/// bindings. It reads no store and no clock: the server gives it the bindings and `now`, then
/// persists what it decides and only then answers (persist, then 200).
///
/// ```
/// REGISTER ──► decide ──► .reject(status)                    answer at once
///                    └──► .apply(upserts, removals, result)  persist ──► 200 with `result`
/// ```
public struct Registrar: Sendable {
    public struct Settings: Sendable, Hashable {
        /// Below this a non-zero expiry gets 423 with Min-Expires (RFC 3261 §10.3 step 7).
        public var minimumExpires: Int
        /// Above this the expiry is shortened to it.
        public var maximumExpires: Int
        /// Used when the phone names no expiry (RFC 3261 §10.2.1.1 suggests 3600).
        public var defaultExpires: Int

        public init(minimumExpires: Int, maximumExpires: Int, defaultExpires: Int = 3600) {
            self.minimumExpires = minimumExpires
            self.maximumExpires = maximumExpires
            self.defaultExpires = min(max(defaultExpires, minimumExpires), maximumExpires)
        }
    }

    /// Most contacts one AOR may hold: a desk phone, a softphone and a mobile app are typical.
    /// More is a misconfigured or hostile client.
    public static let maximumBindingsPerAOR = 10

    public enum Decision: Sendable, Hashable {
        /// Answer with this status; nothing changes.
        case reject(statusCode: Int, reasonPhrase: String, headers: [SIPHeaders.Field])
        /// Persist these changes, then answer 200 listing `result` (the AOR's bindings after it).
        case apply(upserts: [Binding], removals: [String], result: [Binding])
    }

    public let settings: Settings

    public init(settings: Settings) { self.settings = settings }

    /// Decides what `register`, authenticated for `aor`, does to `existing`.
    public func decide(register: SIPRequest, aor: String, existing: [Binding], source: SIPPeer, now: Date) -> Decision {
        let live = existing.filter { !$0.isExpired(at: now) }
        guard let contacts = register.contacts else {
            return .reject(statusCode: 400, reasonPhrase: "Malformed Contact Header", headers: [])
        }
        // A REGISTER without Contact is a query: "the registrar returns the current bindings" (§10.2.3).
        if contacts.isEmpty {
            return .apply(upserts: [], removals: [], result: live)
        }
        guard let callID = register.callID, let cseq = register.cseq else {
            return .reject(statusCode: 400, reasonPhrase: "Missing Call-ID Or CSeq", headers: [])
        }

        // RFC 3261 §10.3 step 6:
        // > If the request has additional Contact fields or an expiration time other than zero,
        // > the request is invalid, and the server MUST return a 400 (Invalid Request)
        if contacts.contains(.wildcard) {
            guard contacts.count == 1, register.expires == 0 else {
                return .reject(statusCode: 400, reasonPhrase: "Invalid Wildcard Contact", headers: [])
            }
            for binding in live where binding.callID == callID && binding.cseq >= cseq.number {
                return .reject(statusCode: 500, reasonPhrase: "Out Of Order Registration", headers: [])
            }
            return .apply(upserts: [], removals: live.map(\.contact), result: [])
        }

        var upserts: [Binding] = []
        var removals: [String] = []
        for case .address(let address) in contacts {
            let requested = expiry(of: address, in: register)
            if requested > 0, requested < settings.minimumExpires {
                // §10.3 step 7: 423 (Interval Too Brief) with a Min-Expires header field.
                return .reject(
                    statusCode: 423,
                    reasonPhrase: "Interval Too Brief",
                    headers: [SIPHeaders.Field(name: .minExpires, value: String(settings.minimumExpires))]
                )
            }
            let contact = address.uri.description
            if let current = live.first(where: { $0.contact == contact }), current.callID == callID,
                current.cseq >= cseq.number
            {
                // > If not, the update MUST be aborted and the request fails.
                return .reject(statusCode: 500, reasonPhrase: "Out Of Order Registration", headers: [])
            }
            // A contact named twice in one REGISTER is one binding: its last mention decides, so
            // that the store never gets an upsert and a removal (or two upserts) for one key.
            upserts.removeAll { $0.contact == contact }
            removals.removeAll { $0 == contact }
            if requested == 0 {
                removals.append(contact)
                continue
            }
            let granted = min(requested, settings.maximumExpires)
            upserts.append(
                Binding(
                    aor: aor,
                    contact: contact,
                    instanceID: address.parameters.unquotedValue("+sip.instance"),
                    regID: address.parameters.unquotedValue("reg-id").flatMap { Int($0) },
                    expiresAt: now.addingTimeInterval(TimeInterval(granted)),
                    callID: callID,
                    cseq: cseq.number,
                    source: source,
                    q: address.parameters.unquotedValue("q").flatMap { Double($0) },
                    userAgent: register.headers[.userAgent],
                    updatedAt: now
                )
            )
        }

        var result = live.filter { binding in
            !removals.contains(binding.contact) && !upserts.contains { $0.contact == binding.contact }
        }
        result.append(contentsOf: upserts)
        guard result.count <= Registrar.maximumBindingsPerAOR else {
            return .reject(statusCode: 403, reasonPhrase: "Too Many Contacts", headers: [])
        }
        return .apply(upserts: upserts, removals: removals, result: result)
    }

    /// The 200 to a REGISTER: every current binding with its remaining time (§10.3 step 8).
    public func okResponse(to register: SIPRequest, bindings: [Binding], now: Date, toTag: String) -> SIPResponse {
        var response = SIPResponse(replyingTo: register, statusCode: 200, toTag: toTag)
        for binding in bindings.sorted(by: { $0.contact < $1.contact }) {
            let remaining = max(0, Int(binding.expiresAt.timeIntervalSince(now).rounded()))
            response.headers.add(.contact, "<\(binding.contact)>;expires=\(remaining)")
        }
        response.headers.add(.date, Registrar.httpDate(now))
        return response
    }

    /// The expiry a contact asks for: its `expires` parameter, else the Expires header, else
    /// the default (RFC 3261 §10.3 step 7). Unreadable values count as the default.
    func expiry(of address: NameAddress, in register: SIPRequest) -> Int {
        if let parameter = address.parameters.unquotedValue("expires"), let value = Int(parameter), value >= 0 {
            return value
        }
        if let header = register.expires, header >= 0 { return header }
        return settings.defaultExpires
    }

    /// RFC 3261 §20.17: `Date: Sat, 13 Nov 2010 23:29:00 GMT` (RFC 1123 format, always GMT).
    static func httpDate(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: date)
    }
}
