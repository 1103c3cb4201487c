/// An ordered list of `;name[=value]` parameters (URI parameters, header parameters).
///
/// Names compare case-insensitively (RFC 3261 §7.3.1); values are kept as written, with
/// quotes for quoted-string values, so that serialization reproduces them.
public struct SIPParameters: Hashable, Sendable, Sequence {
    public struct Parameter: Hashable, Sendable {
        public var name: String
        /// `nil` for a parameter without a value (`;lr`).
        public var value: String?
        public init(name: String, value: String?) {
            self.name = name
            self.value = value
        }
    }

    public private(set) var items: [Parameter] = []

    public init() {}
    public init(_ items: [Parameter]) { self.items = items }

    public var isEmpty: Bool { items.isEmpty }
    public var count: Int { items.count }
    public func makeIterator() -> IndexingIterator<[Parameter]> { items.makeIterator() }

    /// The value of `name`: `.some(nil)` when present without a value, `nil` when absent.
    public subscript(name: String) -> String?? {
        for item in items where item.name.caseInsensitiveEquals(name) { return .some(item.value) }
        return nil
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    /// The value with surrounding quotes and escapes removed.
    public func unquotedValue(_ name: String) -> String? {
        guard case .some(.some(let value)) = self[name] else { return nil }
        return value.unquotedSIPString
    }

    public mutating func set(_ name: String, _ value: String?) {
        if let index = items.firstIndex(where: { $0.name.caseInsensitiveEquals(name) }) {
            items[index].value = value
        } else {
            items.append(Parameter(name: name, value: value))
        }
    }

    public mutating func remove(_ name: String) {
        items.removeAll { $0.name.caseInsensitiveEquals(name) }
    }

    /// `;a=1;b` as written on the wire.
    public var serialized: String {
        var out = ""
        for item in items {
            out += ";"
            out += item.name
            if let value = item.value {
                out += "="
                out += value
            }
        }
        return out
    }
}

extension String {
    /// ASCII case-insensitive comparison without allocating lower-cased copies.
    public func caseInsensitiveEquals(_ other: String) -> Bool {
        let a = self.utf8
        let b = other.utf8
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where x != y {
            if (x | 0x20) != (y | 0x20) || !((x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z")) {
                return false
            }
        }
        return true
    }

    /// A quoted-string with its quotes removed and `\x` escapes resolved (RFC 3261 §25.1);
    /// unquoted text is returned as is.
    public var unquotedSIPString: String {
        let bytes = Array(self.utf8)
        guard bytes.count >= 2, bytes.first == UInt8(ascii: "\""), bytes.last == UInt8(ascii: "\"") else {
            return self
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 1
        while index < bytes.count - 1 {
            if bytes[index] == UInt8(ascii: "\\"), index + 1 < bytes.count - 1 {
                out.append(bytes[index + 1])
                index += 2
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// This text as a quoted-string, escaping `"` and `\`.
    public var quotedSIPString: String {
        var out = "\""
        for character in self {
            if character == "\"" || character == "\\" { out.append("\\") }
            out.append(character)
        }
        out.append("\"")
        return out
    }
}
