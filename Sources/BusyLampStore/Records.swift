import BusyLampCore
import Foundation
import GRDB
import SIPAuth
import SIPCore
import SIPTransactions

// One record type per table, each converting to and from its BusyLampCore value. The records
// stay internal: the store's callers see only the domain values.

/// A row of `platform_settings` (there is at most one, id 1).
struct PlatformSettingsRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "platform_settings"
    /// The single row's id.
    static let singletonID = 1

    enum Columns {
        static let id = Column("id")
        static let domain = Column("domain")
        static let presenceDefault = Column("presence_default")
        static let minimumExpires = Column("min_expires")
        static let maximumExpires = Column("max_expires")
    }

    var settings: PlatformSettings

    init(_ settings: PlatformSettings) { self.settings = settings }

    init(row: Row) throws {
        settings = PlatformSettings(
            domain: row[Columns.domain],
            presenceDefault: row[Columns.presenceDefault],
            minimumExpires: row[Columns.minimumExpires],
            maximumExpires: row[Columns.maximumExpires]
        )
    }

    func encode(to container: inout PersistenceContainer) {
        container[Columns.id] = Self.singletonID
        container[Columns.domain] = settings.domain
        container[Columns.presenceDefault] = settings.presenceDefault
        container[Columns.minimumExpires] = settings.minimumExpires
        container[Columns.maximumExpires] = settings.maximumExpires
    }
}

/// A row of `accounts`.
struct AccountRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "accounts"

    enum Columns {
        static let id = Column("id")
        static let name = Column("name")
        static let presence = Column("presence")
        static let sameNetworkOnly = Column("same_network_only")
        static let pickupDirected = Column("pickup_directed")
        static let pickupGroup = Column("pickup_group")
    }

    var account: Account

    init(_ account: Account) { self.account = account }

    init(row: Row) throws {
        account = Account(
            id: row[Columns.id],
            name: row[Columns.name],
            presence: row[Columns.presence],
            sameNetworkOnly: row[Columns.sameNetworkOnly],
            pickup: PickupCodes(directed: row[Columns.pickupDirected], group: row[Columns.pickupGroup])
        )
    }

    func encode(to container: inout PersistenceContainer) {
        container[Columns.id] = account.id
        container[Columns.name] = account.name
        container[Columns.presence] = account.presence
        container[Columns.sameNetworkOnly] = account.sameNetworkOnly
        container[Columns.pickupDirected] = account.pickup.directed
        container[Columns.pickupGroup] = account.pickup.group
    }
}

/// A row of `lines`: the line and its HA1 per algorithm, never a password.
struct LineRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "lines"

    enum Columns {
        static let accountID = Column("account_id")
        static let extensionNumber = Column("extension")
        static let number = Column("number")
        static let name = Column("name")
        static let group = Column("group_name")
        static let presence = Column("presence")
        static let ha1MD5 = Column("ha1_md5")
        static let ha1SHA256 = Column("ha1_sha256")
    }

    /// The column holding each algorithm's HA1.
    static func column(for algorithm: DigestAlgorithm) -> Column {
        switch algorithm {
        case .md5: return Columns.ha1MD5
        case .sha256: return Columns.ha1SHA256
        }
    }

    var line: Line

    init(_ line: Line) { self.line = line }

    init(row: Row) throws {
        var credentials: [DigestAlgorithm: String] = [:]
        for algorithm in DigestAlgorithm.allCases {
            let ha1: String? = row[Self.column(for: algorithm)]
            if let ha1 { credentials[algorithm] = ha1 }
        }
        line = Line(
            accountID: row[Columns.accountID],
            extensionNumber: row[Columns.extensionNumber],
            number: row[Columns.number],
            name: row[Columns.name],
            group: row[Columns.group],
            presence: row[Columns.presence],
            credentials: credentials
        )
    }

    func encode(to container: inout PersistenceContainer) {
        container[Columns.accountID] = line.accountID
        container[Columns.extensionNumber] = line.extensionNumber
        container[Columns.number] = line.number
        container[Columns.name] = line.name
        container[Columns.group] = line.group
        container[Columns.presence] = line.presence
        for algorithm in DigestAlgorithm.allCases {
            container[Self.column(for: algorithm)] = line.credentials[algorithm]
        }
    }
}

/// A row of `trunks`.
struct TrunkRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "trunks"

    enum Columns {
        static let name = Column("name")
        static let host = Column("host")
        static let port = Column("port")
        static let transport = Column("transport")
    }

    var trunk: Trunk

    init(_ trunk: Trunk) { self.trunk = trunk }

    init(row: Row) throws {
        let transportName: String = row[Columns.transport]
        guard let transport = Trunk.Transport(rawValue: transportName) else {
            throw StoreCorruption(table: Self.databaseTableName, problem: "unknown transport \"\(transportName)\"")
        }
        trunk = Trunk(name: row[Columns.name], host: row[Columns.host], port: row[Columns.port], transport: transport)
    }

    func encode(to container: inout PersistenceContainer) {
        container[Columns.name] = trunk.name
        container[Columns.host] = trunk.host
        container[Columns.port] = trunk.port
        container[Columns.transport] = trunk.transport.rawValue
    }
}

/// A row of `bindings`.
struct BindingRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "bindings"

    enum Columns {
        static let aor = Column("aor")
        static let contact = Column("contact")
        static let instanceID = Column("instance_id")
        static let regID = Column("reg_id")
        static let expiresAt = Column("expires_at")
        static let callID = Column("call_id")
        static let cseq = Column("cseq")
        static let q = Column("q")
        static let userAgent = Column("user_agent")
        static let updatedAt = Column("updated_at")
    }

    var binding: Binding

    init(_ binding: Binding) { self.binding = binding }

    init(row: Row) throws {
        let cseq: Int64 = row[Columns.cseq]
        binding = Binding(
            aor: row[Columns.aor],
            contact: row[Columns.contact],
            instanceID: row[Columns.instanceID],
            regID: row[Columns.regID],
            expiresAt: Self.date(milliseconds: row[Columns.expiresAt]),
            callID: row[Columns.callID],
            cseq: UInt32(truncatingIfNeeded: cseq),
            source: try SIPPeerColumns.peer(in: row, table: Self.databaseTableName),
            q: row[Columns.q],
            userAgent: row[Columns.userAgent],
            updatedAt: Self.date(milliseconds: row[Columns.updatedAt])
        )
    }

    func encode(to container: inout PersistenceContainer) {
        container[Columns.aor] = binding.aor
        container[Columns.contact] = binding.contact
        container[Columns.instanceID] = binding.instanceID
        container[Columns.regID] = binding.regID
        container[Columns.expiresAt] = Self.milliseconds(binding.expiresAt)
        container[Columns.callID] = binding.callID
        container[Columns.cseq] = Int64(binding.cseq)
        SIPPeerColumns.encode(binding.source, to: &container)
        container[Columns.q] = binding.q
        container[Columns.userAgent] = binding.userAgent
        container[Columns.updatedAt] = Self.milliseconds(binding.updatedAt)
    }

    /// Times are stored as whole milliseconds since 1970: a `Date` read back is rounded to the
    /// millisecond.
    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    static func date(milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: TimeInterval(milliseconds) / 1000)
    }
}

/// The columns where a table keeps a `SIPPeer` (`bindings` and `subscriptions` name them alike):
/// `transport`, `host`, `port`, the stream's `connection_id`, a `UInt64` kept as its
/// `Int64` bit pattern (SQLite integers are signed), and the `listener` it reached (NULL: the
/// transport's first).
enum SIPPeerColumns {
    static let transport = Column("transport")
    static let host = Column("host")
    static let port = Column("port")
    static let connectionID = Column("connection_id")
    static let listener = Column("listener")

    static func encode(_ peer: SIPPeer, to container: inout PersistenceContainer) {
        for (column, value) in values(of: peer) { container[column] = value }
    }

    static func values(of peer: SIPPeer) -> [(column: Column, value: (any DatabaseValueConvertible)?)] {
        [
            (transport, peer.transport.rawValue),
            (host, peer.host),
            (port, peer.port),
            (connectionID, peer.connectionID.map { Int64(bitPattern: $0) }),
            (listener, peer.listener.map { Int64($0) }),
        ]
    }

    static func peer(in row: Row, table: String) throws -> SIPPeer {
        let transportName: String = row[transport]
        guard let transport = SIPPeer.Transport(rawValue: transportName) else {
            throw StoreCorruption(table: table, problem: "unknown transport \"\(transportName)\"")
        }
        let connectionID: Int64? = row[connectionID]
        let listener: Int64? = row[listener]
        return SIPPeer(
            transport: transport,
            host: row[host],
            port: row[port],
            connectionID: connectionID.map { UInt64(bitPattern: $0) },
            listener: listener.flatMap { UInt16(exactly: $0) }
        )
    }
}

/// A row of `subscriptions`: the subscription and every field of its dialog, so that a restored
/// value equals the stored one (`Subscription` and `Dialog` are compared field by field).
///
/// - Addresses are NameAddress text, the route set a JSON array of them, the remote target URI
///   text; each is parsed back with SIPCore's parsers.
/// - Times are `Date`'s own value, seconds since 2001-01-01 as a REAL, which reads back
///   bit for bit (the milliseconds of `bindings` would round `expiresAt`, and the comparison
///   `expires_at <= now` is the same as `Date`'s).
/// - CSeq numbers and `next_version` are `UInt32`, which fit SQLite's signed integers.
struct SubscriptionRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "subscriptions"

    enum Columns {
        static let id = Column("id")
        static let event = Column("event")
        static let accountID = Column("account_id")
        static let watcherNumber = Column("watcher_number")
        static let targetNumber = Column("target_number")
        static let entity = Column("entity")
        static let dialogState = Column("dialog_state")
        static let callID = Column("call_id")
        static let localTag = Column("local_tag")
        static let remoteTag = Column("remote_tag")
        static let localSequenceNumber = Column("local_cseq")
        static let remoteSequenceNumber = Column("remote_cseq")
        static let localAddress = Column("local_address")
        static let remoteAddress = Column("remote_address")
        static let remoteTarget = Column("remote_target")
        static let routeSet = Column("route_set")
        static let isSecure = Column("is_secure")
        static let expiresAt = Column("expires_at")
        static let nextVersion = Column("next_version")
        static let userAgent = Column("user_agent")
        static let createdAt = Column("created_at")
    }

    var subscription: Subscription

    init(_ subscription: Subscription) { self.subscription = subscription }

    init(row: Row) throws {
        let eventName: String = row[Columns.event]
        guard let event = EventPackage(rawValue: eventName) else {
            throw Self.corruption("unknown event package \"\(eventName)\"")
        }
        let routeTexts: String = row[Columns.routeSet]
        let routes: [String]
        do {
            routes = try JSONDecoder().decode([String].self, from: Data(routeTexts.utf8))
        } catch {
            throw Self.corruption("route set is not a JSON array of strings: \(routeTexts)")
        }
        let remoteTargetText: String = row[Columns.remoteTarget]
        guard let remoteTarget = SIPURI(remoteTargetText) else {
            throw Self.corruption("malformed remote target \"\(remoteTargetText)\"")
        }
        let dialog = Dialog(
            restoring: try Self.dialogState(row[Columns.dialogState]),
            callID: row[Columns.callID],
            localTag: row[Columns.localTag],
            remoteTag: row[Columns.remoteTag],
            localSequenceNumber: try Self.uint32(row[Columns.localSequenceNumber], Columns.localSequenceNumber),
            remoteSequenceNumber: try Self.uint32(row[Columns.remoteSequenceNumber], Columns.remoteSequenceNumber),
            localAddress: try Self.address(row[Columns.localAddress]),
            remoteAddress: try Self.address(row[Columns.remoteAddress]),
            remoteTarget: remoteTarget,
            routeSet: try routes.map(Self.address),
            isSecure: row[Columns.isSecure]
        )
        guard let nextVersion = try Self.uint32(row[Columns.nextVersion], Columns.nextVersion) else {
            throw Self.corruption("next_version is NULL")
        }
        subscription = Subscription(
            event: event,
            accountID: row[Columns.accountID],
            watcherNumber: row[Columns.watcherNumber],
            targetNumber: row[Columns.targetNumber],
            entity: row[Columns.entity],
            dialog: dialog,
            source: try SIPPeerColumns.peer(in: row, table: Self.databaseTableName),
            expiresAt: Self.date(row[Columns.expiresAt]),
            nextVersion: nextVersion,
            userAgent: row[Columns.userAgent],
            createdAt: Self.date(row[Columns.createdAt])
        )
    }

    func encode(to container: inout PersistenceContainer) throws {
        for (column, value) in try columnValues() { container[column] = value }
    }

    /// Every column and its value. `encode(to:)` and the batch upsert's prepared statement
    /// (``upsertSQL``) both read this one list, so they cannot disagree.
    func columnValues() throws -> [(column: Column, value: (any DatabaseValueConvertible)?)] {
        let dialog = subscription.dialog
        let head: [(column: Column, value: (any DatabaseValueConvertible)?)] = [
            (Columns.id, subscription.id),
            (Columns.event, subscription.event.rawValue),
            (Columns.accountID, subscription.accountID),
            (Columns.watcherNumber, subscription.watcherNumber),
            (Columns.targetNumber, subscription.targetNumber),
            (Columns.entity, subscription.entity),
            (Columns.dialogState, Self.text(dialog.state)),
            (Columns.callID, dialog.callID),
            (Columns.localTag, dialog.localTag),
            (Columns.remoteTag, dialog.remoteTag),
            (Columns.localSequenceNumber, dialog.localSequenceNumber.map { Int64($0) }),
            (Columns.remoteSequenceNumber, dialog.remoteSequenceNumber.map { Int64($0) }),
            (Columns.localAddress, dialog.localAddressText),
            (Columns.remoteAddress, dialog.remoteAddressText),
            (Columns.remoteTarget, dialog.remoteTargetText),
            (Columns.routeSet, try Self.json(dialog.routeSet.map(\.losslessDescription))),
            (Columns.isSecure, dialog.isSecure),
        ]
        return head + SIPPeerColumns.values(of: subscription.source) + [
            (Columns.expiresAt, Self.seconds(subscription.expiresAt)),
            (Columns.nextVersion, Int64(subscription.nextVersion)),
            (Columns.userAgent, subscription.userAgent),
            (Columns.createdAt, Self.seconds(subscription.createdAt)),
        ]
    }

    /// `INSERT OR REPLACE` of every column of ``columnValues()``, as one prepared statement a
    /// batch runs once per subscription (GRDB's record insert builds and checks a container per
    /// record: the store's share of a SUBSCRIBE's CPU in issue 10's profile).
    static func upsertSQL(columns: [Column]) -> String {
        let names = columns.map(\.name).joined(separator: ", ")
        let placeholders = Array(repeating: "?", count: columns.count).joined(separator: ", ")
        return "INSERT OR REPLACE INTO \(databaseTableName) (\(names)) VALUES (\(placeholders))"
    }

    // MARK: Conversions

    /// The column value of a time: `Date`'s own representation, exact both ways.
    static func seconds(_ date: Date) -> Double { date.timeIntervalSinceReferenceDate }

    static func date(_ seconds: Double) -> Date { Date(timeIntervalSinceReferenceDate: seconds) }

    static func address(_ text: String) throws -> NameAddress {
        guard let address = NameAddress(text) else { throw corruption("malformed name-addr \"\(text)\"") }
        return address
    }

    static func text(_ state: Dialog.State) -> String {
        switch state {
        case .early: return "early"
        case .confirmed: return "confirmed"
        }
    }

    static func dialogState(_ text: String) throws -> Dialog.State {
        switch text {
        case "early": return .early
        case "confirmed": return .confirmed
        default: throw corruption("unknown dialog state \"\(text)\"")
        }
    }

    static func uint32(_ value: Int64?, _ column: Column) throws -> UInt32? {
        guard let value else { return nil }
        guard let number = UInt32(exactly: value) else {
            throw corruption("\(column.name) \(value) is not a 32-bit unsigned integer")
        }
        return number
    }

    static func json(_ strings: [String]) throws -> String {
        // Nearly every subscription has no route set: no encoder for that.
        if strings.isEmpty { return "[]" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return String(decoding: try encoder.encode(strings), as: UTF8.self)
    }

    static func corruption(_ problem: String) -> StoreCorruption {
        StoreCorruption(table: databaseTableName, problem: problem)
    }
}

/// A row the store cannot turn back into a value: written by a newer version, or edited by hand.
struct StoreCorruption: Error, CustomStringConvertible {
    var table: String
    var problem: String

    var description: String { "table \(table): \(problem)" }
}
