import Foundation

/// The directory file every end-to-end test serves: one account, `acme`, with four lines.
///
/// User names are the lines' numbers (INTERFACE.md); the digest realm is the domain.
struct DirectoryFixture {
    struct Line {
        var extensionNumber: String
        var number: String
        var name: String
        var password: String
    }

    static let domain = "sip.busylamp.test"
    /// RFC 3261 §10.3: REGISTER below this gets 423 with Min-Expires.
    static let minimumExpires = 60
    static let maximumExpires = 3600

    static let alice = Line(extensionNumber: "201", number: "6495550201", name: "Alice", password: "alice-secret")
    static let bob = Line(extensionNumber: "202", number: "6495550202", name: "Bob", password: "bob-secret")
    static let joe = Line(extensionNumber: "203", number: "6495550203", name: "Joe", password: "joe-secret")
    static let leo = Line(extensionNumber: "204", number: "6495550204", name: "Leo", password: "leo-secret")
    static let lines = [alice, bob, joe, leo]

    /// The YAML of INTERFACE.md's directory file.
    static var yaml: String {
        var text = """
            domain: \(domain)
            presence_default: true
            min_expires: \(minimumExpires)
            max_expires: \(maximumExpires)
            accounts:
              - id: acme
                name: Acme Ltd
                lines:

            """
        for line in lines {
            text += """
                      - extension: "\(line.extensionNumber)"
                        number: "\(line.number)"
                        name: \(line.name)
                        password: \(line.password)

                """
        }
        return text
    }

    /// Writes the file into `directory` and returns its URL.
    static func write(into directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("directory.yaml")
        try yaml.write(to: url, atomically: true, encoding: .utf8)
        return url
    }
}
