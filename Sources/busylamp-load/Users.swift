import Foundation

/// One simulated phone's identity: who it is, whom it dials or watches, and its digest secret.
struct SimulatedUser: Sendable, Hashable {
    /// The From user (the line's number).
    var user: String
    /// The Request-URI user: the watched line of a SUBSCRIBE, the dialled number of an INVITE.
    var target: String
    /// The digest user name; `nil` when the phone has no credentials (a trunk).
    var authUser: String?
    var password: String?
}

/// Reads users from the CSV files the SIPp benches write (`bench/subscribe/generate.py`,
/// `bench/calls/bench.py`), or makes them from a pattern.
///
/// The CSV format is SIPp's injection file: an optional first line `SEQUENTIAL` (or `RANDOM`),
/// then `user;target;[authentication username=U password=P]`, the third field optional.
enum UserSource {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func load(csv path: String) throws -> [SimulatedUser] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "cannot read \(path)")
        }
        var users: [SimulatedUser] = []
        // bytes, not String lines: a 100,000-line file loads in milliseconds
        for (number, rawLine) in data.split(separator: UInt8(ascii: "\n")).enumerated() {
            let line = rawLine.last == UInt8(ascii: "\r") ? rawLine.dropLast() : rawLine[...]
            let fields = line.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false).map {
                String(decoding: $0, as: UTF8.self)
            }
            if fields.count < 2 || fields[0].isEmpty || fields[0].hasPrefix("#") {
                guard number == 0 || fields.allSatisfy(\.isEmpty) else {
                    throw Failure(description: "\(path):\(number + 1): not user;target;[authentication ...]")
                }
                continue  // SEQUENTIAL / RANDOM, or a blank line
            }
            var user = SimulatedUser(user: fields[0], target: fields[1])
            if fields.count > 2, !fields[2].isEmpty {
                guard let (name, password) = authentication(fields[2]) else {
                    throw Failure(
                        description: "\(path):\(number + 1): third field is not [authentication username=U password=P]"
                    )
                }
                user.authUser = name
                user.password = password
            }
            users.append(user)
        }
        guard !users.isEmpty else { throw Failure(description: "\(path) has no users") }
        return users
    }

    /// `[authentication username=U password=P]` → (U, P).
    static func authentication(_ field: String) -> (String, String)? {
        var name: String?
        var password: String?
        for word in field.split(whereSeparator: { $0 == " " || $0 == "[" || $0 == "]" }) {
            if word.hasPrefix("username=") { name = String(word.dropFirst("username=".count)) }
            if word.hasPrefix("password=") { password = String(word.dropFirst("password=".count)) }
        }
        guard let name, let password else { return nil }
        return (name, password)
    }

    /// `count` users named `prefix` + (start + i) zero-padded to `width`; each targets the next
    /// (wrapping), or `target` when given. `{user}` and `{i}` in the password pattern are replaced.
    static func generate(
        count: Int,
        prefix: String,
        start: Int,
        width: Int,
        passwordPattern: String,
        target: String?
    ) -> [SimulatedUser] {
        func name(_ i: Int) -> String {
            let digits = String(start + i)
            return prefix + String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return (0..<count).map { i in
            let user = name(i)
            let password = passwordPattern.replacingOccurrences(of: "{user}", with: user)
                .replacingOccurrences(of: "{i}", with: String(i))
            return SimulatedUser(
                user: user,
                target: target ?? name((i + 1) % count),
                authUser: user,
                password: password
            )
        }
    }
}
