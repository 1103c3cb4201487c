import SIPCore

/// Identifies a dialog at one of its ends (RFC 3261 §12: "A dialog is identified at each UA
/// with a dialog ID, which consists of a Call-ID value, a local tag and a remote tag").
public struct DialogID: Hashable, Sendable, CustomStringConvertible {
    public var callID: String
    public var localTag: String
    /// `nil` for an RFC 2543 peer that sent no tag.
    public var remoteTag: String?

    public init(callID: String, localTag: String, remoteTag: String?) {
        self.callID = callID
        self.localTag = localTag
        self.remoteTag = remoteTag
    }

    /// The dialog an incoming in-dialog request belongs to, at the side that receives it:
    /// local tag = To tag, remote tag = From tag (RFC 3261 §12.2.2). `nil` without a To tag
    /// (then the request is outside any dialog).
    public init?(incoming request: SIPRequest) {
        guard let callID = request.callID, let localTag = request.to?.tag else { return nil }
        self.init(callID: callID, localTag: localTag, remoteTag: request.from?.tag)
    }

    /// The dialog a response to our request belongs to: local tag = From tag, remote tag = To tag.
    public init?(incoming response: SIPResponse) {
        guard let callID = response.callID, let localTag = response.from?.tag else { return nil }
        self.init(callID: callID, localTag: localTag, remoteTag: response.to?.tag)
    }

    public var description: String { "\(callID);local=\(localTag);remote=\(remoteTag ?? "-")" }
}

/// The state of one dialog (RFC 3261 §12) as a value: what is needed to send requests within it
/// and to check the requests that arrive in it.
///
/// A dialog promises: requests it builds carry its Call-ID, its tags, a local CSeq number that
/// grows by one per request (ACK excepted) and the route set, Request-URI and Route headers of
/// RFC 3261 §12.2.1.1; `receivedRequest(_:)` refuses a request whose CSeq is lower than the
/// last one seen (§12.2.2). It is created on either side: `init(uasRequest:response:...)` when
/// we answered a dialog-creating request (INVITE, SUBSCRIBE), `init(uacRequest:response:...)`
/// when a response to ours created it.
public struct Dialog: Sendable, Hashable {
    public enum State: Sendable, Hashable {
        /// Created by a provisional response with a To tag.
        case early
        /// Created or confirmed by a 2xx (or, for subscriptions, by the NOTIFY or 2xx).
        case confirmed
    }

    public var state: State
    public let callID: String
    public let localTag: String
    public private(set) var remoteTag: String?
    /// RFC 3261 §12.1.1: "The local sequence number MUST be empty" at a UAS until it sends a
    /// request; `makeRequest(method:)` then starts at `initialLocalSequenceNumber`.
    public private(set) var localSequenceNumber: UInt32?
    public private(set) var remoteSequenceNumber: UInt32?
    /// Our address in the dialog (From of our requests), without its tag, as text that parses
    /// back to an equal value (`NameAddress.losslessDescription`). The addresses and the remote
    /// target are kept as text and parsed when asked for: a subscription keeps its dialog for
    /// its whole life, and the parsed forms were about 400 bytes of it inline, besides their
    /// strings (issue 10); the requests built in the dialog need only the text.
    public let localAddressText: String
    /// The peer's address (To of our requests), without its tag, as text (see `localAddressText`).
    public let remoteAddressText: String
    /// Where requests in the dialog go (the peer's Contact), updated by target refreshes, as text.
    public private(set) var remoteTargetText: String
    /// The Record-Route values in the order our requests must visit them.
    public private(set) var routeSet: [NameAddress]
    /// RFC 3261 §12.1.1: the dialog-creating request was received over TLS with a SIPS
    /// Request-URI (or, at the UAC, sent so).
    public let isSecure: Bool

    /// The first CSeq number of our requests in a dialog we did not start (RFC 3261 §8.1.1.5:
    /// any value below 2**31 will do).
    public static let initialLocalSequenceNumber: UInt32 = 1
    /// RFC 3261 §8.1.1.5: "The sequence number value MUST be expressible as a 32-bit unsigned
    /// integer and MUST be less than 2**31."
    public static let maximumSequenceNumber: UInt32 = (1 << 31) - 1

    /// RFC 3261 §12.2.2, RFC 3311, RFC 3515, RFC 6665 §4.1.2.2 / §4.2.1: the requests that may
    /// replace the remote target with their Contact.
    public static let targetRefreshMethods: Set<SIPMethod> = [.invite, .update, .subscribe, .notify, .refer]

    public var id: DialogID { DialogID(callID: callID, localTag: localTag, remoteTag: remoteTag) }
    /// Our address in the dialog (From of our requests), without its tag.
    public var localAddress: NameAddress { Dialog.address(localAddressText) }
    /// The peer's address (To of our requests), without its tag.
    public var remoteAddress: NameAddress { Dialog.address(remoteAddressText) }
    /// Where requests in the dialog go (the peer's Contact), updated by target refreshes.
    public var remoteTarget: SIPURI { Dialog.uri(remoteTargetText) }
    public var localURI: SIPURI { localAddress.uri }
    public var remoteURI: SIPURI { remoteAddress.uri }

    /// The dialog a UAS creates when it answers `request` with `response` (RFC 3261 §12.1.1).
    ///
    /// `nil` when the response cannot create a dialog (not 101–299, or without a To tag) or the
    /// request lacks what a dialog needs (Call-ID, From, To, CSeq, a Contact URI).
    public init?(uasRequest request: SIPRequest, response: SIPResponse, receivedOverTLS: Bool) {
        guard (101..<300).contains(response.statusCode), let localTag = response.to?.tag,
            let callID = request.callID, let from = request.from, let to = request.to, let cseq = request.cseq,
            let remoteTarget = Dialog.contactURI(request.headers)
        else { return nil }
        guard let routeSet = Dialog.routes(request.headers) else { return nil }
        // > The route set MUST be set to the list of URIs in the Record-Route header field from
        // > the request, taken in order and preserving all URI parameters. [...] The remote
        // > target MUST be set to the URI from the Contact header field of the request.
        // > The remote sequence number MUST be set to the value of the sequence number in the
        // > CSeq header field of the request. The local sequence number MUST be empty. The
        // > call identifier component of the dialog ID MUST be set to the value of the Call-ID
        // > in the request. The local tag component of the dialog ID MUST be set to the tag in
        // > the To field in the response to the request (which always includes a tag), and the
        // > remote tag component of the dialog ID MUST be set to the tag from the From field in
        // > the request. [...] The remote URI MUST be set to the URI in the From field, and the
        // > local URI MUST be set to the URI in the To field.
        self.state = response.isSuccess ? .confirmed : .early
        self.callID = callID
        self.localTag = localTag
        self.remoteTag = from.tag
        self.localSequenceNumber = nil
        self.remoteSequenceNumber = cseq.number
        self.localAddressText = Dialog.withoutTag(to).losslessDescription
        self.remoteAddressText = Dialog.withoutTag(from).losslessDescription
        self.remoteTargetText = remoteTarget.description
        self.routeSet = routeSet
        // > If the request arrived over TLS, and the Request-URI contained a SIPS URI, the
        // > "secure" flag is set to TRUE.
        self.isSecure = receivedOverTLS && request.uri.scheme == "sips"
    }

    /// A dialog rebuilt from what a store kept of it (a subscription after a restart): every
    /// field as it was, so that the local CSeq goes on from where it stopped.
    public init(
        restoring state: State,
        callID: String,
        localTag: String,
        remoteTag: String?,
        localSequenceNumber: UInt32?,
        remoteSequenceNumber: UInt32?,
        localAddress: NameAddress,
        remoteAddress: NameAddress,
        remoteTarget: SIPURI,
        routeSet: [NameAddress],
        isSecure: Bool
    ) {
        self.state = state
        self.callID = callID
        self.localTag = localTag
        self.remoteTag = remoteTag
        self.localSequenceNumber = localSequenceNumber
        self.remoteSequenceNumber = remoteSequenceNumber
        self.localAddressText = localAddress.losslessDescription
        self.remoteAddressText = remoteAddress.losslessDescription
        self.remoteTargetText = remoteTarget.description
        self.routeSet = routeSet
        self.isSecure = isSecure
    }

    /// The dialog a UAC creates from `response` to its `request` (RFC 3261 §12.1.2).
    ///
    /// `nil` when the response cannot create a dialog (not 101–299, or without a To tag) or the
    /// messages lack what a dialog needs (our From tag, Call-ID, CSeq, the peer's Contact URI).
    public init?(uacRequest request: SIPRequest, response: SIPResponse, sentOverTLS: Bool) {
        guard (101..<300).contains(response.statusCode), let remoteTag = response.to?.tag,
            let callID = request.callID, let from = request.from, let localTag = from.tag, let to = request.to,
            let cseq = request.cseq, let remoteTarget = Dialog.contactURI(response.headers),
            let recordRoutes = Dialog.routes(response.headers)
        else { return nil }
        // > The route set MUST be set to the list of URIs in the Record-Route header field from
        // > the response, taken in reverse order and preserving all URI parameters. [...] The
        // > remote target MUST be set to the URI from the Contact header field of the response.
        // > The local sequence number MUST be set to the value of the sequence number in the
        // > CSeq header field of the request. The remote sequence number MUST be empty [...]
        // > The local tag component of the dialog ID MUST be set to the tag in the From field in
        // > the request, and the remote tag component of the dialog ID MUST be set to the tag in
        // > the To field of the response.
        self.state = response.isSuccess ? .confirmed : .early
        self.callID = callID
        self.localTag = localTag
        self.remoteTag = remoteTag
        self.localSequenceNumber = cseq.number
        self.remoteSequenceNumber = nil
        self.localAddressText = Dialog.withoutTag(from).losslessDescription
        self.remoteAddressText = Dialog.withoutTag(to).losslessDescription
        self.remoteTargetText = remoteTarget.description
        self.routeSet = recordRoutes.reversed()
        // > If the request was sent over TLS, and the Request-URI contained a SIPS URI, the
        // > "secure" flag is set to TRUE.
        self.isSecure = sentOverTLS && request.uri.scheme == "sips"
    }

    /// A later response to the dialog-creating request arrived at the UAC (a 2xx after 1xx).
    ///
    /// RFC 3261 §12.1.2 and §13.2.2.4: a 2xx confirms an early dialog and its Record-Route
    /// (reversed) becomes the route set; its Contact, when present, is the remote target.
    public mutating func receivedResponse(_ response: SIPResponse) {
        guard (101..<300).contains(response.statusCode) else { return }
        if let contact = Dialog.contactURI(response.headers) { remoteTargetText = contact.description }
        if state == .early, response.isSuccess {
            state = .confirmed
            if let routes = Dialog.routes(response.headers) { routeSet = routes.reversed() }
        }
    }

    /// What to do with a request received in this dialog (RFC 3261 §12.2.2).
    public enum IncomingRequestCheck: Sendable, Hashable {
        /// Process it.
        case accept
        /// > If the remote sequence number was not empty, but the sequence number of the
        /// > request is lower than the remote sequence number, the request is out of order and
        /// > MUST be rejected with a 500 (Server Internal Error) response.
        case rejectOutOfOrder
        /// No CSeq: answer 400.
        case rejectMalformed
    }

    /// Checks the CSeq of a request received in this dialog and records it.
    ///
    /// > If the remote sequence number is empty, it MUST be set to the value of the sequence
    /// > number in the CSeq header field value in the request. If the remote sequence number
    /// > was not empty, but the sequence number of the request is lower than the remote
    /// > sequence number, the request is out of order and MUST be rejected with a 500 [...]
    /// > If the remote sequence number was not empty, and the sequence number of the request is
    /// > greater than the remote sequence number, the request is in order.
    ///
    /// ACK and CANCEL carry the number of the request they concern, so an equal number passes.
    public mutating func receivedRequest(_ request: SIPRequest) -> IncomingRequestCheck {
        guard let cseq = request.cseq else { return .rejectMalformed }
        if let remote = remoteSequenceNumber, cseq.number < remote { return .rejectOutOfOrder }
        remoteSequenceNumber = cseq.number
        return .accept
    }

    /// Replaces the remote target with the Contact of an accepted target refresh request
    /// (RFC 3261 §12.2.2: "When a UAS receives a target refresh request, it MUST replace the
    /// dialog's remote target URI with the URI from the Contact header field in that request,
    /// if present"). Call it once the request is accepted (RFC 6141 for re-INVITE).
    public mutating func refreshRemoteTarget(from request: SIPRequest) {
        guard Dialog.targetRefreshMethods.contains(request.method), let contact = Dialog.contactURI(request.headers)
        else { return }
        remoteTargetText = contact.description
    }

    /// Moves the local CSeq number to `number` (at most `maximumSequenceNumber`): a dialog
    /// restored after a crash jumps past any number it may have used since it was last written.
    public mutating func jumpLocalSequenceNumber(to number: UInt32) {
        localSequenceNumber = min(number, Dialog.maximumSequenceNumber)
    }

    /// Builds a request within the dialog (RFC 3261 §12.2.1.1), without a Via (the transport
    /// adds its own, with a fresh branch) and without Contact (a target refresh adds ours).
    ///
    /// The local CSeq number grows by one, except for ACK, which repeats the number of the
    /// INVITE it acknowledges (RFC 3261 §13.2.2.4).
    public mutating func makeRequest(method: SIPMethod) -> SIPRequest {
        let number: UInt32
        if method == .ack {
            number = localSequenceNumber ?? Dialog.initialLocalSequenceNumber
        } else if let current = localSequenceNumber {
            // > Requests within a dialog MUST contain strictly monotonically increasing and
            // > contiguous CSeq sequence numbers (increasing-by-one) in each direction.
            number = min(current + 1, Dialog.maximumSequenceNumber)
        } else {
            number = Dialog.initialLocalSequenceNumber
        }
        if method != .ack { localSequenceNumber = number }

        var headers = SIPHeaders()
        let (requestURI, routes) = requestURIAndRoutes()
        for route in routes { headers.add(.route, route.description) }
        headers.add(.maxForwards, "70")
        // > The URI in the To field of the request MUST be set to the remote URI from the dialog
        // > state. The tag in the To header field of the request MUST be set to the remote tag of
        // > the dialog ID. The From URI of the request MUST be set to the local URI from the
        // > dialog state. The tag in the From header field of the request MUST be set to the
        // > local tag of the dialog ID.
        // The kept texts have no tag parameter, and a name-addr's parameters follow its `>`:
        // appending the tag is what setting it and rendering the address would give.
        headers.add(.from, localAddressText + ";tag=" + localTag)
        headers.add(.to, remoteTag.map { remoteAddressText + ";tag=" + $0 } ?? remoteAddressText)
        headers.add(.callID, callID)
        headers.add(.cseq, CSeq(number: number, method: method).description)
        return SIPRequest(method: method, uri: requestURI, headers: headers)
    }

    /// RFC 3261 §12.2.1.1:
    /// > If the route set is empty, the UAC MUST place the remote target URI into the
    /// > Request-URI. The UAC MUST NOT add a Route header field to the request.
    /// > If the route set is not empty, and the first URI in the route set contains the lr
    /// > parameter, the UAC MUST place the remote target URI into the Request-URI and MUST
    /// > include a Route header field containing the route set values in order, including all
    /// > parameters.
    /// > If the route set is not empty, and its first URI does not contain the lr parameter,
    /// > the UAC MUST place the first URI from the route set into the Request-URI, stripping any
    /// > parameters that are not allowed in a Request-URI. The UAC MUST add a Route header field
    /// > containing the remainder of the route set values in order, including all parameters.
    /// > The UAC MUST then place the remote target URI into the Route header field as the last
    /// > value.
    func requestURIAndRoutes() -> (SIPURI, [NameAddress]) {
        let remoteTarget = self.remoteTarget
        guard let first = routeSet.first else { return (remoteTarget, []) }
        if first.uri.parameters.contains("lr") { return (remoteTarget, routeSet) }
        var requestURI = first.uri
        // RFC 3261 §19.1.1, Table 1: `method` and URI headers are not allowed in a Request-URI.
        requestURI.parameters.remove("method")
        requestURI.headers = nil
        return (requestURI, Array(routeSet.dropFirst()) + [NameAddress(uri: remoteTarget)])
    }

    /// A kept address text parsed. The texts are made by `losslessDescription` of parsed
    /// values, which the parser reads back; should one ever not parse, the dialog goes on with
    /// an address that says so rather than stopping the server.
    static func address(_ text: String) -> NameAddress {
        NameAddress(text) ?? NameAddress(uri: SIPURI(host: "unparsable.invalid"))
    }

    /// A kept URI text parsed (see `address(_:)`).
    static func uri(_ text: String) -> SIPURI {
        SIPURI(text) ?? SIPURI(host: "unparsable.invalid")
    }

    static func withoutTag(_ address: NameAddress) -> NameAddress {
        var copy = address
        copy.tag = nil
        return copy
    }

    static func contactURI(_ headers: SIPHeaders) -> SIPURI? {
        guard let contacts = ContactValue.parseList(headers.values(.contact)),
            case .address(let address) = contacts.first
        else { return nil }
        return address.uri
    }

    /// Every Record-Route element in order; `nil` when one is malformed.
    static func routes(_ headers: SIPHeaders) -> [NameAddress]? {
        var routes: [NameAddress] = []
        for element in headers.listElements(.recordRoute) {
            guard let route = NameAddress(element) else { return nil }
            routes.append(route)
        }
        return routes
    }
}
