/// The header fields of a message, in order, as they were received or built.
///
/// Lookups compare names case-insensitively with compact forms folded (`SIPHeaderName`).
/// Values are carried as written; typed accessors (`SIPMessage+Headers.swift`) parse on demand.
public struct SIPHeaders: Sendable, Hashable, Sequence {
    public struct Field: Sendable, Hashable {
        public var name: SIPHeaderName
        /// The value with surrounding whitespace removed and folded lines joined by one space.
        public var value: String

        public init(name: SIPHeaderName, value: String) {
            self.name = name
            self.value = value
        }
    }

    public private(set) var fields: [Field]

    public init() { fields = [] }
    public init(_ fields: [(SIPHeaderName, String)]) { self.fields = fields.map { Field(name: $0.0, value: $0.1) } }

    public var count: Int { fields.count }
    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    /// The first field's value of `name`.
    public subscript(name: SIPHeaderName) -> String? {
        for field in fields where field.name == name { return field.value }
        return nil
    }

    /// Every field's value of `name`, in order, not split at commas.
    public func values(_ name: SIPHeaderName) -> [String] {
        fields.compactMap { $0.name == name ? $0.value : nil }
    }

    /// Every list element of `name` (fields split at their separating commas, RFC 3261 §7.3.1).
    public func listElements(_ name: SIPHeaderName) -> [String] {
        values(name).flatMap(splitSIPList)
    }

    public func contains(_ name: SIPHeaderName) -> Bool { fields.contains { $0.name == name } }

    public mutating func add(_ name: SIPHeaderName, _ value: String) {
        fields.append(Field(name: name, value: value))
    }

    /// Adds a field before all others (a proxy's own Via, RFC 3261 §16.6 step 8).
    public mutating func prepend(_ name: SIPHeaderName, _ value: String) {
        fields.insert(Field(name: name, value: value), at: 0)
    }

    /// Replaces every field of `name` by one field with `value`, at the first one's place.
    public mutating func set(_ name: SIPHeaderName, _ value: String) {
        if let first = fields.firstIndex(where: { $0.name == name }) {
            fields[first].value = value
            var index = fields.count - 1
            while index > first {
                if fields[index].name == name { fields.remove(at: index) }
                index -= 1
            }
        } else {
            add(name, value)
        }
    }

    public mutating func remove(_ name: SIPHeaderName) {
        fields.removeAll { $0.name == name }
    }

    /// Removes the first field (or first list element) of `name`, as a proxy strips its own Via.
    public mutating func removeFirstElement(_ name: SIPHeaderName) {
        guard let index = fields.firstIndex(where: { $0.name == name }) else { return }
        var elements = splitSIPList(fields[index].value)
        if elements.count <= 1 {
            fields.remove(at: index)
        } else {
            elements.removeFirst()
            fields[index].value = elements.joined(separator: ", ")
        }
    }
}
