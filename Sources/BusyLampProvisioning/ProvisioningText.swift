/// How text from the directory is made safe for the files we write.
///
/// Names are typed by people (and by API clients): they may hold newlines, control characters
/// or markup. In a Yealink `.cfg` a newline would start a new setting; in XML a `<` or `&` would
/// break the document and a control character is not allowed at all, even escaped (XML 1.0 §2.2).
enum ProvisioningText {
    /// `text` as one line (see ``singleLine(_:)``), or `fallback` as one line when that is empty,
    /// so that a key never shows a blank label.
    static func label(_ text: String, fallback: String) -> String {
        let line = singleLine(text)
        return line.isEmpty ? singleLine(fallback) : line
    }

    /// `text` on one line: every control character, line or paragraph separator and other
    /// white space becomes a space, runs of spaces become one, and the ends are trimmed.
    static func singleLine(_ text: String) -> String {
        var out = ""
        var pendingSpace = false
        for scalar in text.unicodeScalars {
            if isBreakingOrControl(scalar) || scalar.properties.isWhitespace {
                pendingSpace = !out.isEmpty
                continue
            }
            if pendingSpace {
                out.append(" ")
                pendingSpace = false
            }
            out.unicodeScalars.append(scalar)
        }
        return out
    }

    /// The five XML special characters escaped, for both content and attribute values.
    /// Characters XML 1.0 forbids are dropped: labels have none left, but other values
    /// (a domain, say) did not pass through ``label(_:fallback:)``.
    static func xmlEscaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                guard isAllowedInXML(scalar) else { continue }
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `text` cut to at most `limit` bytes of UTF-8 without splitting a character: Polycom counts
    /// its directory fields in bytes ("UTF-8 encoded string of up to 40 bytes").
    static func truncated(_ text: String, toUTF8Bytes limit: Int) -> String {
        var out = ""
        var used = 0
        for character in text {
            let size = character.utf8.count
            guard used + size <= limit else { break }
            out.append(character)
            used += size
        }
        return out
    }

    /// `server` if it is a plain host or host:port (letters, digits, `.`, `-`, `:` and the
    /// brackets of an IPv6 literal), else nil. It ends up inside key values such as Cisco's
    /// `sub=…;nme=…`, where a `;` or a space would add or break fields.
    static func hostAndPort(_ server: String?) -> String? {
        guard let server else { return nil }
        let trimmed = server.trimmingSpaces
        guard !trimmed.isEmpty, trimmed.utf8.count <= maximumHostLength else { return nil }
        let allowed = trimmed.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (isASCIIAlphanumeric(scalar) || ".-:[]".unicodeScalars.contains(scalar))
        }
        return allowed ? trimmed : nil
    }

    /// `text` with every character outside letters, digits, `.`, `-` and `_` replaced by `_`,
    /// for a file name that goes into a `Content-Disposition` header as it is.
    static func fileNamePart(_ text: String) -> String {
        let mapped = text.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && (isASCIIAlphanumeric(scalar) || "._-".unicodeScalars.contains(scalar))
                ? Character(scalar) : "_"
        }
        return mapped.isEmpty ? "_" : String(mapped)
    }

    /// RFC 1035 §2.3.4: a domain name is at most 255 octets; a port and brackets add a few more.
    static let maximumHostLength = 262

    private static func isBreakingOrControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator: return true
        default: return false
        }
    }

    /// XML 1.0 §2.2 `Char`: tab, newline, carriage return, and U+0020 and above except the
    /// surrogates (which a `Unicode.Scalar` never is) and U+FFFE, U+FFFF.
    private static func isAllowedInXML(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x9, 0xA, 0xD: return true
        case 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: return true
        default: return false
        }
    }

    private static func isASCIIAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return false
        }
    }
}

extension String {
    /// Without leading and trailing spaces and tabs; Foundation-free so that the target needs
    /// only the standard library.
    fileprivate var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
