import AdminAPI
import ArgumentParser
import BusyLampCore
import BusyLampServer
import BusyLampStore
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import SIPTransactions
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the server with the embedded store."
    )

    @OptionGroup var options: ServerOptions

    func run() async throws {
        let resolved = try options.resolve()
        try await ServerLauncher.run(resolved, seed: nil)
    }
}

/// Opens the store, loads the directory, starts the services, prints the chosen addresses
/// and `ready`, and waits for SIGTERM or SIGINT.
enum ServerLauncher {
    static func run(
        _ resolved: ServerOptions.Resolved,
        seed: Directory?,
        extraServices: (SIPServer, [SIPTransportListenerDescription], Logger) -> [any Service] = { _, _, _ in [] },
        afterStart: (StartedAddresses) -> Void = { _ in }
    ) async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = resolved.logLevel
            return handler
        }
        let logger = Logger(label: "busylamp")
        // Before any metric handle is made (the server makes its handles once, at start).
        let metricsRegistry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metricsRegistry))

        let fileImport = resolved.directoryFile.map {
            DirectoryFileImport(file: $0, dataDirectory: resolved.storeLocation.dataDirectory)
        }
        let checkedFile = try fileImport?.check()
        let store = try openStore(resolved.storeLocation)
        if let seed {
            try store.replaceDirectory(with: seed)
        }
        if let fileImport, let checkedFile {
            switch try fileImport.applyAtStart(checkedFile, to: store) {
            case .imported:
                logger.info("Directory loaded", metadata: [LogKey.file: "\(fileImport.file)"])
            case .keptStore:
                logger.info(
                    "Directory file unchanged since its last import: the stored directory (with the API's changes) is kept",
                    metadata: [LogKey.file: "\(fileImport.file)"]
                )
            }
        }
        guard let directory = try store.loadDirectory() else {
            throw OperatorError(
                message: "no directory in the store: pass --directory FILE or run `busylamp import FILE` first"
            )
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: resolved.sipThreads)
        var configuration = SIPServer.Configuration()
        configuration.overload.sheddingStartsAt = .milliseconds(resolved.overloadLagMilliseconds)
        configuration.overload.sheddingStopsAt = .milliseconds(max(1, resolved.overloadLagMilliseconds * 3 / 8))
        configuration.listenAddresses = resolved.listenAddresses
        configuration.transport.streamIdleTimeout = .seconds(Int64(resolved.tcpIdleTimeout))
        configuration.timers = SIPTimers(t1: .milliseconds(resolved.timerT1Milliseconds))
        configuration.notifier.maximumConsecutiveFailures = resolved.notifyFailureLimit
        configuration.digestPolicy.algorithms = resolved.digestAlgorithms
        configuration.maximumTransactions = resolved.maximumTransactions
        configuration.ringTimeout = .seconds(resolved.ringTimeoutSeconds)
        configuration.failedAuthentications = resolved.failedAuthentications
        configuration.transport.maximumConnectionsPerSource = resolved.tcpConnectionsPerSource
        configuration.transport.streamMessageTimeout = .seconds(Int64(resolved.tcpMessageTimeout))
        configuration.transport.maximumUnsentBytesPerConnection = resolved.tcpUnsentBytesLimit
        configuration.subscriptionLimits = resolved.subscriptionLimits
        configuration.sourceRates = resolved.sourceRates
        configuration.restartNotifiesPerSecond = resolved.restartNotifiesPerSecond
        configuration.transport.tlsCertificate = resolved.tlsCertificate
        let server = SIPServer(
            eventLoops: Array(group.makeIterator()),
            directory: directory,
            stores: SIPServer.Stores(directory: store, registrations: store, subscriptions: store, calls: store),
            configuration: configuration,
            logger: logger
        )
        let listeners: [SIPTransportListenerDescription]
        do {
            listeners = try await server.start().map {
                SIPTransportListenerDescription(
                    transport: $0.transport.rawValue,
                    host: $0.localAddress.ipAddress ?? "?",
                    port: $0.localAddress.port ?? 0
                )
            }
        } catch {
            await server.stop()
            try? await group.shutdownGracefully()
            throw OperatorError(message: "cannot bind the SIP listeners: \(error)", exitCode: 1)
        }
        let (httpBound, httpBoundContinuation) = AsyncStream.makeStream(of: String.self)
        let admin = AdminServer(
            configuration: AdminServer.Configuration(
                host: resolved.httpHost,
                port: resolved.httpPort,
                token: resolved.adminToken,
                metricsText: {
                    var bytes: [UInt8] = []
                    metricsRegistry.emit(into: &bytes)
                    return String(decoding: bytes, as: UTF8.self)
                }
            ),
            server: server,
            store: store,
            logger: logger
        ) { host, port in
            httpBoundContinuation.yield(
                SIPTransportListenerDescription(transport: "http", host: host, port: port).hostPort
            )
            httpBoundContinuation.finish()
        }

        // A ServiceGroup shuts its services down one by one in reverse order. The admin server
        // goes first (its event streams end before anything they read); the SIP server goes
        // last, so that the extra services (the demo's phones) still reach it while they stop.
        let services = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: SIPServerService(server: server))]
                    + extraServices(server, listeners, logger).map { .init(service: $0) }
                    + (fileImport.map { fileImport in
                        [
                            .init(
                                service: DirectoryReloadService(
                                    fileImport: fileImport,
                                    store: store,
                                    server: server,
                                    logger: logger
                                )
                            )
                        ]
                    } ?? [])
                    + (resolved.tlsCertificate.map { certificate in
                        [.init(service: TLSCertificateReloadService(certificate: certificate, logger: logger))]
                    } ?? [])
                    + [.init(service: admin)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await withThrowingTaskGroup(of: Void.self) { running in
            running.addTask {
                defer { httpBoundContinuation.finish() }
                try await services.run()
            }
            var bound = httpBound.makeAsyncIterator()
            guard let httpAddress = await bound.next() else {
                // The group ended before HTTP listened: its error says why.
                try await running.waitForAll()
                throw OperatorError(message: "cannot bind the HTTP listener \(resolved.httpAddress)", exitCode: 1)
            }
            // INTERFACE.md: the chosen addresses, then `ready`, so that scripts can wait for it.
            for listener in listeners { print("sip \(listener.transport) \(listener.hostPort)") }
            print("http \(httpAddress)")
            afterStart(
                StartedAddresses(sip: listeners.map(\.hostPort), http: httpAddress, adminToken: resolved.adminToken)
            )
            print("ready")
            fflush(nil)  // every open stream: stdout is a pipe under tests and scripts
            try await running.waitForAll()
        }
        try? await group.shutdownGracefully()
        try? store.close()
        logger.info("Stopped")
    }

    static func openStore(_ location: ServerOptions.StoreLocation) throws -> SQLiteStore {
        switch location {
        case .sqlite(let directory):
            do {
                return try SQLiteStore.open(dataDirectory: directory)
            } catch {
                throw OperatorError(message: "\(directory.path): cannot open the store: \(error)", exitCode: 1)
            }
        }
    }

    static func loadDirectoryFile(_ path: String) throws -> Directory {
        do {
            return try DirectoryFile.load(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw OperatorError(message: "\(error)")
        }
    }
}

/// What `busylamp serve` listens on once started, for the demo's instructions.
struct StartedAddresses {
    var sip: [String]
    var http: String
    var adminToken: String?
}

struct SIPTransportListenerDescription {
    var transport: String
    var host: String
    var port: Int
    var hostPort: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
