import BusyLampCore

/// The phone families BusyLamp writes BLF key settings for: the four the seeds walk customers
/// through by hand. The raw value is the `{vendor}` of `GET /provision/{vendor}/{account}/{extension}`.
public enum PhoneVendor: String, CaseIterable, Sendable {
    case yealink, polycom, cisco, snom
}

/// One file to hand to a phone (or to its provisioning server): what to send as `Content-Type`,
/// the name to offer in `Content-Disposition`, and the text itself.
public struct ProvisioningDocument: Sendable, Hashable {
    public var contentType: String
    /// Safe to put in a header as it is: only letters, digits, `.`, `-` and `_`.
    public var fileName: String
    public var body: String

    public init(contentType: String, fileName: String, body: String) {
        self.contentType = contentType
        self.fileName = fileName
        self.body = body
    }
}

/// Writes, for one line, the BLF key settings that the seeds otherwise have people type into a
/// phone's web page: one key per colleague the line may watch, with the account's pickup codes.
///
/// It promises that a phone given one of these documents only subscribes to lines that the
/// server will accept (PRODUCT.md, rules 1 and 2: same account, same group, presence on), so a
/// provisioned key is never an orange lamp by construction. Everything a person typed (names)
/// is reduced to one line of text and escaped for the format, so a name cannot break the file or
/// add settings to it. Pure: no I/O, no clock; the HTTP layer serves the result.
public enum PhoneProvisioning {
    /// Colleagues that get a BLF key: same account, same group, presence on for them
    /// (``Directory/showsPresence(_:)``), not the line itself, in directory order.
    ///
    /// These are exactly the targets the subscription rules let `line` watch, so the keys and the
    /// server's 403s cannot disagree. Directory order keeps keys where they were when a line is
    /// added, which is what a receptionist who learnt the key positions wants.
    public static func colleagues(of line: Line, in directory: Directory) -> [Line] {
        directory.lines(accountID: line.accountID).filter { colleague in
            colleague.group == line.group
                && colleague.number != line.number
                && colleague.extensionNumber != line.extensionNumber
                && directory.showsPresence(colleague)
        }
    }

    /// The BLF key settings of `line` for a phone of `vendor`.
    ///
    /// `server` is the host[:port] phones register to (optional; default the platform domain).
    /// It is used where a vendor puts a host in the key itself (Cisco `sub=`, snom `sip:` URIs),
    /// so that those SUBSCRIBEs go where the phone's REGISTER goes. A value that is not a plain
    /// host[:port] is ignored in favour of the domain rather than written into the file.
    public static func render(
        _ vendor: PhoneVendor,
        for line: Line,
        in directory: Directory,
        server: String? = nil
    ) -> ProvisioningDocument {
        let context = ProvisioningContext(line: line, directory: directory, server: server)
        switch vendor {
        case .yealink: return YealinkProvisioning.document(for: context)
        case .polycom: return PolycomProvisioning.document(for: context)
        case .cisco: return CiscoProvisioning.document(for: context)
        case .snom: return SnomProvisioning.document(for: context)
        }
    }
}

// MARK: - What every renderer works from

/// Content types of the two kinds of file we write.
enum ProvisioningContentType {
    static let plainText = "text/plain; charset=utf-8"
    static let xml = "application/xml; charset=utf-8"
}

/// One colleague's key, with what every vendor needs already worked out.
struct BLFKey: Sendable, Hashable {
    /// The colleague's full number: what the seeds put in Yealink's Value, Polycom's contact and
    /// Cisco's `sub=`. It is unique on the platform, so it cannot watch the wrong line.
    var number: String
    var extensionNumber: String
    /// The colleague's name on one line, or the extension when the name is empty, so that a
    /// key is never blank.
    var label: String
}

/// The facts about one line that the renderers share, computed once so that the four vendors
/// agree on who gets a key, which pickup codes apply and where subscriptions go.
struct ProvisioningContext: Sendable {
    /// The subscription length we ask phones for, in seconds: the Kiwi seed's attendant console
    /// setting ("Subscribe Expires: 600"), one of the two values PRODUCT.md has seen phones use.
    /// Bounded by the platform's min and max expires so that the server never answers it with 423.
    static let preferredSubscriptionSeconds = 600
    /// Seconds a phone waits before it retries a failed subscription: the Kiwi seed's
    /// "Subscribe Retry Interval: 30".
    static let subscriptionRetrySeconds = 30

    var line: Line
    var lineLabel: String
    var accountID: String
    /// The account's codes, or the defaults (`*89`, `*88`) for a line whose account is missing.
    var pickup: PickupCodes
    var domain: String
    /// host[:port] that keys which carry a host in their URI subscribe to.
    var subscriptionHost: String
    var subscriptionSeconds: Int
    var keys: [BLFKey]

    init(line: Line, directory: Directory, server: String?) {
        self.line = line
        self.lineLabel = ProvisioningText.label(line.name, fallback: line.extensionNumber)
        self.accountID = line.accountID
        self.pickup = directory.account(id: line.accountID)?.pickup ?? PickupCodes()
        self.domain = directory.platform.domain
        self.subscriptionHost = ProvisioningText.hostAndPort(server) ?? directory.platform.domain
        let platform = directory.platform
        self.subscriptionSeconds = min(
            max(Self.preferredSubscriptionSeconds, platform.minimumExpires),
            max(platform.maximumExpires, platform.minimumExpires)
        )
        self.keys = PhoneProvisioning.colleagues(of: line, in: directory).map { colleague in
            BLFKey(
                number: colleague.number,
                extensionNumber: colleague.extensionNumber,
                label: ProvisioningText.label(colleague.name, fallback: colleague.extensionNumber)
            )
        }
    }

    /// `VENDOR-ACCOUNT-EXTENSION[-suffix].EXT`, e.g. `yealink-acme-201.cfg`: says whose file it
    /// is when an operator downloads several, with only characters that are safe in a header.
    func fileName(_ vendor: PhoneVendor, suffix: String = "", extension fileExtension: String) -> String {
        let parts = [
            vendor.rawValue, ProvisioningText.fileNamePart(accountID),
            ProvisioningText.fileNamePart(line.extensionNumber),
        ]
        return parts.joined(separator: "-") + suffix + "." + fileExtension
    }
}

/// Places keys on a vendor's numbered key positions, in order: the phone's own keys first, then
/// those of expansion modules. Keys that find no position are counted so that the document can
/// say so, rather than dropping colleagues silently.
struct KeyLayout<Position> {
    var placed: [(position: Position, key: BLFKey)]
    var unplaced: [BLFKey]

    init(_ keys: [BLFKey], positions: [Position]) {
        placed = Array(zip(positions, keys)).map { (position: $0.0, key: $0.1) }
        unplaced = Array(keys.dropFirst(positions.count))
    }
}
