import ArgumentParser
import BusyLampCore
import Foundation
import Logging
import NIOCore
import SIPAuth
import SIPTransactions
import SIPTransportNIO
import Yams

/// The options `serve` and `demo` share (INTERFACE.md), merged with an optional config file.
/// The command line wins over the file, the file over the defaults.
struct ServerOptions: ParsableArguments {
    @Option(help: "A YAML config file with any of these options (snake_case keys).")
    var config: String?

    @Option(help: "A directory file (YAML) to load into the store at start.")
    var directory: String?

    @Option(help: "The data folder of the embedded store (default ./busylamp-data).")
    var data: String?

    @Option(
        help:
            "A SIP listener: udp:HOST:PORT, tcp:HOST:PORT, tls:HOST:PORT (repeatable; port 0 picks a free port; tls needs tls_certificate and tls_private_key in the config file)."
    )
    var sip: [String] = []

    @Option(help: "The admin HTTP listener HOST:PORT (default 127.0.0.1:8080).")
    var http: String?

    @Option(help: "sqlite:PATH (default, embedded) or postgres://USER@HOST:PORT/DB.")
    var store: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    @Option(
        name: .customLong("tcp-idle-timeout"),
        help: "Seconds before an idle TCP connection is closed (default 180)."
    )
    var tcpIdleTimeout: Int?

    /// The settings after merging file and command line, validated.
    struct Resolved {
        var directoryFile: String?
        var storeLocation: StoreLocation
        var listenAddresses: [SIPListenAddress]
        var httpAddress: String
        var httpHost: String
        var httpPort: Int
        /// The admin API's bearer token: `BUSYLAMP_ADMIN_TOKEN`, else `admin_token`; nil = API closed.
        var adminToken: String?
        var logLevel: Logger.Level
        var tcpIdleTimeout: Int
        /// RFC 3261 T1 in milliseconds (config file only: tests shorten every timer with it).
        var timerT1Milliseconds: Int
        /// NOTIFY timeouts in a row that end a subscription (config file only).
        var notifyFailureLimit: Int
        /// The digest challenges of a 401, in order (config file only; default MD5, then SHA-256).
        var digestAlgorithms: [DigestAlgorithm]
        /// The bound on SIP transactions kept at once (config file only).
        var maximumTransactions: Int
        /// Seconds a call rings before the caller gets 480 (config file only).
        var ringTimeoutSeconds: Int
        var sipThreads: Int
        var overloadLagMilliseconds: Int
        /// Who is locked out after failed authentications (config file only, issue 9).
        var failedAuthentications: FailedAuthenticationGuard.Settings
        /// TCP connections one IP address may hold open at once (config file only).
        var tcpConnectionsPerSource: Int
        /// Seconds a begun message may take to arrive whole over TCP (config file only).
        var tcpMessageTimeout: Int
        /// Bytes a TCP peer may leave unread before it is cut off (config file only).
        var tcpUnsentBytesLimit: Int
        /// Live subscriptions per watched line and per source address (config file only).
        var subscriptionLimits: SubscriptionAdmission.Limits
        /// Requests per second and at once from one source address (config file only).
        var sourceRates: SourceRateLimiter<SourceIPAddress>.Settings
        /// NOTIFYs per second to restored subscriptions after a start (config file only).
        var restartNotifiesPerSecond: Int
        /// What `tls:` listeners present (config file only); nil when there is no TLS listener.
        var tlsCertificate: SIPTLSCertificate?
    }

    enum StoreLocation {
        case sqlite(directory: URL)

        /// The data folder (`--data`), where the store and its companions live.
        var dataDirectory: URL {
            switch self {
            case .sqlite(let directory): return directory
            }
        }
    }

    /// Keys a config file may hold: the options' long names in snake_case.
    static let configKeys: Set<String> = [
        "directory", "data", "sip", "http", "store", "log_level", "tcp_idle_timeout", "admin_token",
        "sip_timer_t1_ms", "notify_failure_limit", "digest_algorithms", "max_transactions",
        "ring_timeout", "sip_threads", "overload_lag_ms",
        "auth_failure_limit", "auth_failure_window", "auth_lockout", "auth_failing_users_per_address",
        "auth_lockout_answer",
        "tcp_connections_per_source", "subscriptions_per_line", "subscriptions_per_source",
        "tcp_message_timeout", "tcp_unsent_bytes_limit", "requests_per_source", "request_burst_per_source",
        "tls_certificate", "tls_private_key", "restart_notifies_per_second",
    ]

    func resolve(defaultData: String = "./busylamp-data") throws -> Resolved {
        var file: [String: Node] = [:]
        if let config {
            file = try Self.loadConfig(config)
        }
        func string(_ key: String) throws -> String? {
            guard let node = file[key] else { return nil }
            guard let value = node.string else {
                throw OperatorError(
                    message: "\(config!):\(node.mark.map { String($0.line) } ?? "?"): \(key) must be a string"
                )
            }
            return value
        }

        let sipValues: [String]
        if !sip.isEmpty {
            sipValues = sip
        } else if let node = file["sip"] {
            guard let sequence = node.sequence else {
                throw OperatorError(message: "\(config!):\(node.mark?.line ?? 0): sip must be a list")
            }
            sipValues = sequence.compactMap(\.string)
        } else {
            sipValues = []
        }
        let listenAddresses: [SIPListenAddress]
        do {
            listenAddresses =
                sipValues.isEmpty ? SIPListenAddress.defaults : try sipValues.map(SIPListenAddress.init(parsing:))
        } catch {
            throw OperatorError(message: "\(error)")
        }
        let tlsCertificate = try resolveTLSCertificate(for: listenAddresses, file: file)

        let http = try http ?? string("http") ?? "127.0.0.1:8080"
        guard let colon = http.lastIndex(of: ":"), let port = Int(http[http.index(after: colon)...]),
            (0...65535).contains(port), colon != http.startIndex
        else { throw OperatorError(message: "--http \(http): expected HOST:PORT") }
        var httpHost = String(http[..<colon])
        if httpHost.hasPrefix("["), httpHost.hasSuffix("]") { httpHost = String(httpHost.dropFirst().dropLast()) }
        let environmentToken = ProcessInfo.processInfo.environment["BUSYLAMP_ADMIN_TOKEN"].flatMap {
            $0.isEmpty ? nil : $0
        }
        let adminToken = try environmentToken ?? string("admin_token")
        if let adminToken, adminToken.count < 16 {
            throw OperatorError(message: "admin token: use at least 16 characters")
        }

        let levelText = try logLevel ?? string("log_level") ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw OperatorError(
                message: "--log-level \(levelText): expected trace, debug, info, notice, warning, error or critical"
            )
        }

        func positiveInteger(_ key: String, default value: Int) throws -> Int {
            guard let node = file[key] else { return value }
            guard let number = node.int, number > 0 else {
                throw OperatorError(
                    message: "\(config!):\(node.mark?.line ?? 0): \(key) must be a whole number above 0"
                )
            }
            return number
        }
        let tcpIdleTimeout = try tcpIdleTimeout ?? positiveInteger("tcp_idle_timeout", default: 180)
        guard tcpIdleTimeout > 0 else { throw OperatorError(message: "--tcp-idle-timeout must be above 0") }

        let timerT1Milliseconds = try positiveInteger("sip_timer_t1_ms", default: 500)
        let notifyFailureLimit = try positiveInteger("notify_failure_limit", default: 3)
        let maximumTransactions = try positiveInteger(
            "max_transactions",
            default: TransactionLayer.defaultMaximumTransactionCount
        )
        let ringTimeoutSeconds = try positiveInteger("ring_timeout", default: 60)
        // INTERFACE.md: event loops for SIP, default one per core (at most 64: shard marks and
        // connection IDs have room for 256).
        let sipThreads = min(64, try positiveInteger("sip_threads", default: System.coreCount))
        // A shard whose event loop runs this late (smoothed) answers new work 503 (OverloadGuard).
        let overloadLagMilliseconds = try positiveInteger("overload_lag_ms", default: 120)
        // Password guessing (FailedAuthenticationGuard): per address and user, and per address
        // for a rotation of user names.
        var failedAuthentications = FailedAuthenticationGuard.Settings()
        failedAuthentications.failuresBeforeLockout = try positiveInteger(
            "auth_failure_limit",
            default: failedAuthentications.failuresBeforeLockout
        )
        failedAuthentications.window = TimeInterval(
            try positiveInteger("auth_failure_window", default: Int(failedAuthentications.window))
        )
        failedAuthentications.lockoutDuration = TimeInterval(
            try positiveInteger("auth_lockout", default: Int(failedAuthentications.lockoutDuration))
        )
        failedAuthentications.failingUsersPerAddress = try positiveInteger(
            "auth_failing_users_per_address",
            default: failedAuthentications.failingUsersPerAddress
        )
        if let node = file["auth_lockout_answer"] {
            // YAML reads a bare 403 as a number: take its text either way.
            guard let answer = node.string.flatMap(FailedAuthenticationGuard.LockoutAnswer.init(rawValue:)) else {
                throw OperatorError(
                    message: "\(config!):\(node.mark?.line ?? 0): auth_lockout_answer must be 403 or silence"
                )
            }
            failedAuthentications.lockoutAnswer = answer
        }
        var subscriptionLimits = SubscriptionAdmission.Limits()
        subscriptionLimits.watchersPerLine = try positiveInteger(
            "subscriptions_per_line",
            default: subscriptionLimits.watchersPerLine
        )
        subscriptionLimits.subscriptionsPerSource = try positiveInteger(
            "subscriptions_per_source",
            default: subscriptionLimits.subscriptionsPerSource
        )
        var sourceRates = SourceRateLimiter<SourceIPAddress>.Settings()
        sourceRates.requestsPerSecond = try positiveInteger(
            "requests_per_source",
            default: sourceRates.requestsPerSecond
        )
        sourceRates.burst = try positiveInteger("request_burst_per_source", default: sourceRates.burst)
        let restartNotifiesPerSecond = try positiveInteger(
            "restart_notifies_per_second",
            default: 25_000
        )
        let transportDefaults = SIPTransport.Configuration()
        let tcpConnectionsPerSource = try positiveInteger(
            "tcp_connections_per_source",
            default: transportDefaults.maximumConnectionsPerSource
        )
        let tcpMessageTimeout = try positiveInteger(
            "tcp_message_timeout",
            default: Int(transportDefaults.streamMessageTimeout.nanoseconds / 1_000_000_000)
        )
        let tcpUnsentBytesLimit = try positiveInteger(
            "tcp_unsent_bytes_limit",
            default: transportDefaults.maximumUnsentBytesPerConnection
        )
        // Most phones take the first challenge; some UAs (libre 1.x in baresip 1.0) give up when
        // any challenge names an algorithm they do not know: the list and its order are a setting.
        var digestAlgorithms = DigestPolicy.default.algorithms
        if let node = file["digest_algorithms"] {
            let names = node.sequence?.compactMap(\.string) ?? []
            let algorithms = names.compactMap(DigestAlgorithm.init(parameterValue:))
            guard !algorithms.isEmpty, algorithms.count == names.count,
                Set(algorithms).count == algorithms.count
            else {
                throw OperatorError(
                    message:
                        "\(config!):\(node.mark?.line ?? 0): digest_algorithms must list MD5 and/or SHA-256, each once"
                )
            }
            digestAlgorithms = algorithms
        }

        let data = try data ?? string("data")
        let storeText = try store ?? string("store")
        let storeLocation: StoreLocation
        switch storeText {
        case nil:
            storeLocation = .sqlite(directory: URL(fileURLWithPath: data ?? defaultData))
        case let text? where text.hasPrefix("sqlite:"):
            guard data == nil else { throw OperatorError(message: "--data and --store are exclusive: give one") }
            let path = String(text.dropFirst("sqlite:".count))
            guard !path.isEmpty else { throw OperatorError(message: "--store \(text): expected sqlite:PATH") }
            storeLocation = .sqlite(directory: URL(fileURLWithPath: path))
        case let text? where text.hasPrefix("postgres://"):
            throw OperatorError(message: "--store \(text): PostgreSQL cluster mode is not available yet")
        case let text?:
            throw OperatorError(message: "--store \(text): expected sqlite:PATH or postgres://USER@HOST:PORT/DB")
        }

        return Resolved(
            directoryFile: try directory ?? string("directory"),
            storeLocation: storeLocation,
            listenAddresses: listenAddresses,
            httpAddress: http,
            httpHost: httpHost,
            httpPort: port,
            adminToken: adminToken,
            logLevel: level,
            tcpIdleTimeout: tcpIdleTimeout,
            timerT1Milliseconds: timerT1Milliseconds,
            notifyFailureLimit: notifyFailureLimit,
            digestAlgorithms: digestAlgorithms,
            maximumTransactions: maximumTransactions,
            ringTimeoutSeconds: ringTimeoutSeconds,
            sipThreads: sipThreads,
            overloadLagMilliseconds: overloadLagMilliseconds,
            failedAuthentications: failedAuthentications,
            tcpConnectionsPerSource: tcpConnectionsPerSource,
            tcpMessageTimeout: tcpMessageTimeout,
            tcpUnsentBytesLimit: tcpUnsentBytesLimit,
            subscriptionLimits: subscriptionLimits,
            sourceRates: sourceRates,
            restartNotifiesPerSecond: restartNotifiesPerSecond,
            tlsCertificate: tlsCertificate
        )
    }

    /// The certificate of the `tls:` listeners (INTERFACE.md: `tls_certificate` and
    /// `tls_private_key`, PEM files), read now so that a missing or bad file stops the start
    /// with its name (exit code 2) rather than when the listener binds.
    private func resolveTLSCertificate(
        for listenAddresses: [SIPListenAddress],
        file: [String: Node]
    ) throws -> SIPTLSCertificate? {
        guard let listener = listenAddresses.first(where: { $0.transport == .tls }) else { return nil }
        func path(_ key: String, _ what: String) throws -> String {
            guard let node = file[key] else {
                throw OperatorError(
                    message: "--sip \(listener): TLS needs \(key) (\(what), a PEM file) in the config file"
                )
            }
            guard let value = node.string, !value.isEmpty else {
                throw OperatorError(message: "\(config!):\(node.mark?.line ?? 0): \(key) must be a file path")
            }
            return value
        }
        let certificateChainPath = try path("tls_certificate", "the certificate chain")
        let privateKeyPath = try path("tls_private_key", "the private key")
        do {
            return try SIPTLSCertificate(certificateChainPath: certificateChainPath, privateKeyPath: privateKeyPath)
        } catch {
            throw OperatorError(message: "\(error)")
        }
    }

    static func loadConfig(_ path: String) throws -> [String: Node] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw OperatorError(message: "\(path): cannot read the config file")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw OperatorError(message: "\(path): not valid YAML: \(error)")
        }
        guard let root else { return [:] }
        guard let mapping = root.mapping else {
            throw OperatorError(message: "\(path):\(root.mark?.line ?? 1): expected a mapping of options")
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string, configKeys.contains(key) else {
                throw OperatorError(
                    message: "\(path):\(keyNode.mark?.line ?? 0): unknown key \"\(keyNode.string ?? "?")\""
                )
            }
            result[key] = value
        }
        return result
    }
}
