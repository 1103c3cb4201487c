/// A cursor over the bytes of one header value, for the small grammars of RFC 3261 §25
/// (tokens, quoted strings, `;param=value` lists, comma-separated elements).
///
/// It works on borrowed bytes and answers with ranges of them, so that the parser can check a
/// message without building strings; the typed values (`Via`, `NameAddress`, …) build their
/// strings from the same ranges. It never traps: every read checks bounds and every failure is
/// reported as `nil` (or `false`).
struct HeaderValueScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var position: Int

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        self.position = 0
    }

    var isAtEnd: Bool { position >= bytes.count }
    var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func skipWhitespace() {
        while let byte = current, byte.isSIPWhitespace { position += 1 }
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

    /// RFC 3261 `token`, after optional whitespace.
    mutating func token() -> Range<Int>? {
        skipWhitespace()
        let start = position
        while let byte = current, byte.isSIPTokenCharacter { position += 1 }
        guard position > start else { return nil }
        return start..<position
    }

    /// A `quoted-string`, with its quotes (as written). `nil` when unterminated.
    mutating func quotedString() -> Range<Int>? {
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
            if byte == .doubleQuote { return start..<position }
        }
        position = start
        return nil
    }

    /// Reads up to (not including) the first comma that is outside quotes and angle brackets.
    mutating func textUntilComma() -> Range<Int> {
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
            } else if angleDepth == 0, byte == .comma {
                break
            }
            position += 1
        }
        return start..<min(position, bytes.count)
    }

    /// `*( SEMI generic-param )`, where values are tokens, hosts or quoted strings; `each` sees
    /// every name and value (quotes kept) in order. `false` when one is malformed.
    mutating func parameters(_ each: (Range<Int>, Range<Int>?) -> Void) -> Bool {
        while consume(.semicolon) {
            guard let name = token() else { return false }
            var value: Range<Int>?
            if consume(.equals) {
                skipWhitespace()
                if current == .doubleQuote {
                    guard let quoted = quotedString() else { return false }
                    value = quoted
                } else {
                    let start = position
                    while let byte = current,
                        byte.isSIPTokenCharacter || byte == .colon || byte == .openBracket
                            || byte == .closeBracket
                    {
                        position += 1
                    }
                    guard position > start else { return false }
                    value = start..<position
                }
            }
            each(name, value)
        }
        return true
    }

    func string(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }

    /// The element ranges of a comma-separated list (RFC 3261 §7.3.1), trimmed, empty ones
    /// dropped; `each` answers `false` to stop early, and then so does this.
    static func forEachListElement(
        _ bytes: UnsafeBufferPointer<UInt8>,
        _ each: (UnsafeBufferPointer<UInt8>) -> Bool
    ) -> Bool {
        var scanner = HeaderValueScanner(bytes)
        while !scanner.isAtEnd {
            var element = scanner.textUntilComma()
            while element.lowerBound < element.upperBound, bytes[element.lowerBound].isSIPWhitespace {
                element = (element.lowerBound + 1)..<element.upperBound
            }
            while element.lowerBound < element.upperBound, bytes[element.upperBound - 1].isSIPWhitespace {
                element = element.lowerBound..<(element.upperBound - 1)
            }
            if !element.isEmpty, !each(UnsafeBufferPointer(rebasing: bytes[element])) { return false }
            scanner.position += 1
        }
        return true
    }
}

extension SIPParameters {
    /// Parameters from the ranges a scanner reported.
    mutating func set(_ bytes: UnsafeBufferPointer<UInt8>, name: Range<Int>, value: Range<Int>?) {
        set(String(decoding: bytes[name], as: UTF8.self), value.map { String(decoding: bytes[$0], as: UTF8.self) })
    }
}

/// Splits a header value at the commas that separate list elements (RFC 3261 §7.3.1), leaving
/// commas inside quoted strings and `<…>` alone. Empty elements are dropped.
public func splitSIPList(_ value: String) -> [String] {
    var value = value
    return value.withUTF8 { bytes in
        var elements: [String] = []
        _ = HeaderValueScanner.forEachListElement(bytes) { element in
            elements.append(String(decoding: element, as: UTF8.self))
            return true
        }
        return elements
    }
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
