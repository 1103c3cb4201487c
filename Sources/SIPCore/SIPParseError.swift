/// Why a message could not be parsed, with the SIP answer it deserves.
///
/// `reasonPhrase` names the fault (it becomes the 400's reason phrase, RFC 4475 §3.1.2 asks a
/// server to say what was wrong), and `responseContext` carries the headers that a response
/// needs when enough of the message was readable to answer at all.
public struct SIPParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        case empty
        case messageTooLarge
        case lineTooLong
        case tooManyHeaders
        case badStartLine
        case badVersion
        case badRequestURI
        case badHeaderLine
        case missingHeader
        case badHeaderValue
        case badContentLength
        case truncatedBody
        case invalidBytes
    }

    public var code: Code
    public var reasonPhrase: String
    /// The status a server answers with (400, 413, 505, …).
    public var statusCode: Int
    /// Present when Via, From, To, Call-ID and CSeq could be read, so a response can be built.
    public var responseContext: ResponseContext?

    public init(_ code: Code, _ reasonPhrase: String, statusCode: Int = 400, responseContext: ResponseContext? = nil) {
        self.code = code
        self.reasonPhrase = reasonPhrase
        self.statusCode = statusCode
        self.responseContext = responseContext
    }

    public var description: String { "\(code.rawValue): \(reasonPhrase)" }

    /// The raw header fields that RFC 3261 §8.2.6.2 copies into a response.
    public struct ResponseContext: Sendable, Hashable {
        public var isRequest: Bool
        public var method: SIPMethod?
        public var via: [String]
        public var from: String
        public var to: String
        public var callID: String
        public var cseq: String
    }
}

/// The bounds the parser enforces on every message, whatever its transport.
public struct SIPParserLimits: Sendable, Hashable {
    /// Largest message, start line to last body byte. RFC 3261 §18.1.1 puts UDP requests above
    /// the path MTU on congestion-controlled transports; 64 KiB is the IP datagram limit and
    /// more than any real phone sends.
    public var maximumMessageSize: Int
    /// Most header fields in one message. Real phones send under 30; RFC 4475 messages under 60.
    public var maximumHeaderCount: Int
    /// Longest single line, after unfolding.
    public var maximumLineLength: Int

    public init(maximumMessageSize: Int = 65_535, maximumHeaderCount: Int = 256, maximumLineLength: Int = 8_192) {
        self.maximumMessageSize = maximumMessageSize
        self.maximumHeaderCount = maximumHeaderCount
        self.maximumLineLength = maximumLineLength
    }

    public static let `default` = SIPParserLimits()
}
