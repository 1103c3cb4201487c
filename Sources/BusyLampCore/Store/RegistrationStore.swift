import Foundation
import SIPTransactions

/// One registered contact of a line (RFC 3261 §10.3): where requests for the line's AOR go.
///
/// A binding is identified by its AOR and contact URI; a REGISTER that names the same contact
/// again refreshes it (`upsert`).
public struct Binding: Sendable, Hashable {
    /// The address of record: the line's number (the user part of the To URI).
    public var aor: String
    /// The Contact URI as the phone wrote it, without the header's parameters.
    public var contact: String
    /// RFC 5626 §4.1 `+sip.instance`, when the phone sent one.
    public var instanceID: String?
    /// RFC 5626 §4.2 `reg-id`, when the phone sent one.
    public var regID: Int?
    /// When the binding expires: absolute, so that it means the same after a restart.
    public var expiresAt: Date
    /// RFC 3261 §10.3 step 7: a refresh with the same Call-ID must have a higher CSeq.
    public var callID: String
    public var cseq: UInt32
    /// Where the REGISTER came from: requests to this contact go back there (and for TCP, over
    /// the same connection while it lasts).
    public var source: SIPPeer
    /// The Contact's `q` value (RFC 3261 §20.10), when given.
    public var q: Double?
    public var userAgent: String?
    public var updatedAt: Date

    public init(
        aor: String,
        contact: String,
        instanceID: String? = nil,
        regID: Int? = nil,
        expiresAt: Date,
        callID: String,
        cseq: UInt32,
        source: SIPPeer,
        q: Double? = nil,
        userAgent: String? = nil,
        updatedAt: Date
    ) {
        self.aor = aor
        self.contact = contact
        self.instanceID = instanceID
        self.regID = regID
        self.expiresAt = expiresAt
        self.callID = callID
        self.cseq = cseq
        self.source = source
        self.q = q
        self.userAgent = userAgent
        self.updatedAt = updatedAt
    }

    /// Whether the binding has run out at `now`.
    public func isExpired(at now: Date) -> Bool { expiresAt <= now }
}

/// Where registrar bindings are kept, so that they survive a restart and `kill -9`.
///
/// Every method is synchronous and thread-safe, and a write is durable when it returns: the
/// registrar answers 200 only after `upsert` returned (STYLE.md: persist, then answer).
public protocol RegistrationStore: Sendable {
    /// Inserts the binding, or replaces the one with the same AOR and contact.
    func upsert(_ binding: Binding) throws
    /// Several changes of one REGISTER in one transaction: removes `removals` (contacts of
    /// `aor`) and upserts `upserts`.
    func apply(aor: String, upserts: [Binding], removals: [String]) throws
    /// Returns false if there was no such binding.
    @discardableResult func remove(aor: String, contact: String) throws -> Bool
    /// `Contact: *` with `Expires: 0` (RFC 3261 §10.3 step 6). Returns how many were removed.
    @discardableResult func removeAll(aor: String) throws -> Int
    /// The AOR's bindings, expired ones included (the caller compares with its `now`).
    func bindings(aor: String) throws -> [Binding]
    func allBindings() throws -> [Binding]
    /// Removes the bindings with `expiresAt <= now` and returns them.
    @discardableResult func removeExpired(now: Date) throws -> [Binding]
}
