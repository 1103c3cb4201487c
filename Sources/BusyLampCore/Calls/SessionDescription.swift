/// Just enough of an SDP body (RFC 4566) for a B2BUA that never touches media: the origin line
/// and the media lines, so that pickup can answer an offer with a placeholder and keep the
/// origin's version rising (RFC 3264 §8). Every other line passes through as written.
///
/// Bodies of ordinary calls are never parsed: they pass through unchanged. Only pickup, where
/// BusyLamp must join two offers that were never meant for each other, looks inside.
public struct SessionDescription: Sendable, Hashable {
    public static let contentType = "application/sdp"

    /// RFC 4566 §5.2: `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.
    public struct Origin: Sendable, Hashable {
        public var username: String
        public var sessionID: String
        /// RFC 3264 §8: "the version number ... MUST be incremented by one" in each new offer.
        public var version: UInt64
        /// `<nettype> <addrtype> <unicast-address>`, kept as written.
        public var address: String

        var line: String { "o=\(username) \(sessionID) \(version) \(address)" }

        public init(username: String, sessionID: String, version: UInt64, address: String) {
            self.username = username
            self.sessionID = sessionID
            self.version = version
            self.address = address
        }

        init?(_ value: Substring) {
            let fields = value.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
            guard fields.count == 4, let version = UInt64(fields[2]) else { return nil }
            username = String(fields[0])
            sessionID = String(fields[1])
            self.version = version
            address = String(fields[3])
        }
    }

    /// The body's lines without their line ends.
    public private(set) var lines: [String]

    /// `nil` unless the body is UTF-8 text that starts with `v=` (RFC 4566 §5: "v=" comes first).
    public init?(_ body: [UInt8]) {
        guard let text = String(validating: body, as: UTF8.self) else { return nil }
        // `\r\n` is one Character in Swift: split on every kind of line end.
        let lines = text.split(omittingEmptySubsequences: true, whereSeparator: \.isNewline).map(String.init)
        guard lines.first?.hasPrefix("v=") == true else { return nil }
        self.lines = lines
    }

    /// RFC 4566 §5: lines end with CRLF.
    public var bytes: [UInt8] { Array(lines.map { $0 + "\r\n" }.joined().utf8) }

    public var origin: Origin? {
        lines.first { $0.hasPrefix("o=") }.flatMap { Origin($0.dropFirst(2)) }
    }

    /// The same description with `origin` in place of its own.
    public func replacingOrigin(with origin: Origin) -> SessionDescription {
        var copy = self
        if let index = copy.lines.firstIndex(where: { $0.hasPrefix("o=") }) {
            copy.lines[index] = origin.line
        }
        return copy
    }

    /// A valid answer to this description as an offer that accepts every stream and sends
    /// nothing: what BusyLamp answers a pickup's offer with until the caller's offer can be
    /// put to the picker in a re-INVITE (RFC 3725 §5, "Flow I" seen from the controller).
    ///
    /// RFC 3264 §6: the answer has as many media lines as the offer, in the same order, each
    /// with a format the offer listed (the first) and a non-zero port (a zero port would reject
    /// the stream for good: §6 "a port number of zero ... indicates that the stream is
    /// rejected"). RFC 3264 §6.1: `a=inactive` answers any direction; the connection address
    /// `0.0.0.0` (§8.4's old hold) keeps a phone that ignores the attribute from sending
    /// anywhere. Codec attributes of the offer are kept for the one format taken.
    ///
    /// - Parameter origin: the `o=` line to answer with; the caller's, so that the re-INVITE
    ///   that follows can carry the caller's own description as a newer version of it.
    public func inactiveAnswer(origin: Origin) -> SessionDescription {
        var answer = ["v=0", origin.line, "s=-", "c=IN IP4 0.0.0.0", "t=0 0"]
        var currentFormat: String?
        for line in lines {
            if line.hasPrefix("m=") {
                // m=<media> <port> <proto> <fmt> ...
                let fields = line.dropFirst(2).split(separator: " ")
                guard fields.count >= 4 else { continue }
                currentFormat = String(fields[3])
                answer.append("m=\(fields[0]) 9 \(fields[2]) \(fields[3])")
                answer.append("a=inactive")
            } else if let format = currentFormat,
                line.hasPrefix("a=rtpmap:\(format) ") || line.hasPrefix("a=fmtp:\(format) ")
            {
                answer.append(line)
            }
        }
        var description = self
        description.lines = answer
        return description
    }
}
