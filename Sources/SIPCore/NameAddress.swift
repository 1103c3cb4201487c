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

    /// Parses one name-addr or addr-spec with its parameters; `nil` when malformed.
    public init?(_ text: String) {
        var scanner = HeaderValueScanner(text)
        scanner.skipWhitespace()
        var displayName: String?
        let uri: SIPURI
        if scanner.current == .doubleQuote {
            guard let quoted = scanner.quotedString() else { return nil }
            displayName = quoted.unquotedSIPString
            guard scanner.consume(.lessThan) else { return nil }
        } else if !scanner.consume(.lessThan) {
            // Either `display name <uri>` with an unquoted display name, or a bare addr-spec.
            let saved = scanner.position
            // RFC 4475 §3.1.1.6: `caller<sip:…>` (no LWS before '<') is accepted.
            while let byte = scanner.current, byte != .lessThan { scanner.position += 1 }
            if scanner.current == .lessThan {
                let words = String(decoding: scanner.bytes[saved..<scanner.position], as: UTF8.self)
                    .trimmingSIPWhitespace()
                // An unquoted display name is *(token LWS): reject anything else.
                guard words.utf8.allSatisfy({ $0.isSIPTokenCharacter || $0.isSIPWhitespace }) else { return nil }
                displayName = words.isEmpty ? nil : words
                scanner.position += 1
            } else {
                scanner.position = saved
                // addr-spec: the URI runs to the first ';' (parameters after it are the header's)
                // or whitespace.
                let start = scanner.position
                while let byte = scanner.current, byte != .semicolon, !byte.isSIPWhitespace { scanner.position += 1 }
                guard let parsed = SIPURI(String(decoding: scanner.bytes[start..<scanner.position], as: UTF8.self))
                else { return nil }
                guard let parameters = scanner.parameters() else { return nil }
                scanner.skipWhitespace()
                guard scanner.isAtEnd else { return nil }
                self.init(displayName: nil, uri: parsed, parameters: parameters)
                return
            }
        }
        // Inside <…>
        let start = scanner.position
        while let byte = scanner.current, byte != .greaterThan { scanner.position += 1 }
        guard scanner.current == .greaterThan else { return nil }
        guard let parsed = SIPURI(String(decoding: scanner.bytes[start..<scanner.position], as: UTF8.self)) else {
            return nil
        }
        uri = parsed
        scanner.position += 1
        guard let parameters = scanner.parameters() else { return nil }
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { return nil }
        self.init(displayName: displayName, uri: uri, parameters: parameters)
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
