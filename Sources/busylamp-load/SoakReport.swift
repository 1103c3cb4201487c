import Foundation

/// What a soak's phones believe at its end, and what happened on the way: the JSON that
/// scripts/soak holds against the server's admin API.
struct SoakReport: Codable {
    struct PhoneState: Codable {
        var ext: String
        /// Its last REGISTER got 200.
        var registered: Bool
    }

    struct WatchState: Codable {
        var watcher: String
        var target: String
        /// Accepted and neither refused nor ended since.
        var active: Bool
        /// The lamp of the last NOTIFY (`idle`, `ringing`, `busy`), nil before the first.
        var state: String?
        var notifies: Int
    }

    var counts: [String: Int] = [:]
    /// Failures by kind: timeouts, unexpected 4xx/5xx/6xx, NOTIFYs that ended a subscription.
    var failures: [String: Int] = [:]
    var failureSamples: [String] = []
    /// Seconds from the start at which each stage began.
    var timeline: [String: Double] = [:]
    var phones: [PhoneState] = []
    var watches: [WatchState] = []
    /// Calls placed after the warm-up; calls still up when the report was made.
    var callsInRun = 0
    var callsLeftUp = 0

    var failureCount: Int { failures.values.reduce(0, +) }

    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// A few lines for a person: the counts and the failures.
    func summary() -> String {
        var lines = ["soak: \(phones.count) phones, \(watches.count) subscriptions, \(callsInRun) calls after warm-up"]
        for (name, value) in counts.sorted(by: { $0.key < $1.key }) { lines.append("  \(name): \(value)") }
        lines.append("  failures: \(failureCount)")
        for (name, value) in failures.sorted(by: { $0.key < $1.key }) { lines.append("    \(name): \(value)") }
        for sample in failureSamples.prefix(10) { lines.append("    e.g. \(sample)") }
        return lines.joined(separator: "\n")
    }
}
