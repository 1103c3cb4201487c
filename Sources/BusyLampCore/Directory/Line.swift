import SIPAuth
import SIPCore

/// A phone line of an account: the extension its colleagues dial, the number it registers
/// with (the digest user name), and its credentials as digest hashes.
///
/// A `Line` never holds a password: only HA1 = H(number ":" domain ":" password) for each
/// digest algorithm (RFC 7616 §3.4.2), computed once by ``Line/credentials(number:realm:password:)``.
public struct Line: Sendable, Hashable {
    /// The group a line belongs to when none is given; group pickup (`*88`) works within a group.
    public static let defaultGroup = "DEFAULT"

    /// The ``Account/id`` of the account the line belongs to.
    public var accountID: String
    /// The short number colleagues dial, e.g. `201`: digits only, unique within the account.
    public var extensionNumber: String
    /// The line's full number, e.g. `6495550201`: digits only, unique on the platform, and the
    /// digest user name and AOR user part.
    public var number: String
    public var name: String
    public var group: String
    /// Whether the line shows presence; `nil` follows its account.
    public var presence: Bool?
    /// HA1 per digest algorithm, lower-case hex.
    public var credentials: [DigestAlgorithm: String]

    public init(
        accountID: String,
        extensionNumber: String,
        number: String,
        name: String = "",
        group: String = Line.defaultGroup,
        presence: Bool? = nil,
        credentials: [DigestAlgorithm: String]
    ) {
        self.accountID = accountID
        self.extensionNumber = extensionNumber
        self.number = number
        self.name = name
        self.group = group
        self.presence = presence
        self.credentials = credentials
    }

    /// HA1 for every algorithm we offer. The user name is the line's number and the realm the
    /// platform domain (INTERFACE.md); the password is not kept.
    public static func credentials(number: String, realm: String, password: String) -> [DigestAlgorithm: String] {
        var result: [DigestAlgorithm: String] = [:]
        for algorithm in DigestAlgorithm.allCases {
            result[algorithm] = algorithm.ha1(username: number, realm: realm, password: password)
        }
        return result
    }
}

extension Line: CustomStringConvertible {
    /// Names the line without its credentials, so that it can be logged.
    public var description: String { "line \(accountID)/\(extensionNumber) (\(number))" }
}

extension Line {
    /// How the line is shown to the other end of a call and in dialog-info: its name and
    /// `sip:NUMBER@DOMAIN`, its address of record.
    public func identity(domain: String) -> NameAddress {
        NameAddress(displayName: name.isEmpty ? nil : name, uri: SIPURI(scheme: "sip", user: number, host: domain))
    }
}
