import Foundation
import Hummingbird

/// A JSON value as sent, so that a body can be checked field by field: unknown fields, wrong
/// types and `null` (which unsets a setting) are told apart, which `Decodable` alone cannot do.
enum JSONValue: Decodable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// A request body that is a JSON object, read once and checked field by field.
///
/// Every accessor throws ``APIError`` 400 naming the field: unknown fields are refused (a typo
/// must not be silently ignored), and every value is checked for type and form.
struct JSONObjectBody: Sendable {
    /// INTERFACE.md "Bad input and limits": bodies over this are refused with 413.
    static let maximumBytes = 64 * 1024

    let fields: [String: JSONValue]
    /// Where field names in errors start (`pickup.directed`).
    let prefix: String

    init(fields: [String: JSONValue], prefix: String = "") {
        self.fields = fields
        self.prefix = prefix
    }

    static func read(_ request: Request, allowed: Set<String>) async throws -> JSONObjectBody {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maximumBytes)
        } catch {
            throw APIError(.contentTooLarge, "body_too_large", "the body is larger than \(maximumBytes) bytes")
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(buffer.readableBytesView))
        } catch {
            throw APIError.badRequest("the body is not valid JSON")
        }
        guard case .object(let fields) = value else {
            throw APIError.badRequest("the body must be a JSON object, not \(value.typeName)")
        }
        let body = JSONObjectBody(fields: fields)
        try body.refuseUnknown(allowed: allowed)
        return body
    }

    func refuseUnknown(allowed: Set<String>) throws {
        if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError.badField(prefix + unknown, "unknown field")
        }
    }

    func has(_ name: String) -> Bool { fields[name] != nil }

    /// A string field, absent → nil; checked by `validate` (which throws with the detail).
    func string(_ name: String, validate: (String) -> String? = { _ in nil }) throws -> String? {
        guard let value = fields[name] else { return nil }
        guard case .string(let text) = value else {
            throw APIError.badField(prefix + name, "must be a string, not \(value.typeName)")
        }
        if let problem = validate(text) { throw APIError.badField(prefix + name, problem) }
        return text
    }

    func requiredString(_ name: String, validate: (String) -> String? = { _ in nil }) throws -> String {
        guard let text = try string(name, validate: validate) else {
            throw APIError.badField(prefix + name, "is required")
        }
        return text
    }

    func bool(_ name: String) throws -> Bool? {
        guard let value = fields[name] else { return nil }
        guard case .bool(let flag) = value else {
            throw APIError.badField(prefix + name, "must be true or false, not \(value.typeName)")
        }
        return flag
    }

    /// A setting that `null` unsets: absent → `.none`, null → `.some(nil)`.
    func optionalBool(_ name: String) throws -> Bool?? {
        guard let value = fields[name] else { return .none }
        switch value {
        case .null: return .some(nil)
        case .bool(let flag): return .some(flag)
        default: throw APIError.badField(prefix + name, "must be true, false or null, not \(value.typeName)")
        }
    }

    func object(_ name: String, allowed: Set<String>) throws -> JSONObjectBody? {
        guard let value = fields[name] else { return nil }
        guard case .object(let inner) = value else {
            throw APIError.badField(prefix + name, "must be an object, not \(value.typeName)")
        }
        let body = JSONObjectBody(fields: inner, prefix: prefix + name + ".")
        try body.refuseUnknown(allowed: allowed)
        return body
    }
}

/// The forms of the directory's values (INTERFACE.md, docs/admin-api.md).
enum FieldRules {
    static func digits(_ text: String, length: ClosedRange<Int>) -> String? {
        guard length.contains(text.count) else { return "must be \(length.lowerBound) to \(length.upperBound) digits" }
        guard text.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) else { return "must be digits only" }
        return nil
    }

    static func extensionNumber(_ text: String) -> String? { digits(text, length: 1...16) }
    static func number(_ text: String) -> String? { digits(text, length: 3...20) }

    static func accountID(_ text: String) -> String? {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_-")
        guard (1...64).contains(text.count), let first = text.first, first.isLetter || first.isNumber,
            text.allSatisfy({ allowed.contains($0) })
        else { return "must be 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit" }
        return nil
    }

    /// Printable text: no control or format characters (a NUL or a newline in a group name
    /// would end up in phones' configuration files and logs).
    static func printable(_ text: String, length: ClosedRange<Int>) -> String? {
        guard length.contains(text.count) else {
            return "must be \(length.lowerBound) to \(length.upperBound) characters"
        }
        for scalar in text.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned:
                return "must not contain control characters"
            default: continue
            }
        }
        return nil
    }

    static func name(_ text: String) -> String? { printable(text, length: 0...100) }

    static func group(_ text: String) -> String? {
        if let problem = printable(text, length: 1...64) { return problem }
        if text.trimmingCharacters(in: .whitespaces) != text { return "must not start or end with spaces" }
        return nil
    }

    static func password(_ text: String) -> String? { printable(text, length: 1...128) }

    /// Pickup codes: what a phone dials, `*`, `#` and digits.
    static func pickupCode(_ text: String) -> String? {
        guard (1...8).contains(text.count), text.allSatisfy({ "0123456789*#".contains($0) }) else {
            return "must be 1 to 8 of the characters 0-9, * and #"
        }
        return nil
    }
}
