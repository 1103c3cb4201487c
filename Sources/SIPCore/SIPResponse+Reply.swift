extension SIPResponse {
    /// A response to `request` as RFC 3261 §8.2.6.2 builds it:
    ///
    /// > the From field of the response MUST equal the From header field of the request. The
    /// > Call-ID header field of the response MUST equal the Call-ID header field of the request.
    /// > The CSeq header field of the response MUST equal the CSeq field of the request. The Via
    /// > header field values in the response MUST equal the Via header field values in the
    /// > request and MUST maintain the same ordering. If a request contained a To tag in the
    /// > request, the To header field in the response MUST equal that of the request. However,
    /// > if the To header field in the request did not contain a tag, the URI in the To header
    /// > field in the response MUST equal the URI in the To header field; additionally, the UAS
    /// > MUST add a tag to the To header field in the response (with the exception of the 100
    /// > (Trying) response, in which a tag MAY be present).
    ///
    /// `toTag` is added only when the request's To has none and the status is not 100.
    public init(replyingTo request: SIPRequest, statusCode: Int, reasonPhrase: String? = nil, toTag: String?) {
        var headers = SIPHeaders()
        for value in request.headers.values(.via) { headers.add(.via, value) }
        if let from = request.headers[.from] { headers.add(.from, from) }
        if let to = request.headers[.to] {
            headers.add(.to, SIPResponse.taggedTo(to, statusCode: statusCode, toTag: toTag))
        }
        if let callID = request.headers[.callID] { headers.add(.callID, callID) }
        if let cseq = request.headers[.cseq] { headers.add(.cseq, cseq) }
        self.init(statusCode: statusCode, reasonPhrase: reasonPhrase, headers: headers)
    }

    /// The To value with `;tag=toTag` appended when it has no tag and the response is not 100.
    static func taggedTo(_ to: String, statusCode: Int, toTag: String?) -> String {
        guard statusCode != 100, let toTag else { return to }
        if let address = NameAddress(to), address.tag != nil { return to }
        return to + ";tag=" + toTag
    }
}

extension SIPParseError {
    /// The response a server sends for a request it could not parse (400, 413, 505, …), with
    /// the reason phrase naming the fault (RFC 4475 §3.1.2) and Via, From, To (tagged),
    /// Call-ID and CSeq copied as RFC 3261 §8.2.6.2 asks.
    ///
    /// `nil` when the message was a response (RFC 3261 §18.1.2: a malformed response is
    /// dropped) or when too little of it was readable to address an answer.
    ///
    /// Control characters in the copied values (the NUL in a display name that made the
    /// request unparseable) are left out: what we send must be a message we would accept
    /// ourselves, and the sender still matches the answer by its Via branch, tags and CSeq
    /// (the request-path fuzzer found the 400 echoing the NUL back).
    public func makeResponse(toTag: String?) -> SIPResponse? {
        guard let context = responseContext, context.isRequest else { return nil }
        var headers = SIPHeaders()
        for value in context.via { headers.add(.via, Self.withoutControlCharacters(value)) }
        headers.add(.from, Self.withoutControlCharacters(context.from))
        let to = Self.withoutControlCharacters(context.to)
        headers.add(.to, SIPResponse.taggedTo(to, statusCode: statusCode, toTag: toTag))
        headers.add(.callID, Self.withoutControlCharacters(context.callID))
        headers.add(.cseq, Self.withoutControlCharacters(context.cseq))
        return SIPResponse(statusCode: statusCode, reasonPhrase: reasonPhrase, headers: headers)
    }

    /// `value` without C0 controls (tab aside) and DEL: RFC 3261 §25.1 allows neither in a
    /// header value.
    static func withoutControlCharacters(_ value: String) -> String {
        guard value.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else { return value }
        return String(value.unicodeScalars.filter { ($0.value >= 0x20 || $0.value == 0x09) && $0.value != 0x7F })
    }
}
