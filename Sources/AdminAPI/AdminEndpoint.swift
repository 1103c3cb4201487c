import HTTPTypes

/// Every route of the HTTP server, as data: the router registers exactly these, and a test
/// checks that `/openapi.json` documents exactly these (and nothing else).
enum AdminEndpoint: String, CaseIterable, Sendable {
    case listAccounts, createAccount, getAccount, updateAccount, deleteAccount
    case listLines, createLine, getLine, updateLine, deleteLine
    case lineState, accountLamps, subscriptions, diagnose, refusals, events
    case provision
    case openAPI, health, metrics
    case console, consoleStyle, consoleScript

    var method: HTTPRequest.Method {
        switch self {
        case .createAccount, .createLine: return .post
        case .updateAccount, .updateLine: return .patch
        case .deleteAccount, .deleteLine: return .delete
        default: return .get
        }
    }

    /// The path as the router and OpenAPI write it.
    var path: String {
        switch self {
        case .listAccounts, .createAccount: return "/api/v1/accounts"
        case .getAccount, .updateAccount, .deleteAccount: return "/api/v1/accounts/{id}"
        case .listLines, .createLine: return "/api/v1/accounts/{id}/lines"
        case .getLine, .updateLine, .deleteLine: return "/api/v1/accounts/{id}/lines/{extension}"
        case .lineState: return "/api/v1/accounts/{id}/lines/{extension}/state"
        case .accountLamps: return "/api/v1/accounts/{id}/lamps"
        case .subscriptions: return "/api/v1/accounts/{id}/subscriptions"
        case .diagnose: return "/api/v1/accounts/{id}/diagnose"
        case .refusals: return "/api/v1/accounts/{id}/refusals"
        case .events: return "/api/v1/accounts/{id}/events"
        case .provision: return "/provision/{vendor}/{account}/{extension}"
        case .openAPI: return "/openapi.json"
        case .health: return "/healthz"
        case .metrics: return "/metrics"
        case .console: return "/"
        case .consoleStyle: return "/console.css"
        case .consoleScript: return "/console.js"
        }
    }

    /// INTERFACE.md: everything under `/api` and the provisioning files need the token; the
    /// document, health, metrics and the console page do not (the page asks for the token).
    var needsToken: Bool {
        path.hasPrefix("/api/") || self == .provision
    }

    /// The routes as `METHOD PATH` lines, for the test against the OpenAPI document.
    static var routeList: [String] { allCases.map { "\($0.method.rawValue) \($0.path)" }.sorted() }
}
