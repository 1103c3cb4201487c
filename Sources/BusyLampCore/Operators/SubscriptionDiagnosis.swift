import SIPTransactions

/// "Why is this lamp orange?": the decision the server would take now for a watcher and a
/// target of one account, with every rule's verdict, in the order ``SubscriptionAdmission``
/// applies them (PRODUCT.md rules 1 to 3), and the recent refused attempts of the pair.
///
/// A pure function of the directory and what the server knows live (where each line is
/// registered from). Without live knowledge (`busylamp why` reading only the store) the
/// network rule and the registration are reported as unknown, and ``isLive`` is false.
public struct SubscriptionDiagnosis: Sendable, Hashable {
    public enum Verdict: String, Sendable, Hashable {
        case pass, fail
        /// An earlier rule already refused: this one was not reached.
        case notChecked = "not_checked"
        /// The rule does not apply (e.g. `same_network_only` is off).
        case notApplicable = "not_applicable"
        /// Not a rule: something that explains the lamp (registered or not).
        case info
    }

    public enum RuleName: String, Sendable, Hashable, CaseIterable {
        case watcherExists = "watcher_exists"
        case targetExists = "target_exists"
        case sameAccount = "same_account"
        case sameGroup = "same_group"
        case presence
        case sameNetworkOnly = "same_network_only"
        case targetRegistered = "target_registered"
    }

    public typealias PresenceSource = Directory.PresenceSource

    public struct Rule: Sendable, Hashable {
        public var name: RuleName
        public var verdict: Verdict
        /// Plain words for the operator.
        public var detail: String
        /// `presence` only: where the setting came from.
        public var presenceSource: PresenceSource?
        /// `same_network_only` only: the addresses compared.
        public var watcherAddresses: [String]?
        public var targetAddresses: [String]?
    }

    public var watcherExtension: String
    public var targetExtension: String
    public var isLive: Bool
    public var rules: [Rule]
    /// `nil`: accepted. Otherwise the status and reason phrase a SUBSCRIBE would get now.
    public var refusalStatus: Int?
    public var refusalReason: String?
    /// One or two sentences a receptionist understands.
    public var summary: String
    /// The pair's recent refused attempts, newest first.
    public var recentRefusals: [Refusal]

    public var isAccepted: Bool { refusalStatus == nil }

    /// - Parameters:
    ///   - registeredSourceHosts: the source addresses of a line's live registrations, by
    ///     number; `nil` when the caller knows only the store (no live state).
    ///   - refusals: the account's recent refusals (newest first); the pair's are kept.
    public static func diagnose(
        accountID: String,
        watcherExtension: String,
        targetExtension: String,
        directory: Directory,
        registeredSourceHosts: ((String) -> [String])?,
        refusals: [Refusal]
    ) -> SubscriptionDiagnosis {
        var rules: [Rule] = []
        var refusal: (status: Int, reason: String)?
        var summary = ""
        let watcher = directory.line(accountID: accountID, extensionNumber: watcherExtension)
        let target = directory.line(dialed: targetExtension, accountID: accountID)

        func add(_ name: RuleName, _ verdict: Verdict, _ detail: String) {
            rules.append(Rule(name: name, verdict: verdict, detail: detail))
        }
        func refuse(_ status: Int, _ reason: String, _ words: String) {
            if refusal == nil {
                refusal = (status, reason)
                summary = words
            }
        }
        func label(_ line: Line) -> String { line.name.isEmpty ? "extension \(line.extensionNumber)" : line.name }
        /// A later rule after a refusal is not reached by the server; say so.
        func reached() -> Bool { refusal == nil }

        if let watcher {
            add(.watcherExists, .pass, "\(label(watcher)) is extension \(watcher.extensionNumber) (\(watcher.number)).")
        } else {
            add(.watcherExists, .fail, "No line with extension \(watcherExtension) in account \(accountID).")
            refuse(
                404,
                "Unknown Watcher",
                "There is no extension \(watcherExtension) in this account, so no phone can subscribe as it."
            )
        }
        if let target {
            add(.targetExists, .pass, "\(label(target)) is extension \(target.extensionNumber) (\(target.number)).")
        } else {
            add(
                .targetExists,
                reached() ? .fail : .notChecked,
                "No line \(targetExtension) in account \(accountID), nor a platform number \(targetExtension)."
            )
            refuse(
                404,
                "Unknown Target",
                "The lamp's key points at \(targetExtension), which is not a line: the phone gets 404 Unknown Target. Fix the key's value."
            )
        }

        if let watcher, let target, refusal == nil {
            // Rule 1, account.
            if target.accountID == watcher.accountID {
                add(.sameAccount, .pass, "Both lines are in account \(watcher.accountID).")
            } else {
                add(
                    .sameAccount,
                    .fail,
                    "\(label(target)) is in account \(target.accountID), \(label(watcher)) in \(watcher.accountID)."
                )
                refuse(
                    403,
                    "Target In Another Account",
                    "\(label(watcher)) cannot watch \(label(target)): the lines belong to different accounts."
                )
            }
            // Rule 1, group.
            if !reached() {
                add(.sameGroup, .notChecked, "Not reached: an earlier rule refused.")
            } else if target.group == watcher.group {
                add(.sameGroup, .pass, "Both lines are in group \(watcher.group).")
            } else {
                add(
                    .sameGroup,
                    .fail,
                    "\(label(watcher)) is in group \(watcher.group), \(label(target)) in group \(target.group)."
                )
                refuse(
                    403,
                    "Target In Another Group",
                    "\(label(watcher))'s phone cannot watch \(label(target)): \(label(watcher)) is in group \(watcher.group) and \(label(target)) in group \(target.group). Move one of them so that both are in the same group."
                )
            }
            // Rule 2, presence.
            let (presence, source) = directory.presenceSetting(of: target)
            let sourceWords: String
            switch source {
            case .line: sourceWords = "set on the line"
            case .account: sourceWords = "set for account \(target.accountID)"
            case .platform: sourceWords = "the platform default (neither the line nor the account sets it)"
            }
            var presenceRule = Rule(
                name: .presence,
                verdict: !reached() ? .notChecked : (presence ? .pass : .fail),
                detail: "Presence for \(label(target)) is \(presence ? "on" : "off"): \(sourceWords)."
            )
            presenceRule.presenceSource = source
            rules.append(presenceRule)
            if presenceRule.verdict == .fail {
                refuse(
                    403,
                    "Presence Disabled For Target",
                    "\(label(target))'s lamp cannot be shown: presence is off for \(label(target)) (\(sourceWords)). Turn it on to let colleagues watch."
                )
            }
            // Rule 3, same network.
            let sameNetworkOnly = directory.account(id: target.accountID)?.sameNetworkOnly == true
            var networkRule = Rule(name: .sameNetworkOnly, verdict: .notApplicable, detail: "")
            if !sameNetworkOnly {
                networkRule.detail = "Account \(target.accountID) does not require the same network."
                if !reached() { networkRule.verdict = .notChecked }
            } else if let registeredSourceHosts {
                let watcherHosts = registeredSourceHosts(watcher.number).map(SubscriptionAdmission.normalizedHost)
                let targetHosts = registeredSourceHosts(target.number).map(SubscriptionAdmission.normalizedHost)
                networkRule.watcherAddresses = watcherHosts
                networkRule.targetAddresses = targetHosts
                let shared = !Set(watcherHosts).isDisjoint(with: targetHosts)
                let compared =
                    "\(label(watcher)) registers from \(watcherHosts.isEmpty ? "nowhere" : watcherHosts.joined(separator: ", ")), \(label(target)) from \(targetHosts.isEmpty ? "nowhere" : targetHosts.joined(separator: ", "))."
                if !reached() {
                    networkRule.verdict = .notChecked
                    networkRule.detail = compared
                } else if shared {
                    networkRule.verdict = .pass
                    networkRule.detail = "Same network required and shared: " + compared
                } else {
                    networkRule.verdict = .fail
                    networkRule.detail = "Same network required but not shared: " + compared
                    refuse(
                        403,
                        "Not On The Target's Network",
                        "Account \(target.accountID) allows watching only from the same network, and \(label(watcher))'s phone is not on \(label(target))'s network: "
                            + compared
                    )
                }
            } else {
                networkRule.verdict = reached() ? .info : .notChecked
                networkRule.detail =
                    "Same network required; where the phones register from is known only to the running server."
            }
            rules.append(networkRule)
            // Not a rule: what the lamp shows.
            if let registeredSourceHosts {
                let registered = !registeredSourceHosts(target.number).isEmpty
                add(
                    .targetRegistered,
                    .info,
                    registered
                        ? "\(label(target)) has a registered phone."
                        : "\(label(target)) has no registered phone: the lamp shows idle, and presence shows offline."
                )
            } else {
                add(.targetRegistered, .info, "Registration is known only to the running server.")
            }
            if refusal == nil {
                summary =
                    "\(label(watcher))'s phone may watch \(label(target)): every rule passes. If the lamp is still orange, the phone's key or its credentials are wrong: see the refused attempts below."
            }
        } else {
            for name in [RuleName.sameAccount, .sameGroup, .presence, .sameNetworkOnly] {
                add(name, .notChecked, "Not reached: a line is unknown.")
            }
        }

        let pair = refusals.filter { entry in
            let watcherMatches =
                entry.watcher == watcherExtension || (watcher.map { entry.watcher == $0.number } ?? false)
            let targetMatches =
                entry.target == targetExtension || (target.map { entry.target == $0.number } ?? false)
            return entry.method == "SUBSCRIBE" && watcherMatches && targetMatches
        }
        if let latest = pair.first, refusal == nil {
            summary +=
                " The latest refused attempt (\(latest.statusCode) \(latest.reasonPhrase)) came from \(latest.source.host)."
        }
        return SubscriptionDiagnosis(
            watcherExtension: watcherExtension,
            targetExtension: targetExtension,
            isLive: registeredSourceHosts != nil,
            rules: rules,
            refusalStatus: refusal?.status,
            refusalReason: refusal?.reason,
            summary: summary,
            recentRefusals: pair
        )
    }
}
