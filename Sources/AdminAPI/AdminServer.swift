import BusyLampCore
import BusyLampServer
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The request context: Hummingbird's core storage and the peer's address (for the
/// bad-token throttle and logs).
struct AdminRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    var remoteHost: String { remoteAddress?.ipAddress ?? "unknown" }
}

/// The admin HTTP server (INTERFACE.md): the API, Server-Sent Events, provisioning, the
/// console, `/openapi.json`, `/healthz` and `/metrics`, in the same process as the SIP server
/// and reading it through its query seam (``SIPServer/liveState(accountID:)``) and its feed of
/// line changes (``SIPServer/lineStateFeed``): no second copy of the directory, no polling.
///
/// A swift-service-lifecycle `Service`: run it in the same `ServiceGroup` as the SIP server.
public struct AdminServer: Service {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// `nil`: every `/api` request gets 503 (never open).
        public var token: String?
        /// Prometheus text of every metric (chosen by the executable; the API does not know
        /// the metrics backend).
        public var metricsText: @Sendable () -> String
        /// How often an idle event stream sends a heartbeat comment.
        public var heartbeatInterval: Duration = .seconds(15)

        public init(host: String, port: Int, token: String?, metricsText: @escaping @Sendable () -> String) {
            self.host = host
            self.port = port
            self.token = token
            self.metricsText = metricsText
        }
    }

    let configuration: Configuration
    let server: SIPServer
    let store: any DirectoryStore
    let editor: DirectoryEditor
    let tokenGuard: BearerTokenGuard
    let logger: Logger
    /// Called with the bound address once the server listens (`http 127.0.0.1:PORT`).
    let onBound: @Sendable (String, Int) async -> Void

    public init(
        configuration: Configuration,
        server: SIPServer,
        store: any DirectoryStore,
        logger: Logger,
        onBound: @escaping @Sendable (String, Int) async -> Void
    ) {
        self.configuration = configuration
        self.server = server
        self.store = store
        self.editor = DirectoryEditor(store: store, server: server)
        self.tokenGuard = BearerTokenGuard(token: configuration.token)
        self.logger = logger
        self.onBound = onBound
    }

    public func run() async throws {
        if !tokenGuard.isConfigured {
            logger.warning(
                "No admin token configured (BUSYLAMP_ADMIN_TOKEN or admin_token): every /api request gets 503"
            )
        }
        let onBound = self.onBound
        let application = Application(
            router: makeRouter(),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "BusyLamp"
            ),
            onServerRunning: { channel in
                let address = channel.localAddress
                await onBound(address?.ipAddress ?? "?", address?.port ?? 0)
            },
            logger: logger
        )
        // `run`, not `runService`: the latter installs its own SIGTERM handler and ends the
        // HTTP server by itself, which the process's ServiceGroup, racing it to the same
        // signal, sometimes saw as this service finishing unexpectedly (exit status 1).
        try await application.run()
    }

    func makeRouter() -> Router<AdminRequestContext> {
        let router = Router(context: AdminRequestContext.self)
        router.add(middleware: JSONErrorMiddleware())
        for endpoint in AdminEndpoint.allCases {
            router.on(RouterPath(endpoint.path), method: endpoint.method) { request, context in
                if endpoint.needsToken { try await authorize(request, context: context, endpoint: endpoint) }
                return try await respond(to: endpoint, request: request, context: context)
            }
        }
        return router
    }

    /// One switch: every endpoint's handler (exhaustive, so no route is left unhandled).
    func respond(to endpoint: AdminEndpoint, request: Request, context: AdminRequestContext) async throws -> Response {
        switch endpoint {
        case .listAccounts: return try await listAccounts()
        case .createAccount: return try await createAccount(request)
        case .getAccount: return try await getAccount(context.parameters.require("id"))
        case .updateAccount: return try await updateAccount(context.parameters.require("id"), request)
        case .deleteAccount: return try await deleteAccount(context.parameters.require("id"))
        case .listLines: return try await listLines(context.parameters.require("id"))
        case .createLine: return try await createLine(context.parameters.require("id"), request)
        case .getLine:
            return try await getLine(context.parameters.require("id"), context.parameters.require("extension"))
        case .updateLine:
            return try await updateLine(
                context.parameters.require("id"),
                context.parameters.require("extension"),
                request
            )
        case .deleteLine:
            return try await deleteLine(context.parameters.require("id"), context.parameters.require("extension"))
        case .lineState:
            return try await lineState(context.parameters.require("id"), context.parameters.require("extension"))
        case .accountLamps: return try await accountLamps(context.parameters.require("id"))
        case .subscriptions: return try await subscriptions(context.parameters.require("id"), request)
        case .diagnose: return try await diagnose(context.parameters.require("id"), request)
        case .refusals: return try await refusals(context.parameters.require("id"))
        case .events: return try await events(context.parameters.require("id"), request)
        case .provision:
            return try await provision(
                vendor: context.parameters.require("vendor"),
                accountID: context.parameters.require("account"),
                extensionNumber: context.parameters.require("extension"),
                request: request
            )
        case .openAPI: return Self.asset(PackageResources.openapi_json, type: "application/json; charset=utf-8")
        case .health: return try await health()
        case .metrics:
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: configuration.metricsText()))
            )
        case .console: return Self.asset(PackageResources.index_html, type: "text/html; charset=utf-8")
        case .consoleStyle: return Self.asset(PackageResources.console_css, type: "text/css; charset=utf-8")
        case .consoleScript: return Self.asset(PackageResources.console_js, type: "text/javascript; charset=utf-8")
        }
    }

    // MARK: The token

    private func authorize(_ request: Request, context: AdminRequestContext, endpoint: AdminEndpoint) async throws {
        var presented = BearerTokenGuard.bearerToken(fromAuthorization: request.headers[.authorization])
        // A browser's EventSource cannot send headers: the event stream alone takes the token
        // as a query parameter (docs/admin-api.md).
        if presented == nil, endpoint == .events, let token = request.uri.queryParameters.get("access_token") {
            presented = token
        }
        switch tokenGuard.check(presented: presented, from: context.remoteHost) {
        case .allowed:
            return
        case .noTokenConfigured:
            throw APIError(
                .serviceUnavailable,
                "no_token_configured",
                "no admin token is configured: set BUSYLAMP_ADMIN_TOKEN or admin_token and restart"
            )
        case .wrongToken(let slowDown):
            if slowDown { try? await Task.sleep(for: BearerTokenGuard.penalty) }
            var error = APIError(
                .unauthorized,
                "unauthorized",
                presented == nil ? "send Authorization: Bearer TOKEN" : "the token is wrong"
            )
            error.headers[.wwwAuthenticate] = "Bearer realm=\"busylamp\""
            throw error
        case .locked(let retryAfter):
            var error = APIError(
                .tooManyRequests,
                "too_many_attempts",
                "too many wrong tokens from this address; try again in \(retryAfter) s"
            )
            error.headers[.retryAfter] = String(retryAfter)
            throw error
        }
    }

    // MARK: Assets

    static func asset(_ bytes: [UInt8], type: String) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: type, .cacheControl: "no-cache"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }
}

extension AdminServer: CustomStringConvertible {
    /// What logs show of the service (ServiceLifecycle prints it): never the token.
    public var description: String { "AdminServer(http \(configuration.host):\(configuration.port))" }
}
