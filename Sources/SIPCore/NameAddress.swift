/// `[display-name] <URI> *(;param)` or `addr-spec *(;param)`: the value of From, To, Contact,
/// Route, Record-Route (RFC 3261 §20.10, §25.1 `name-addr` / `addr-spec`).
public struct NameAddress: Hashable, Sendable, CustomStringConvertible {
    /// The display name without quotes, if any.
    public var displayName: String?
    public var uri: SIPURI
    /// Header parameters (`tag`, `expires`, `q`, `+sip.instance`, …), after the URI.
    public var parameters: SIPParameters

    public init(displayName: String? = nil, uri: SIPURI, parameters: SIPParameters = SIPParameters()) {
        self.displayName = displayName
        self.uri = uri
        self.parameters = parameters
    }

    /// The `tag` parameter of From and To.
    public var tag: String? {
        get { parameters.unquotedValue("tag") }
        set {
            if let newValue { parameters.set("tag", newValue) } else { parameters.remove("tag") }
        }
    }

    public var description: String {
        var out = ""
        if let displayName, !displayName.isEmpty { out += displayName.quotedSIPString + " " }
        out += "<" + uri.description + ">"
        out += parameters.serialized
        return out
    }

    /// Text the parser reads back to an equal value: `description`, except that an empty
    /// display name is kept (`"" <sip:…>`, which phones do send, and `description` leaves out).
    public var losslessDescription: String {
        displayName == "" ? "\"\" " + description : description
    }

    /// Parses one name-addr or addr-spec with its parameters; `nil` when malformed.
    public init?(_ text: String) {
        var text = text
        guard let address = text.withUTF8(NameAddress.init(bytes:)) else { return nil }
        self = address
    }

    init?(bytes: UnsafeBufferPointer<UInt8>) {
        var parameters = SIPParameters()
        guard let syntax = NameAddress.syntax(bytes, parameter: { parameters.set(bytes, name: $0, value: $1) }),
            let uri = SIPURI(bytes: UnsafeBufferPointer(rebasing: bytes[syntax.uri]))
        else { return nil }
        var displayName: String?
        switch syntax.displayName {
        case .none: displayName = nil
        case .quoted(let range): displayName = String(decoding: bytes[range], as: UTF8.self).unquotedSIPString
        case .words(let range): displayName = String(decoding: bytes[range], as: UTF8.self)
        }
        self.init(displayName: displayName, uri: uri, parameters: parameters)
    }

    /// Where the parts of a name-addr or addr-spec are in its bytes.
    struct Syntax {
        enum DisplayName {
            case none
            /// A quoted-string, quotes included.
            case quoted(Range<Int>)
            /// `*(token LWS)`, trimmed.
            case words(Range<Int>)
        }
        var displayName: DisplayName
        var uri: Range<Int>
    }

    /// Checks one name-addr or addr-spec, its URI included, without building strings;
    /// `parameter` sees every header parameter (after the URI) in order.
    static func syntax(
        _ bytes: UnsafeBufferPointer<UInt8>,
        parameter: (Range<Int>, Range<Int>?) -> Void
    ) -> Syntax? {
        var scanner = HeaderValueScanner(bytes)
        scanner.skipWhitespace()
        var displayName = Syntax.DisplayName.none
        if scanner.current == .doubleQuote {
            guard let quoted = scanner.quotedString() else { return nil }
            displayName = .quoted(quoted)
            guard scanner.consume(.lessThan) else { return nil }
        } else if !scanner.consume(.lessThan) {
            // Either `display name <uri>` with an unquoted display name, or a bare addr-spec.
            let saved = scanner.position
            // RFC 4475 §3.1.1.6: `caller<sip:…>` (no LWS before '<') is accepted.
            while let byte = scanner.current, byte != .lessThan { scanner.position += 1 }
            if scanner.current == .lessThan {
                var wordsStart = saved
                var wordsEnd = scanner.position
                while wordsStart < wordsEnd, bytes[wordsStart].isSIPWhitespace { wordsStart += 1 }
                while wordsEnd > wordsStart, bytes[wordsEnd - 1].isSIPWhitespace { wordsEnd -= 1 }
                // An unquoted display name is *(token LWS): reject anything else.
                guard bytes[wordsStart..<wordsEnd].allSatisfy({ $0.isSIPTokenCharacter || $0.isSIPWhitespace }) else {
                    return nil
                }
                if wordsEnd > wordsStart { displayName = .words(wordsStart..<wordsEnd) }
                scanner.position += 1
            } else {
                scanner.position = saved
                // addr-spec: the URI runs to the first ';' (parameters after it are the header's)
                // or whitespace.
                let start = scanner.position
                while let byte = scanner.current, byte != .semicolon, !byte.isSIPWhitespace { scanner.position += 1 }
                let uri = start..<scanner.position
                guard SIPURI.syntax(UnsafeBufferPointer(rebasing: bytes[uri]), parameter: { _, _ in }) != nil,
                    scanner.parameters(parameter)
                else { return nil }
                scanner.skipWhitespace()
                guard scanner.isAtEnd else { return nil }
                return Syntax(displayName: .none, uri: uri)
            }
        }
        // Inside <…>
        let start = scanner.position
        while let byte = scanner.current, byte != .greaterThan { scanner.position += 1 }
        guard scanner.current == .greaterThan else { return nil }
        let uri = start..<scanner.position
        guard SIPURI.syntax(UnsafeBufferPointer(rebasing: bytes[uri]), parameter: { _, _ in }) != nil else {
            return nil
        }
        scanner.position += 1
        guard scanner.parameters(parameter) else { return nil }
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { return nil }
        return Syntax(displayName: displayName, uri: uri)
    }
}

/// One Contact header element: `*` (only in REGISTER, with Expires: 0) or an address.
public enum ContactValue: Hashable, Sendable {
    case wildcard
    case address(NameAddress)

    /// Parses every element of the Contact header fields; `nil` when any is malformed.
    public static func parseList(_ values: [String]) -> [ContactValue]? {
        var result: [ContactValue] = []
        for value in values {
            for element in splitSIPList(value) {
                if element == "*" {
                    result.append(.wildcard)
                } else if let address = NameAddress(element) {
                    result.append(.address(address))
                } else {
                    return nil
                }
            }
        }
        return result
    }
}
