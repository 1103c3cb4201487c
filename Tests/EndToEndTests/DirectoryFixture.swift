import Foundation

/// The directory file every end-to-end test serves: one account, `acme`, with four lines.
///
/// User names are the lines' numbers (INTERFACE.md); the digest realm is the domain.
/// A test that needs another directory (`subscriptionYAML`) serves it with `serving(_:_:)`.
struct DirectoryFixture {
    struct Line: Sendable {
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

    /// Writes the file into `directory` and returns its URL: `yaml`, or the text that
    /// `serving(_:_:)` put in place for the task that starts the server.
    static func write(into directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("directory.yaml")
        try (servedYAML ?? yaml).write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// The directory text servers started inside `serving(_:_:)` load instead of `yaml`.
    @TaskLocal static var servedYAML: String?

    /// Runs `body` (which starts servers, e.g. `withServer`) with `text` as the directory file.
    static func serving<Result>(
        _ text: String,
        _ body: () async throws -> Result
    ) async rethrows -> Result {
        try await $servedYAML.withValue(text) { try await body() }
    }
}

// MARK: - The subscription tests' directory

extension DirectoryFixture {
    /// An `acme` line with presence off (`presence: false` on the line).
    static let mia = Line(extensionNumber: "205", number: "6495550205", name: "Mia", password: "mia-secret")
    /// An `acme` line in group SALES; the other `acme` lines are in the default group.
    static let sam = Line(extensionNumber: "206", number: "6495550206", name: "Sam", password: "sam-secret")
    /// Account `globex`, presence off for the whole account (`presence: false`).
    static let gus = Line(extensionNumber: "301", number: "6495550301", name: "Gus", password: "gus-secret")
    static let hal = Line(extensionNumber: "302", number: "6495550302", name: "Hal", password: "hal-secret")
    /// Account `initech`, `same_network_only: true`.
    static let ian = Line(extensionNumber: "401", number: "6495550401", name: "Ian", password: "ian-secret")
    static let jan = Line(extensionNumber: "402", number: "6495550402", name: "Jan", password: "jan-secret")
    /// Account `umbrella`: no `presence` of its own or on its lines, so `presence_default` decides.
    static let kim = Line(extensionNumber: "501", number: "6495550501", name: "Kim", password: "kim-secret")
    static let lou = Line(extensionNumber: "502", number: "6495550502", name: "Lou", password: "lou-secret")

    /// `acme` as `yaml` has it plus Mia and Sam, and the accounts `globex`, `initech` and
    /// `umbrella`: one line or account for each admission rule of issue 3.
    static func subscriptionYAML(presenceDefault: Bool = true, minimumExpires: Int = minimumExpires) -> String {
        func entry(_ line: Line, _ extra: String = "") -> String {
            """
                  - extension: "\(line.extensionNumber)"
                    number: "\(line.number)"
                    name: \(line.name)
                    password: \(line.password)\(extra)

            """
        }
        return """
            domain: \(domain)
            presence_default: \(presenceDefault)
            min_expires: \(minimumExpires)
            max_expires: \(maximumExpires)
            accounts:
              - id: acme
                name: Acme Ltd
                lines:

            """ + lines.map { entry($0) }.joined()
                + entry(mia, "\n        presence: false")
                + entry(sam, "\n        group: SALES")
                    + """
                      - id: globex
                        name: Globex
                        presence: false
                        lines:

                    """ + entry(gus) + entry(hal)
                    + """
                      - id: initech
                        name: Initech
                        same_network_only: true
                        lines:

                    """ + entry(ian) + entry(jan)
                    + """
                      - id: umbrella
                        name: Umbrella
                        lines:

                    """ + entry(kim) + entry(lou)
    }
}
