import SIPCore

/// What the server says it can do in OPTIONS answers and 405/501/420 responses (RFC 3261
/// §11.2, §20.5, §20.37). It lists only what is served today: each later layer adds to it.
public struct ServerCapabilities: Sendable, Hashable {
    /// Methods we answer with something other than 405.
    public var allowedMethods: [SIPMethod]
    /// Body types we accept (`Accept`).
    public var acceptedContentTypes: [String]
    /// Event packages (`Allow-Events`, RFC 6665 §8.2.2).
    public var eventPackages: [String]
    /// Option tags we support (`Supported`, and the ones a `Require` may name).
    public var supportedExtensions: [String]

    public init(
        allowedMethods: [SIPMethod],
        acceptedContentTypes: [String],
        eventPackages: [String],
        supportedExtensions: [String]
    ) {
        self.allowedMethods = allowedMethods
        self.acceptedContentTypes = acceptedContentTypes
        self.eventPackages = eventPackages
        self.supportedExtensions = supportedExtensions
    }

    /// The registrar of this release: REGISTER and OPTIONS. SUBSCRIBE, NOTIFY and calls join
    /// with the subscription and call layers.
    public static let registrar = ServerCapabilities(
        allowedMethods: [.options, .register],
        acceptedContentTypes: [],
        eventPackages: [],
        supportedExtensions: []
    )

    /// The BLF server: REGISTER, SUBSCRIBE for `dialog` and `presence`, OPTIONS. INVITE and the
    /// other call methods join with the call layer.
    public static let blf = ServerCapabilities(
        allowedMethods: [.options, .register, .subscribe],
        acceptedContentTypes: [],
        eventPackages: EventPackage.allCases.map(\.rawValue),
        supportedExtensions: []
    )

    /// The BLF server that carries its lines' calls (issue 4): the call methods a B2BUA relays.
    public static let blfAndCalls = ServerCapabilities(
        allowedMethods: [.invite, .ack, .cancel, .bye, .options, .register, .subscribe, .update, .info, .prack],
        acceptedContentTypes: ["application/sdp"],
        eventPackages: EventPackage.allCases.map(\.rawValue),
        supportedExtensions: ["replaces"]
    )

    /// Adds Allow, Accept, Allow-Events and Supported to `headers`. Accept and Supported may be
    /// empty (RFC 3261 §20.1: an empty Accept means no body is accepted); Allow-Events needs at
    /// least one package, so it is left out while there is none.
    public func describe(into headers: inout SIPHeaders) {
        headers.add(.allow, allowedMethods.map(\.rawValue).joined(separator: ", "))
        headers.add(.accept, acceptedContentTypes.joined(separator: ", "))
        if !eventPackages.isEmpty { headers.add(.allowEvents, eventPackages.joined(separator: ", ")) }
        headers.add(.supported, supportedExtensions.joined(separator: ", "))
    }

    /// The option tags of `request`'s Require header that we do not support (RFC 3261 §8.2.2.3:
    /// answer 420 with them in Unsupported).
    public func unsupportedRequirements(of request: SIPRequest) -> [String] {
        request.headers.listElements(.require).filter { tag in
            !supportedExtensions.contains { $0.caseInsensitiveEquals(tag) }
        }
    }
}
