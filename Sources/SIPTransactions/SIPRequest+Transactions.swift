import SIPCore

extension SIPRequest {
    /// The `100 Trying` a server INVITE transaction sends on its own (RFC 3261 §17.2.1), built as
    /// RFC 3261 §8.2.6.1 says: Via, From, To, Call-ID and CSeq copied, and the Timestamp
    /// echoed. A 100 never carries a To tag of ours (§8.2.6.2 applies to other responses).
    func transactionTryingResponse() -> SIPResponse {
        var headers = SIPHeaders()
        for field in self.headers {
            switch field.name {
            case .via, .from, .to, .callID, .cseq: headers.add(field.name, field.value)
            default:
                if field.name == SIPRequest.timestampHeader { headers.add(field.name, field.value) }
            }
        }
        return SIPResponse(statusCode: 100, headers: headers)
    }

    static let timestampHeader = SIPHeaderName("Timestamp")

    /// The ACK a client INVITE transaction sends for a 300–699 response (RFC 3261 §17.1.1.3):
    ///
    /// > The ACK request constructed by the client transaction MUST contain values for the
    /// > Call-ID, From, and Request-URI that are equal to the values of those header fields in
    /// > the request passed to the transport by the client transaction (call this the "original
    /// > request"). The To header field in the ACK MUST equal the To header field in the
    /// > response being acknowledged [...] The ACK MUST contain a single Via header field, and
    /// > this MUST be equal to the top Via header field of the original request. The CSeq header
    /// > field in the ACK MUST contain the same value for the sequence number as was present in
    /// > the original request, but the method parameter MUST be equal to "ACK".
    /// > If the INVITE request whose response is being acknowledged had Route header fields,
    /// > those header fields MUST appear in the ACK.
    func transactionACK(for response: SIPResponse) -> SIPRequest {
        var headers = SIPHeaders()
        if let topVia = self.headers.listElements(.via).first { headers.add(.via, topVia) }
        for route in self.headers.values(.route) { headers.add(.route, route) }
        headers.add(.maxForwards, "70")
        if let from = self.headers[.from] { headers.add(.from, from) }
        if let to = response.headers[.to] ?? self.headers[.to] { headers.add(.to, to) }
        if let callID = self.headers[.callID] { headers.add(.callID, callID) }
        let number = self.cseq?.number ?? 0
        headers.add(.cseq, CSeq(number: number, method: .ack).description)
        return SIPRequest(method: .ack, uri: uri, headers: headers)
    }
}
