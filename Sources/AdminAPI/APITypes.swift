import BusyLampCore
import BusyLampServer
import Foundation
import SIPTransactions

/// The JSON the API answers with (docs/admin-api.md), built from the domain's values.
/// Keys are spelled here, snake_case, so that the document and the code are read side by side.
enum API {
    struct PickupCodesBody: Codable, Sendable {
        var directed: String
        var group: String
    }

    struct AccountBody: Encodable {
        var id: String
        var name: String
        var presence: Bool?
        var same_network_only: Bool
        var pickup: PickupCodesBody
        var presence_effective: Bool
        var line_count: Int

        init(_ account: Account, in directory: Directory) {
            id = account.id
            name = account.name
            presence = account.presence
            same_network_only = account.sameNetworkOnly
            pickup = PickupCodesBody(directed: account.pickup.directed, group: account.pickup.group)
            presence_effective = account.presence ?? directory.platform.presenceDefault
            line_count = directory.lines(accountID: account.id).count
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(name, forKey: .name)
            try container.encode(presence, forKey: .presence)  // null when unset, not absent
            try container.encode(same_network_only, forKey: .same_network_only)
            try container.encode(pickup, forKey: .pickup)
            try container.encode(presence_effective, forKey: .presence_effective)
            try container.encode(line_count, forKey: .line_count)
        }

        enum CodingKeys: String, CodingKey {
            case id, name, presence, same_network_only, pickup, presence_effective, line_count
        }
    }

    struct AccountList: Encodable { var accounts: [AccountBody] }

    /// A line without its credentials: the password is write-only.
    struct LineBody: Encodable {
        var account: String
        var `extension`: String
        var number: String
        var name: String
        var group: String
        var presence: Bool?
        var presence_effective: Bool
        var presence_source: String

        init(_ line: Line, in directory: Directory) {
            account = line.accountID
            `extension` = line.extensionNumber
            number = line.number
            name = line.name
            group = line.group
            presence = line.presence
            let (effective, source) = directory.presenceSetting(of: line)
            presence_effective = effective
            presence_source = source.rawValue
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(account, forKey: .account)
            try container.encode(`extension`, forKey: .extension)
            try container.encode(number, forKey: .number)
            try container.encode(name, forKey: .name)
            try container.encode(group, forKey: .group)
            try container.encode(presence, forKey: .presence)
            try container.encode(presence_effective, forKey: .presence_effective)
            try container.encode(presence_source, forKey: .presence_source)
        }

        enum CodingKeys: String, CodingKey {
            case account, `extension`, number, name, group, presence, presence_effective, presence_source
        }
    }

    struct LineList: Encodable { var lines: [LineBody] }

    struct PartyBody: Encodable {
        var identity: String
        var display_name: String?
    }

    struct DialogBody: Encodable {
        var id: String
        var call_id: String
        var direction: String
        var state: String
        var local_tag: String?
        var remote_tag: String?
        var started_at: Date
        var remote: PartyBody

        init(_ dialog: LineDialog) {
            id = dialog.id
            call_id = dialog.callID
            direction = dialog.direction.rawValue
            state = dialog.state.rawValue
            local_tag = dialog.localTag
            remote_tag = dialog.remoteTag
            started_at = dialog.startedAt
            remote = PartyBody(identity: dialog.remote.identity, display_name: dialog.remote.displayName)
        }
    }

    /// INTERFACE.md `.../state`: `state` is idle, ringing or busy; `lamp` adds dialing.
    struct LineStateBody: Encodable {
        var `extension`: String
        var number: String
        var name: String
        var state: String
        var lamp: String
        var registered: Bool
        var dialogs: [DialogBody]

        init(extensionNumber: String, name: String, state: LineState) {
            `extension` = extensionNumber
            number = state.number
            self.name = name
            lamp = state.lamp.rawValue
            switch state.lamp {
            case .idle: self.state = "idle"
            case .ringing: self.state = "ringing"
            case .busy, .dialing: self.state = "busy"
            }
            registered = state.isRegistered
            dialogs = state.dialogs.map(DialogBody.init)
        }

        init(_ line: Line, _ state: LineState) {
            self.init(extensionNumber: line.extensionNumber, name: line.name, state: state)
        }

        init(_ change: LineStateChange) {
            self.init(extensionNumber: change.extensionNumber, name: change.name, state: change.state)
        }
    }

    struct LampList: Encodable { var lamps: [LineStateBody] }

    static func peerText(_ peer: SIPPeer) -> String {
        let host = peer.host.contains(":") ? "[\(peer.host)]" : peer.host
        return "\(peer.transport.rawValue):\(host):\(peer.port)"
    }

    struct SubscriptionBody: Encodable {
        var id: String
        var watcher: String
        var watcher_number: String
        var target: String
        var target_number: String
        var event: String
        var expires: Int
        var expires_at: Date
        var source: String
        var user_agent: String?

        init(_ subscription: Subscription, in directory: Directory, now: Date) {
            id = subscription.id
            watcher = directory.line(number: subscription.watcherNumber)?.extensionNumber ?? subscription.watcherNumber
            watcher_number = subscription.watcherNumber
            target = directory.line(number: subscription.targetNumber)?.extensionNumber ?? subscription.targetNumber
            target_number = subscription.targetNumber
            event = subscription.event.rawValue
            expires = max(0, Int(subscription.expiresAt.timeIntervalSince(now).rounded()))
            expires_at = subscription.expiresAt
            source = API.peerText(subscription.source)
            user_agent = subscription.userAgent
        }
    }

    struct SubscriptionList: Encodable { var subscriptions: [SubscriptionBody] }

    struct RefusalBody: Encodable {
        var time: Date
        var method: String
        var source: String
        var watcher: String
        var target: String
        var status: Int
        var reason: String
        var code: String

        init(_ refusal: Refusal) {
            time = refusal.time
            method = refusal.method
            source = API.peerText(refusal.source)
            watcher = refusal.watcher
            target = refusal.target
            status = refusal.statusCode
            reason = refusal.reasonPhrase
            code = refusal.code
        }
    }

    struct RefusalList: Encodable { var refusals: [RefusalBody] }

    struct RuleBody: Encodable {
        var rule: String
        var verdict: String
        var detail: String
        var source: String?
        var watcher_addresses: [String]?
        var target_addresses: [String]?
    }

    struct DiagnosisBody: Encodable {
        var watcher: String
        var target: String
        var live: Bool
        var decision: String
        var status: Int
        var reason: String
        var summary: String
        var rules: [RuleBody]
        var refusals: [RefusalBody]

        init(_ diagnosis: SubscriptionDiagnosis) {
            watcher = diagnosis.watcherExtension
            target = diagnosis.targetExtension
            live = diagnosis.isLive
            decision = diagnosis.isAccepted ? "accept" : "refuse"
            status = diagnosis.refusalStatus ?? 200
            reason = diagnosis.refusalReason ?? "OK"
            summary = diagnosis.summary
            rules = diagnosis.rules.map {
                RuleBody(
                    rule: $0.name.rawValue,
                    verdict: $0.verdict.rawValue,
                    detail: $0.detail,
                    source: $0.presenceSource?.rawValue,
                    watcher_addresses: $0.watcherAddresses,
                    target_addresses: $0.targetAddresses
                )
            }
            refusals = diagnosis.recentRefusals.map(RefusalBody.init)
        }
    }

    struct HealthBody: Encodable {
        var status: String
        var store: String
        var sip_listeners: Int
    }
}
