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
        var scanner = HeaderValueScanner(text)
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport, LWS allowed around slashes.
        guard let name = scanner.token(), name.caseInsensitiveEquals("SIP"), scanner.consume(.slash),
            let version = scanner.token(), version == "2.0", scanner.consume(.slash),
            let transport = scanner.token()
        else { return nil }
        scanner.skipWhitespace()
        // sent-by = host [ COLON port ]
        var host: String
        if scanner.current == .openBracket {
            let start = scanner.position
            while let byte = scanner.current, byte != .closeBracket { scanner.position += 1 }
            guard scanner.current == .closeBracket else { return nil }
            scanner.position += 1
            host = String(decoding: scanner.bytes[start..<scanner.position], as: UTF8.self)
        } else {
            let start = scanner.position
            while let byte = scanner.current, byte.isHostCharacter { scanner.position += 1 }
            guard scanner.position > start else { return nil }
            host = String(decoding: scanner.bytes[start..<scanner.position], as: UTF8.self)
        }
        var port: Int?
        if scanner.consume(.colon) {
            scanner.skipWhitespace()
            let start = scanner.position
            while let byte = scanner.current, byte.isASCIIDigit { scanner.position += 1 }
            guard scanner.position > start, scanner.position - start <= 5,
                let value = Int(String(decoding: scanner.bytes[start..<scanner.position], as: UTF8.self)), value <= 65535
            else { return nil }
            port = value
        }
        guard let parameters = scanner.parameters() else { return nil }
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { return nil }
        host = host.lowercased()
        self.init(transport: transport.uppercased(), host: host, port: port, parameters: parameters)
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
        var scanner = HeaderValueScanner(text)
        scanner.skipWhitespace()
        let start = scanner.position
        while let byte = scanner.current, byte.isASCIIDigit { scanner.position += 1 }
        guard scanner.position > start, scanner.position - start <= 10,
            let number = UInt32(String(decoding: scanner.bytes[start..<scanner.position], as: UTF8.self)),
            number < 1 << 31,
            let method = scanner.token()
        else { return nil }
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { return nil }
        self.init(number: number, method: SIPMethod(method))
    }
}
