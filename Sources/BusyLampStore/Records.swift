import BusyLampCore
import Foundation
import GRDB
import SIPAuth
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
        static let transport = Column("transport")
        static let host = Column("host")
        static let port = Column("port")
        static let connectionID = Column("connection_id")
        static let q = Column("q")
        static let userAgent = Column("user_agent")
        static let updatedAt = Column("updated_at")
    }

    var binding: Binding

    init(_ binding: Binding) { self.binding = binding }

    init(row: Row) throws {
        let transportName: String = row[Columns.transport]
        guard let transport = SIPPeer.Transport(rawValue: transportName) else {
            throw StoreCorruption(table: Self.databaseTableName, problem: "unknown transport \"\(transportName)\"")
        }
        let connectionID: Int64? = row[Columns.connectionID]
        let cseq: Int64 = row[Columns.cseq]
        binding = Binding(
            aor: row[Columns.aor],
            contact: row[Columns.contact],
            instanceID: row[Columns.instanceID],
            regID: row[Columns.regID],
            expiresAt: Self.date(milliseconds: row[Columns.expiresAt]),
            callID: row[Columns.callID],
            cseq: UInt32(truncatingIfNeeded: cseq),
            source: SIPPeer(
                transport: transport,
                host: row[Columns.host],
                port: row[Columns.port],
                connectionID: connectionID.map { UInt64(bitPattern: $0) }
            ),
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
        container[Columns.transport] = binding.source.transport.rawValue
        container[Columns.host] = binding.source.host
        container[Columns.port] = binding.source.port
        container[Columns.connectionID] = binding.source.connectionID.map { Int64(bitPattern: $0) }
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

/// A row the store cannot turn back into a value: written by a newer version, or edited by hand.
struct StoreCorruption: Error, CustomStringConvertible {
    var table: String
    var problem: String

    var description: String { "table \(table): \(problem)" }
}
