import Foundation
import SIPCore
import SIPTransactions

/// The event packages a BLF key or a buddy list subscribes to (RFC 6665 §7.2).
public enum EventPackage: String, Sendable, Hashable, CaseIterable, Codable {
    /// RFC 4235: `application/dialog-info+xml`, what BLF keys use.
    case dialog
    /// RFC 3856: `application/pidf+xml` (RFC 3863, RPID RFC 4480), Polycom's Watch Buddy.
    case presence

    /// The body type of this package's NOTIFYs.
    public var contentType: String {
        switch self {
        case .dialog: return DialogInfoDocument.contentType
        case .presence: return PresenceDocument.contentType
        }
    }
}

/// One phone's subscription to one line: a dialog of its own (RFC 6665 §4.1.2), with what is
/// needed to NOTIFY it again after a restart.
///
/// Its `id` is stable for its life and across restarts: the dialog's Call-ID and our (local)
/// tag, which is what an in-dialog refresh names in its Call-ID and To tag.
public struct Subscription: Sendable, Hashable, Identifiable {
    public var id: String { Subscription.id(callID: dialog.callID, localTag: dialog.localTag) }
    public var event: EventPackage
    /// The account of both the watcher and the watched line (admission guarantees they match).
    public var accountID: String
    /// The subscribing line's number (the digest user name it authenticated with).
    public var watcherNumber: String
    /// The watched line's number.
    public var targetNumber: String
    /// `entity` of every body: the watched line's address of record as the phone wrote it in
    /// the SUBSCRIBE's Request-URI (`sip:201@sip.busylamp.test`, `sip:6495550201@10.0.0.5`):
    /// a phone matches NOTIFYs to its key by this string (Browser-Phone#370).
    public var entity: String
    /// The subscription's dialog: Call-ID, tags, CSeq of our NOTIFYs (never backwards, across
    /// restarts too), route set, remote target.
    public var dialog: Dialog
    /// Where the SUBSCRIBE came from: NOTIFYs go back there (over its TCP connection while it
    /// lasts), not to the Contact, which is often a private address behind NAT.
    public var source: SIPPeer
    /// When the subscription ends unless refreshed (absolute, so it means the same after a restart).
    public var expiresAt: Date
    /// The `version` of the next body (RFC 4235 §4.1: starts at 0, one more per NOTIFY).
    public var nextVersion: UInt32
    public var userAgent: String?
    public var createdAt: Date

    public init(
        event: EventPackage,
        accountID: String,
        watcherNumber: String,
        targetNumber: String,
        entity: String,
        dialog: Dialog,
        source: SIPPeer,
        expiresAt: Date,
        nextVersion: UInt32 = 0,
        userAgent: String? = nil,
        createdAt: Date
    ) {
        self.event = event
        self.accountID = accountID
        self.watcherNumber = watcherNumber
        self.targetNumber = targetNumber
        self.entity = entity
        self.dialog = dialog
        self.source = source
        self.expiresAt = expiresAt
        self.nextVersion = nextVersion
        self.userAgent = userAgent
        self.createdAt = createdAt
    }

    public static func id(callID: String, localTag: String) -> String { "\(callID);\(localTag)" }
}
