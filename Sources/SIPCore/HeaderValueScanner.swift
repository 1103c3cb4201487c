/// A cursor over the bytes of one header value, for the small grammars of RFC 3261 §25
/// (tokens, quoted strings, `;param=value` lists, comma-separated elements).
///
/// It never traps: every read checks bounds and every failure is reported as `nil`.
struct HeaderValueScanner {
    let bytes: [UInt8]
    var position: Int

    init(_ text: String) {
        self.bytes = Array(text.utf8)
        self.position = 0
    }

    init(bytes: [UInt8]) {
        self.bytes = bytes
        self.position = 0
    }

    var isAtEnd: Bool { position >= bytes.count }
    var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func skipWhitespace() {
        while let byte = current, byte == .space || byte == .tab || byte == .cr || byte == .lf { position += 1 }
    }

    /// Consumes `byte` (after optional whitespace) if it is next.
    mutating func consume(_ byte: UInt8) -> Bool {
        let saved = position
        skipWhitespace()
        if current == byte {
            position += 1
            return true
        }
        position = saved
        return false
    }

    /// RFC 3261 `token`.
    mutating func token() -> String? {
        skipWhitespace()
        let start = position
        while let byte = current, byte.isSIPTokenCharacter { position += 1 }
        guard position > start else { return nil }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    /// A `quoted-string`, returned with its quotes (as written). `nil` when unterminated.
    mutating func quotedString() -> String? {
        skipWhitespace()
        guard current == .doubleQuote else { return nil }
        let start = position
        position += 1
        while let byte = current {
            if byte == .backslash {
                position += 2
                continue
            }
            position += 1
            if byte == .doubleQuote {
                return String(decoding: bytes[start..<position], as: UTF8.self)
            }
        }
        position = start
        return nil
    }

    /// Reads up to (not including) the first byte in `stops` that is outside quotes and
    /// angle brackets.
    mutating func text(until stops: Set<UInt8>) -> String {
        let start = position
        var inQuotes = false
        var angleDepth = 0
        while let byte = current {
            if inQuotes {
                if byte == .backslash {
                    position += 2
                    continue
                }
                if byte == .doubleQuote { inQuotes = false }
            } else if byte == .doubleQuote {
                inQuotes = true
            } else if byte == .lessThan {
                angleDepth += 1
            } else if byte == .greaterThan, angleDepth > 0 {
                angleDepth -= 1
            } else if angleDepth == 0, stops.contains(byte) {
                break
            }
            position += 1
        }
        let end = min(position, bytes.count)
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// `*( SEMI generic-param )`, where values are tokens, hosts or quoted strings.
    mutating func parameters(stoppingAt stops: Set<UInt8> = [.comma]) -> SIPParameters? {
        var parameters = SIPParameters()
        while consume(.semicolon) {
            guard let name = token() else { return nil }
            var value: String?
            if consume(.equals) {
                skipWhitespace()
                if current == .doubleQuote {
                    guard let quoted = quotedString() else { return nil }
                    value = quoted
                } else {
                    let start = position
                    while let byte = current, byte.isSIPTokenCharacter || byte == .colon || byte == .openBracket
                        || byte == .closeBracket
                    {
                        position += 1
                    }
                    guard position > start else { return nil }
                    value = String(decoding: bytes[start..<position], as: UTF8.self)
                }
            }
            parameters.set(name, value)
            _ = stops
        }
        return parameters
    }
}

/// Splits a header value at the commas that separate list elements (RFC 3261 §7.3.1), leaving
/// commas inside quoted strings and `<…>` alone. Empty elements are dropped.
public func splitSIPList(_ value: String) -> [String] {
    var scanner = HeaderValueScanner(value)
    var elements: [String] = []
    while !scanner.isAtEnd {
        let element = scanner.text(until: [.comma]).trimmingSIPWhitespace()
        if !element.isEmpty { elements.append(element) }
        scanner.position += 1
    }
    return elements
}

extension String {
    /// The text without leading and trailing SP, HTAB, CR and LF.
    public func trimmingSIPWhitespace() -> String {
        let bytes = self.utf8
        guard let first = bytes.firstIndex(where: { !$0.isSIPWhitespace }) else { return "" }
        let last = bytes.lastIndex(where: { !$0.isSIPWhitespace })!
        return String(self[first...last])
    }
}

extension UInt8 {
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let colon = UInt8(ascii: ":")
    static let semicolon = UInt8(ascii: ";")
    static let comma = UInt8(ascii: ",")
    static let equals = UInt8(ascii: "=")
    static let doubleQuote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let lessThan = UInt8(ascii: "<")
    static let greaterThan = UInt8(ascii: ">")
    static let at = UInt8(ascii: "@")
    static let slash = UInt8(ascii: "/")
    static let questionMark = UInt8(ascii: "?")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let star = UInt8(ascii: "*")

    var isSIPWhitespace: Bool { self == .space || self == .tab || self == .cr || self == .lf }

    /// RFC 3261 §25.1 `token` characters: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
    var isSIPTokenCharacter: Bool {
        switch self {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "!"), UInt8(ascii: "%"), UInt8(ascii: "*"),
            UInt8(ascii: "_"), UInt8(ascii: "+"), UInt8(ascii: "`"), UInt8(ascii: "'"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
