import Foundation
import Yams

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The directory file of INTERFACE.md: platform settings, trunks, accounts and their lines, in
/// YAML.
///
/// It promises that a ``Directory`` it returns is whole and consistent: every required field is
/// present, every value is valid, account ids and trunk names are unique, numbers are unique on
/// the platform and extensions within their account. Passwords are turned into HA1 hashes at once
/// (realm = `domain`, user name = the line's number) and are not kept.
///
/// The first problem found is thrown as a ``DirectoryFileError`` that names the file and the
/// line, so that `busylamp import` and `serve --directory` can refuse the file before starting.
public enum DirectoryFile {
    /// Reads and validates the file at `url`.
    public static func load(contentsOf url: URL) throws(DirectoryFileError) -> Directory {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw DirectoryFileError(
                file: url.lastPathComponent,
                line: nil,
                problem: "cannot read the file (\(error.localizedDescription))"
            )
        }
        return try parse(text, fileName: url.lastPathComponent)
    }

    /// Validates the YAML text of a directory file; `fileName` is only used in errors.
    public static func parse(
        _ yaml: String,
        fileName: String = "directory.yaml"
    ) throws(DirectoryFileError) -> Directory {
        var reader = Reader(fileName: fileName)
        do {
            return try reader.read(yaml)
        } catch let error as DirectoryFileError {
            throw error
        } catch let error as YamlError {
            throw reader.error(for: error)
        } catch {
            throw DirectoryFileError(file: fileName, line: nil, problem: "\(error)")
        }
    }
}

/// A directory file that cannot be used: which file, which line, and what is wrong with it.
///
/// Printed as `directory.yaml:14: line 201: duplicate extension "201" in account acme`.
public struct DirectoryFileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file's name (not its full path).
    public var file: String
    /// The 1-based line the problem is on, when it is on one.
    public var line: Int?
    /// What is wrong, naming the account, line or trunk it is about.
    public var problem: String

    public init(file: String, line: Int?, problem: String) {
        self.file = file
        self.line = line
        self.problem = problem
    }

    public var description: String {
        if let line { return "\(file):\(line): \(problem)" }
        return "\(file): \(problem)"
    }
}

// MARK: - Reading

extension DirectoryFile {
    /// The keys each level of the file accepts; anything else is refused, so that a misspelt
    /// optional key (`presense: false`) is not silently ignored.
    enum Keys {
        static let top: Set<String> = [
            "domain", "presence_default", "min_expires", "max_expires", "trunks", "accounts",
        ]
        static let trunk: Set<String> = ["name", "address", "transport"]
        static let account: Set<String> = ["id", "name", "presence", "same_network_only", "pickup", "lines"]
        static let pickup: Set<String> = ["directed", "group"]
        static let line: Set<String> = ["extension", "number", "name", "password", "group", "presence"]
    }

    /// Walks the node tree. Each `read…` method is handed a subject prefix (`line 201: `) so that
    /// the messages name what they are about.
    struct Reader {
        let fileName: String

        init(fileName: String) {
            self.fileName = fileName
        }

        func error(_ problem: String, at node: Node?) -> DirectoryFileError {
            DirectoryFileError(file: fileName, line: node?.mark?.line, problem: problem)
        }

        func error(for yamlError: YamlError) -> DirectoryFileError {
            switch yamlError {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
                .composer(_, let problem, let mark, _):
                return DirectoryFileError(file: fileName, line: mark.line, problem: "not valid YAML: \(problem)")
            case .duplicatedKeysInMapping(let duplicates, let context):
                let names = duplicates.map { "\"\($0)\"" }.joined(separator: ", ")
                return DirectoryFileError(file: fileName, line: context.mark.line, problem: "duplicate key \(names)")
            default:
                return DirectoryFileError(file: fileName, line: nil, problem: "not valid YAML: \(yamlError)")
            }
        }

        mutating func read(_ yaml: String) throws -> Directory {
            guard let root = try Yams.compose(yaml: yaml) else {
                throw DirectoryFileError(file: fileName, line: nil, problem: "the file is empty")
            }
            let top = try fields(of: root, allowed: Keys.top, subject: "")

            guard let domainNode = top["domain"] else { throw error("missing \"domain\"", at: root) }
            let domain = try string(domainNode, key: "domain", subject: "")
            guard Self.isDomain(domain) else {
                throw error("\"domain\" must be a host name or IP address, not \"\(domain)\"", at: domainNode)
            }
            var platform = PlatformSettings(domain: domain)
            if let node = top["presence_default"] {
                platform.presenceDefault = try bool(node, key: "presence_default", subject: "")
            }
            if let node = top["min_expires"] {
                platform.minimumExpires = try integer(node, key: "min_expires", subject: "", minimum: 0)
            }
            if let node = top["max_expires"] {
                platform.maximumExpires = try integer(node, key: "max_expires", subject: "", minimum: 1)
            }
            if platform.minimumExpires > platform.maximumExpires {
                throw error(
                    "min_expires (\(platform.minimumExpires)) is greater than max_expires (\(platform.maximumExpires))",
                    at: top["min_expires"] ?? top["max_expires"]
                )
            }

            var trunks: [Trunk] = []
            var trunkLines: [String: Int] = [:]
            for node in try list(top["trunks"], key: "trunks", subject: "") {
                let trunk = try readTrunk(node)
                if let first = trunkLines[trunk.name] {
                    throw error("duplicate trunk name \"\(trunk.name)\" (first on line \(first))", at: node)
                }
                trunkLines[trunk.name] = node.mark?.line ?? 0
                trunks.append(trunk)
            }

            var accounts: [Account] = []
            var lines: [Line] = []
            var accountLines: [String: Int] = [:]
            // Platform-wide: the number is the digest user name and the AOR.
            var numbers: [String: Line] = [:]
            for node in try list(top["accounts"], key: "accounts", subject: "") {
                let (account, lineNodes, idNode) = try readAccount(node)
                if let first = accountLines[account.id] {
                    throw error("duplicate account id \"\(account.id)\" (first on line \(first))", at: idNode)
                }
                accountLines[account.id] = idNode.mark?.line ?? 0
                accounts.append(account)

                var extensions: Set<String> = []
                for (index, lineNode) in lineNodes.enumerated() {
                    let (line, extensionNode, numberNode) = try readLine(
                        lineNode,
                        index: index,
                        account: account,
                        realm: domain
                    )
                    let subject = "line \(line.extensionNumber): "
                    guard extensions.insert(line.extensionNumber).inserted else {
                        throw error(
                            "\(subject)duplicate extension \"\(line.extensionNumber)\" in account \(account.id)",
                            at: extensionNode
                        )
                    }
                    if let other = numbers[line.number] {
                        throw error(
                            "\(subject)duplicate number \"\(line.number)\" (already line \(other.extensionNumber) of account \(other.accountID))",
                            at: numberNode
                        )
                    }
                    numbers[line.number] = line
                    lines.append(line)
                }
            }
            return Directory(platform: platform, accounts: accounts, lines: lines, trunks: trunks)
        }

        func readTrunk(_ node: Node) throws -> Trunk {
            let fields = try fields(
                of: node,
                allowed: Keys.trunk,
                subject: Self.peek(node, "name").map { "trunk \($0): " } ?? "trunk: "
            )
            guard let nameNode = fields["name"] else { throw error("trunk: missing \"name\"", at: node) }
            let name = try nonEmptyString(nameNode, key: "name", subject: "trunk: ")
            let subject = "trunk \(name): "
            guard let addressNode = fields["address"] else { throw error("\(subject)missing \"address\"", at: node) }
            let address = try string(addressNode, key: "address", subject: subject)
            guard let (host, port) = Self.hostAndPort(address) else {
                throw error(
                    "\(subject)bad address \"\(address)\" (expected IP:PORT, e.g. 192.0.2.10:5060)",
                    at: addressNode
                )
            }
            var transport = Trunk.Transport.udp
            if let transportNode = fields["transport"] {
                let value = try string(transportNode, key: "transport", subject: subject)
                guard let parsed = Trunk.Transport(rawValue: value.lowercased()) else {
                    throw error("\(subject)\"transport\" must be udp or tcp, not \"\(value)\"", at: transportNode)
                }
                transport = parsed
            }
            return Trunk(name: name, host: host, port: port, transport: transport)
        }

        func readAccount(_ node: Node) throws -> (Account, [Node], Node) {
            let fields = try fields(
                of: node,
                allowed: Keys.account,
                subject: Self.peek(node, "id").map { "account \($0): " } ?? "account: "
            )
            guard let idNode = fields["id"] else { throw error("account: missing \"id\"", at: node) }
            let id = try nonEmptyString(idNode, key: "id", subject: "account: ")
            let subject = "account \(id): "
            var account = Account(id: id)
            if let node = fields["name"] { account.name = try string(node, key: "name", subject: subject) }
            if let node = fields["presence"] { account.presence = try bool(node, key: "presence", subject: subject) }
            if let node = fields["same_network_only"] {
                account.sameNetworkOnly = try bool(node, key: "same_network_only", subject: subject)
            }
            if let pickupNode = fields["pickup"] {
                let pickup = try self.fields(of: pickupNode, allowed: Keys.pickup, subject: "\(subject)pickup: ")
                if let node = pickup["directed"] {
                    account.pickup.directed = try featureCode(node, key: "directed", subject: "\(subject)pickup: ")
                }
                if let node = pickup["group"] {
                    account.pickup.group = try featureCode(node, key: "group", subject: "\(subject)pickup: ")
                }
            }
            let lines = try list(fields["lines"], key: "lines", subject: subject)
            return (account, lines, idNode)
        }

        func readLine(_ node: Node, index: Int, account: Account, realm: String) throws -> (Line, Node, Node) {
            let unnamed = "account \(account.id): line #\(index + 1): "
            let fields = try fields(
                of: node,
                allowed: Keys.line,
                subject: Self.peek(node, "extension").map { "line \($0): " } ?? unnamed
            )
            guard let extensionNode = fields["extension"] else {
                throw error("\(unnamed)missing \"extension\"", at: node)
            }
            let extensionNumber = try digits(extensionNode, key: "extension", subject: unnamed)
            let subject = "line \(extensionNumber): "
            guard let numberNode = fields["number"] else { throw error("\(subject)missing \"number\"", at: node) }
            let number = try digits(numberNode, key: "number", subject: subject)
            guard let passwordNode = fields["password"] else { throw error("\(subject)missing \"password\"", at: node) }
            let password = try nonEmptyString(passwordNode, key: "password", subject: subject)

            var line = Line(
                accountID: account.id,
                extensionNumber: extensionNumber,
                number: number,
                credentials: Line.credentials(number: number, realm: realm, password: password)
            )
            if let node = fields["name"] { line.name = try string(node, key: "name", subject: subject) }
            if let node = fields["group"] { line.group = try nonEmptyString(node, key: "group", subject: subject) }
            if let node = fields["presence"] { line.presence = try bool(node, key: "presence", subject: subject) }
            return (line, extensionNode, numberNode)
        }

        // MARK: Values

        /// The mapping's values by key, refusing keys not in `allowed`. A key whose value is null
        /// (`key:` or `key: ~`) counts as absent.
        func fields(of node: Node, allowed: Set<String>, subject: String) throws -> [String: Node] {
            guard case .mapping(let mapping) = node else {
                throw error("\(subject)expected a mapping of keys and values", at: node)
            }
            var result: [String: Node] = [:]
            for (keyNode, value) in mapping {
                guard case .scalar(let key) = keyNode, allowed.contains(key.string) else {
                    let name = keyNode.scalar?.string ?? "\(keyNode)"
                    let expected = allowed.sorted().joined(separator: ", ")
                    throw error("\(subject)unknown key \"\(name)\" (expected one of: \(expected))", at: keyNode)
                }
                if Self.isNull(value) { continue }
                result[key.string] = value
            }
            return result
        }

        func list(_ node: Node?, key: String, subject: String) throws -> [Node] {
            guard let node else { return [] }
            guard case .sequence(let sequence) = node else {
                throw error("\(subject)\"\(key)\" must be a list", at: node)
            }
            return Array(sequence)
        }

        func string(_ node: Node, key: String, subject: String) throws -> String {
            guard case .scalar(let scalar) = node else {
                throw error("\(subject)\"\(key)\" must be a single value", at: node)
            }
            return scalar.string
        }

        func nonEmptyString(_ node: Node, key: String, subject: String) throws -> String {
            let value = try string(node, key: key, subject: subject)
            guard !value.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw error("\(subject)\"\(key)\" must not be empty", at: node)
            }
            return value
        }

        func digits(_ node: Node, key: String, subject: String) throws -> String {
            let value = try string(node, key: key, subject: subject)
            guard !value.isEmpty, value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                throw error("\(subject)\"\(key)\" must be digits, not \"\(value)\"", at: node)
            }
            return value
        }

        /// A code dialled on a keypad: digits, `*` and `#`.
        func featureCode(_ node: Node, key: String, subject: String) throws -> String {
            let value = try string(node, key: key, subject: subject)
            let keypad = Set("0123456789*#".utf8)
            guard !value.isEmpty, value.utf8.allSatisfy(keypad.contains) else {
                throw error("\(subject)\"\(key)\" must be a keypad code (digits, * and #), not \"\(value)\"", at: node)
            }
            return value
        }

        /// `true` or `false` (YAML 1.1's `yes`/`no`/`on`/`off` too); a quoted string is refused.
        func bool(_ node: Node, key: String, subject: String) throws -> Bool {
            guard case .scalar(let scalar) = node, let value = Bool.construct(from: scalar) else {
                let shown = node.scalar?.string ?? "a list or mapping"
                throw error("\(subject)\"\(key)\" must be true or false, not \"\(shown)\"", at: node)
            }
            return value
        }

        func integer(_ node: Node, key: String, subject: String, minimum: Int) throws -> Int {
            let value = try string(node, key: key, subject: subject)
            guard let number = Int(value), number >= minimum else {
                let kind = minimum > 0 ? "a positive whole number" : "a whole number, not negative"
                throw error("\(subject)\"\(key)\" must be \(kind), not \"\(value)\"", at: node)
            }
            return number
        }

        /// The scalar value of `key` in a mapping, read before the mapping is checked, so that an
        /// error about the entry can name it.
        static func peek(_ node: Node, _ key: String) -> String? {
            guard case .mapping(let mapping) = node, case .scalar(let scalar)? = mapping[key], !scalar.string.isEmpty
            else {
                return nil
            }
            return scalar.string
        }

        static func isNull(_ node: Node) -> Bool {
            guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else { return false }
            return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
        }

        static func isDomain(_ value: String) -> Bool {
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-".utf8)
            return !value.isEmpty && value.utf8.allSatisfy(allowed.contains) || isIPAddress(value)
        }

        /// `IPv4:PORT` or `[IPv6]:PORT`. A trunk is matched by the address packets come from, so
        /// a host name (which would never match) is refused.
        static func hostAndPort(_ value: String) -> (String, Int)? {
            let host: Substring
            let portText: Substring
            if value.hasPrefix("[") {
                guard let close = value.firstIndex(of: "]") else { return nil }
                host = value[value.index(after: value.startIndex)..<close]
                let rest = value[value.index(after: close)...]
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            } else {
                guard let colon = value.lastIndex(of: ":") else { return nil }
                host = value[..<colon]
                portText = value[value.index(after: colon)...]
                guard !host.contains(":") else { return nil }
            }
            guard let port = Int(portText), (1...65535).contains(port), isIPAddress(String(host)) else { return nil }
            return (String(host), port)
        }

        static func isIPAddress(_ value: String) -> Bool {
            var v4 = in_addr()
            var v6 = in6_addr()
            return inet_pton(AF_INET, value, &v4) == 1 || inet_pton(AF_INET6, value, &v6) == 1
        }
    }
}
