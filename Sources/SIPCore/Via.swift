/// One Via element: `SIP/2.0/UDP host:port;branch=z9hG4bK…;rport;received=…` (RFC 3261 §20.42).
public struct Via: Hashable, Sendable, CustomStringConvertible {
    /// Upper-cased transport: `UDP`, `TCP`, `TLS`, `WS`, …
    public var transport: String
    public var host: String
    public var port: Int?
    public var parameters: SIPParameters

    public init(transport: String, host: String, port: Int?, parameters: SIPParameters = SIPParameters()) {
        self.transport = transport
        self.host = host
        self.port = port
        self.parameters = parameters
    }

    /// RFC 3261 §8.1.1.7: branches that start with this cookie are unique transaction ids.
    public static let magicCookie = "z9hG4bK"

    public var branch: String? { parameters.unquotedValue("branch") }
    public var received: String? { parameters.unquotedValue("received") }

    /// RFC 3581: `rport` present (with or without a value).
    public var hasRport: Bool { parameters.contains("rport") }
    public var rport: Int? { parameters.unquotedValue("rport").flatMap { Int($0) } }

    public var description: String {
        var out = "SIP/2.0/" + transport + " " + host
        if let port { out += ":" + String(port) }
        out += parameters.serialized
        return out
    }

    /// Parses every element of the Via header fields, topmost first; `nil` when any is malformed.
    public static func parseList(_ values: [String]) -> [Via]? {
        var result: [Via] = []
        for value in values {
            for element in splitSIPList(value) {
                guard let via = Via(element) else { return nil }
                result.append(via)
            }
        }
        return result
    }

    public init?(_ text: String) {
        var text = text
        guard let via = text.withUTF8(Via.init(bytes:)) else { return nil }
        self = via
    }

    init?(bytes: UnsafeBufferPointer<UInt8>) {
        var parameters = SIPParameters()
        guard let syntax = Via.syntax(bytes, parameter: { parameters.set(bytes, name: $0, value: $1) }) else {
            return nil
        }
        self.init(
            transport: String(decoding: bytes[syntax.transport], as: UTF8.self).uppercased(),
            host: String(decoding: bytes[syntax.host], as: UTF8.self).lowercased(),
            port: syntax.port,
            parameters: parameters
        )
    }

    /// Where the parts of one Via element are in its bytes.
    struct Syntax {
        var transport: Range<Int>
        var host: Range<Int>
        var port: Int?
    }

    /// Checks one Via element (RFC 3261 §20.42 `via-parm`) without building strings.
    static func syntax(
        _ bytes: UnsafeBufferPointer<UInt8>,
        parameter: (Range<Int>, Range<Int>?) -> Void
    ) -> Syntax? {
        var scanner = HeaderValueScanner(bytes)
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport, LWS allowed around slashes.
        guard let name = scanner.token(), UnsafeBufferPointer(rebasing: bytes[name]).equalsLowercased("sip"),
            scanner.consume(.slash),
            let version = scanner.token(), bytes[version].elementsEqual("2.0".utf8), scanner.consume(.slash),
            let transport = scanner.token()
        else { return nil }
        scanner.skipWhitespace()
        // sent-by = host [ COLON port ]
        let host: Range<Int>
        if scanner.current == .openBracket {
            let start = scanner.position
            while let byte = scanner.current, byte != .closeBracket { scanner.position += 1 }
            guard scanner.current == .closeBracket else { return nil }
            scanner.position += 1
            host = start..<scanner.position
        } else {
            let start = scanner.position
            while let byte = scanner.current, byte.isHostCharacter { scanner.position += 1 }
            guard scanner.position > start else { return nil }
            host = start..<scanner.position
        }
        var port: Int?
        if scanner.consume(.colon) {
            scanner.skipWhitespace()
            let start = scanner.position
            while let byte = scanner.current, byte.isASCIIDigit { scanner.position += 1 }
            guard scanner.position - start <= 5,
                let value = UnsafeBufferPointer(rebasing: bytes[start..<scanner.position]).asciiDecimal, value <= 65535
            else { return nil }
            port = value
        }
        guard scanner.parameters(parameter) else { return nil }
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { return nil }
        return Syntax(transport: transport, host: host, port: port)
    }
}

/// `CSeq: 4711 INVITE` (RFC 3261 §20.16).
public struct CSeq: Hashable, Sendable, CustomStringConvertible {
    public var number: UInt32
    public var method: SIPMethod

    public init(number: UInt32, method: SIPMethod) {
        self.number = number
        self.method = method
    }

    public var description: String { "\(number) \(method.rawValue)" }

    /// RFC 3261 §8.1.1.5: the sequence number is a 32-bit unsigned integer below 2**31.
    public init?(_ text: String) {
        var text = text
        guard
            let cseq = text.withUTF8({ bytes -> CSeq? in
                guard let syntax = CSeq.syntax(bytes) else { return nil }
                return CSeq(
                    number: syntax.number,
                    method: SIPMethod(String(decoding: bytes[syntax.method], as: UTF8.self))
                )
            })
        else { return nil }
        self = cseq
    }

    /// Checks `1*DIGIT LWS Method` without building strings.
    static func syntax(_ bytes: UnsafeBufferPointer<UInt8>) -> (number: UInt32, method: Range<Int>)? {
        var scanner = HeaderValueScanner(bytes)
        scanner.skipWhitespace()
        let start = scanner.position
        while let byte = scanner.current, byte.isASCIIDigit { scanner.position += 1 }
        guard scanner.position - start <= 10,
            let number = UnsafeBufferPointer(rebasing: bytes[start..<scanner.position]).asciiDecimal,
            number < 1 << 31,
            let method = scanner.token()
        else { return nil }
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { return nil }
        return (UInt32(number), method)
    }
}
