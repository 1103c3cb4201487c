/// The header fields of a message, in order, as they were received or built.
///
/// Lookups compare names case-insensitively with compact forms folded (`SIPHeaderName`).
/// Values are carried as written; typed accessors (`SIPMessage+Headers.swift`) parse on demand.
///
/// A parsed message's headers keep the message bytes once (`source`, shared, never copied) and
/// each field as a known-name byte plus the range of its value: no string exists until someone
/// reads a value (`subscript`, `values`, `fields`), and a field that is added or set carries its
/// own string. Equality and hashing look at names and value bytes only, so parsed and built
/// headers with the same fields are equal.
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

    /// One field: its name (known, built, or a range of `source`) and its value (built, or a
    /// range of `source`). Plain integers, so that copying and scanning fields costs no
    /// reference counting; built names and values live in `strings`.
    struct Entry: Sendable {
        var known: KnownHeader?
        /// The name of a parsed extension header in `source`.
        var nameStart: Int32
        var nameEnd: Int32
        /// The value's range in `source`, unless `builtValue` names a string.
        var valueStart: Int32
        var valueEnd: Int32
        /// Index in `strings` of an extension header's built name, or -1.
        var builtName: Int32
        /// Index in `strings` of the value when built, set, or unfolded from several lines, or -1.
        var builtValue: Int32

        init(known: KnownHeader?, name: Range<Int>, value: Range<Int>) {
            self.known = known
            self.nameStart = Int32(truncatingIfNeeded: name.lowerBound)
            self.nameEnd = Int32(truncatingIfNeeded: name.upperBound)
            self.valueStart = Int32(truncatingIfNeeded: value.lowerBound)
            self.valueEnd = Int32(truncatingIfNeeded: value.upperBound)
            self.builtName = -1
            self.builtValue = -1
        }

        var valueRange: Range<Int> { Int(valueStart)..<Int(valueEnd) }
        var nameRange: Range<Int> { Int(nameStart)..<Int(nameEnd) }
    }

    /// The bytes of the message the fields were parsed from (empty for built headers).
    var source: [UInt8]
    var entries: [Entry]
    /// Names and values that are not ranges of `source`.
    var strings: [String]

    public init() {
        source = []
        entries = []
        strings = []
    }

    public init(_ fields: [(SIPHeaderName, String)]) {
        self.init()
        for (name, value) in fields { add(name, value) }
    }

    /// Headers over `source` (the parser's constructor).
    init(source: [UInt8], entries: [Entry], strings: [String]) {
        self.source = source
        self.entries = entries
        self.strings = strings
    }

    /// A field that carries its own name and value.
    private mutating func makeEntry(_ name: SIPHeaderName, _ value: String) -> Entry {
        var entry = Entry(known: name.known, name: 0..<0, value: 0..<0)
        if name.known == nil {
            entry.builtName = Int32(strings.count)
            strings.append(name.custom)
        }
        entry.builtValue = Int32(strings.count)
        strings.append(value)
        return entry
    }

    /// Gives the field at `index` the value `value`.
    private mutating func setValue(at index: Int, _ value: String) {
        let slot = entries[index].builtValue
        if slot >= 0 {
            strings[Int(slot)] = value
        } else {
            entries[index].builtValue = Int32(strings.count)
            strings.append(value)
        }
    }

    /// Drops the strings no field refers to any more, once they outnumber the fields.
    private mutating func compactStrings() {
        guard strings.count > 2 * entries.count + 16 else { return }
        var kept: [String] = []
        for index in entries.indices {
            if entries[index].builtName >= 0 {
                kept.append(strings[Int(entries[index].builtName)])
                entries[index].builtName = Int32(kept.count - 1)
            }
            if entries[index].builtValue >= 0 {
                kept.append(strings[Int(entries[index].builtValue)])
                entries[index].builtValue = Int32(kept.count - 1)
            }
        }
        strings = kept
    }

    /// The same fields with every name and value copied into one buffer of just their bytes:
    /// what a message that is kept a while should hold. Built headers carry a string per field
    /// and parsed ones the whole datagram they came from; a server transaction keeps its final
    /// response 32 s over UDP, and those small blocks, freed long after the subscriptions made
    /// beside them, fragmented the heap (issue 10).
    public func compacted() -> SIPHeaders {
        var bytes: [UInt8] = []
        var packed: [Entry] = []
        packed.reserveCapacity(entries.count)
        for entry in entries {
            var copy = entry
            copy.builtName = -1
            copy.builtValue = -1
            if entry.known == nil {
                let start = bytes.count
                if entry.builtName >= 0 {
                    bytes.append(contentsOf: strings[Int(entry.builtName)].utf8)
                } else {
                    bytes.append(contentsOf: source[entry.nameRange])
                }
                copy.nameStart = Int32(truncatingIfNeeded: start)
                copy.nameEnd = Int32(truncatingIfNeeded: bytes.count)
            }
            let start = bytes.count
            withValueBytes(entry) { bytes.append(contentsOf: $0) }
            copy.valueStart = Int32(truncatingIfNeeded: start)
            copy.valueEnd = Int32(truncatingIfNeeded: bytes.count)
            packed.append(copy)
        }
        return SIPHeaders(source: bytes, entries: packed, strings: [])
    }

    /// Bytes held for the fields: the source buffer and every built string (for tests of
    /// `compacted()`).
    public var storedByteCount: Int { source.count + strings.reduce(0) { $0 + $1.utf8.count } }

    /// Every field, names and values as strings.
    public var fields: [Field] { entries.map(field) }

    public var count: Int { entries.count }

    public struct Iterator: IteratorProtocol {
        let headers: SIPHeaders
        var index = 0

        public mutating func next() -> Field? {
            guard index < headers.entries.count else { return nil }
            defer { index += 1 }
            return headers.field(headers.entries[index])
        }
    }

    public func makeIterator() -> Iterator { Iterator(headers: self) }

    /// The first field's value of `name`.
    public subscript(name: SIPHeaderName) -> String? {
        firstIndex(of: name).map { value(entries[$0]) }
    }

    /// Every field's value of `name`, in order, not split at commas.
    public func values(_ name: SIPHeaderName) -> [String] {
        var result: [String] = []
        for entry in entries where matches(entry, name) { result.append(value(entry)) }
        return result
    }

    /// Every list element of `name` (fields split at their separating commas, RFC 3261 §7.3.1).
    public func listElements(_ name: SIPHeaderName) -> [String] {
        values(name).flatMap(splitSIPList)
    }

    public func contains(_ name: SIPHeaderName) -> Bool { firstIndex(of: name) != nil }

    public mutating func add(_ name: SIPHeaderName, _ value: String) {
        let entry = makeEntry(name, value)
        entries.append(entry)
    }

    /// Adds a field before all others (a proxy's own Via, RFC 3261 §16.6 step 8).
    public mutating func prepend(_ name: SIPHeaderName, _ value: String) {
        let entry = makeEntry(name, value)
        entries.insert(entry, at: 0)
    }

    /// Replaces every field of `name` by one field with `value`, at the first one's place.
    public mutating func set(_ name: SIPHeaderName, _ value: String) {
        if let first = firstIndex(of: name) {
            setValue(at: first, value)
            var index = entries.count - 1
            while index > first {
                if matches(entries[index], name) { entries.remove(at: index) }
                index -= 1
            }
            compactStrings()
        } else {
            add(name, value)
        }
    }

    public mutating func remove(_ name: SIPHeaderName) {
        let source = self.source
        let strings = self.strings
        entries.removeAll { SIPHeaders.matches($0, name, source: source, strings: strings) }
        compactStrings()
    }

    /// Removes the first field (or first list element) of `name`, as a proxy strips its own Via.
    public mutating func removeFirstElement(_ name: SIPHeaderName) {
        guard let index = firstIndex(of: name) else { return }
        var elements = splitSIPList(value(entries[index]))
        if elements.count <= 1 {
            entries.remove(at: index)
            compactStrings()
        } else {
            elements.removeFirst()
            setValue(at: index, elements.joined(separator: ", "))
        }
    }

    // MARK: Equality and hashing over names and value bytes

    public static func == (lhs: SIPHeaders, rhs: SIPHeaders) -> Bool {
        guard lhs.entries.count == rhs.entries.count else { return false }
        for (left, right) in zip(lhs.entries, rhs.entries) {
            guard lhs.name(left) == rhs.name(right) else { return false }
            let equal = lhs.withValueBytes(left) { a in rhs.withValueBytes(right) { b in a.elementsEqual(b) } }
            guard equal else { return false }
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(entries.count)
        for entry in entries {
            hasher.combine(name(entry))
            withValueBytes(entry) { bytes in
                hasher.combine(bytes.count)
                hasher.combine(bytes: UnsafeRawBufferPointer(bytes))
            }
        }
    }

    // MARK: Internal access without strings

    func name(_ entry: Entry) -> SIPHeaderName {
        if let known = entry.known { return SIPHeaderName(known: known) }
        if entry.builtName >= 0 { return SIPHeaderName(customSpelling: strings[Int(entry.builtName)]) }
        return SIPHeaderName(customSpelling: String(decoding: source[entry.nameRange], as: UTF8.self))
    }

    func value(_ entry: Entry) -> String {
        if entry.builtValue >= 0 { return strings[Int(entry.builtValue)] }
        return String(decoding: source[entry.valueRange], as: UTF8.self)
    }

    func field(_ entry: Entry) -> Field { Field(name: name(entry), value: value(entry)) }

    func matches(_ entry: Entry, _ name: SIPHeaderName) -> Bool {
        SIPHeaders.matches(entry, name, source: source, strings: strings)
    }

    static func matches(_ entry: Entry, _ name: SIPHeaderName, source: [UInt8], strings: [String]) -> Bool {
        if let known = name.known { return entry.known == known }
        if entry.known != nil { return false }
        if entry.builtName >= 0 { return strings[Int(entry.builtName)].caseInsensitiveEquals(name.custom) }
        let range = entry.nameRange
        let custom = name.custom.utf8
        guard custom.count == range.count else { return false }
        return zip(source[range], custom).allSatisfy { $0.asciiLowercased == $1.asciiLowercased }
    }

    func firstIndex(of name: SIPHeaderName) -> Int? {
        if let known = name.known { return firstIndex(of: known) }
        return entries.firstIndex { matches($0, name) }
    }

    func firstIndex(of known: KnownHeader) -> Int? {
        entries.firstIndex { $0.known == known }
    }

    /// Calls `body` with the value's bytes, wherever they are kept.
    func withValueBytes<Result>(
        _ entry: Entry,
        _ body: (UnsafeBufferPointer<UInt8>) throws -> Result
    ) rethrows -> Result {
        if entry.builtValue >= 0 {
            var builtValue = strings[Int(entry.builtValue)]
            return try builtValue.withUTF8(body)
        }
        return try source.withUnsafeBufferPointer { buffer in
            try body(UnsafeBufferPointer(rebasing: buffer[entry.valueRange]))
        }
    }
}
