import Foundation
import Histogram

/// Every figure of a run, as the JSON file carries it (snake_case keys) and the table shows it.
struct LoadReport: Codable {
    struct Latency: Codable {
        var count: UInt64
        var p50_ms: Double
        var p90_ms: Double
        var p99_ms: Double
        var p99_9_ms: Double
        var max_ms: Double
        var mean_ms: Double

        init(_ histogram: Histogram<UInt64>) {
            func ms(_ micros: UInt64) -> Double { (Double(micros) / 1000 * 1000).rounded() / 1000 }
            count = histogram.totalCount
            p50_ms = ms(histogram.valueAtPercentile(50))
            p90_ms = ms(histogram.valueAtPercentile(90))
            p99_ms = ms(histogram.valueAtPercentile(99))
            p99_9_ms = ms(histogram.valueAtPercentile(99.9))
            max_ms = ms(histogram.max)
            mean_ms = ms(UInt64(histogram.mean))
        }
    }

    struct Flows: Codable {
        var started: Int
        var succeeded: Int
        var failed: Int
        var failures_by_status: [String: Int]
        var timeouts: Int
        /// Begun but neither succeeded, failed nor timed out when the run ended (drain cut short).
        var unfinished: Int
        var retransmissions: Int
        /// Retransmissions per request sent.
        var retransmission_ratio: Double
        /// From the first flow begun to the last one begun.
        var offer_window_s: Double
        var offered_per_s: Double
        var completed_per_s: Double
        var latency_ms: [String: Latency]
        var counters: [String: Int]

        init(_ stats: LoadStatistics, holdSeconds: Double) {
            started = stats.started
            succeeded = stats.succeeded
            failed = stats.failed
            failures_by_status = Dictionary(
                uniqueKeysWithValues: stats.failuresByStatus.map { (String($0.key), $0.value) }
            )
            timeouts = stats.timeouts
            unfinished = max(0, stats.started - stats.succeeded - stats.failed - stats.timeouts)
            retransmissions = stats.retransmissions
            retransmission_ratio =
                stats[.requestsSent] > 0 ? Double(stats.retransmissions) / Double(stats[.requestsSent]) : 0
            let window = Double(stats.lastStartNanos &- stats.firstStartNanos) / 1e9
            offer_window_s = (window * 1000).rounded() / 1000
            offered_per_s =
                stats.started > 1 && window > 0 ? (Double(stats.started - 1) / window).rounded() : Double(stats.started)
            // completions over the time they took: first begun → last ended, less the time a
            // call is held open on purpose (ring + talk)
            let span = Double(stats.lastCompletionNanos &- stats.firstStartNanos) / 1e9 - holdSeconds
            completed_per_s =
                span > 0 && stats.succeeded > 1
                ? (Double(stats.succeeded) / max(span, window)).rounded() : Double(stats.succeeded)
            var latency: [String: Latency] = [:]
            for metric in Metric.allCases where stats.histograms[metric.rawValue].totalCount > 0 {
                latency[metric.name] = Latency(stats.histograms[metric.rawValue])
            }
            latency_ms = latency
            counters = Dictionary(uniqueKeysWithValues: Counter.allCases.map { ($0.name, stats[$0]) })
        }
    }

    struct Lamp: Codable {
        var expected: Int
        var delivered: Int
        var p50_ms: Double
        var p99_ms: Double
        var max_ms: Double
        /// Per call, the delay until the last watcher saw the lamp: their median and worst.
        var last_median_ms: Double
        var last_max_ms: Double
    }

    struct Fanout: Codable {
        var calls: Int
        var watchers_median: Int
        var early: Lamp
        var confirmed: Lamp
        var idle: Lamp
        var notifies_received: Int
        var notifies_expected: Int
    }

    var scenario: String
    var server: String
    var domain: String
    var offered_rate_per_s: Double
    var duration_s: Double
    var threads: Int
    var wall_s: Double
    var tool_cpu_s: Double
    var flows: Flows
    var setup: Flows?
    var fanout: Fanout?

    init(plan: LoadPlan, totalRate: Double, result: RunResult) {
        scenario = plan.scenario.rawValue
        server = "\(plan.server.ipAddress ?? "?"):\(plan.server.port ?? 0)"
        domain = plan.domain
        offered_rate_per_s = totalRate
        duration_s = plan.durationSeconds
        threads = result.threads
        wall_s = (result.wallSeconds * 1000).rounded() / 1000
        tool_cpu_s = (result.toolCPUSeconds * 1000).rounded() / 1000
        let hold = plan.scenario == .calls ? Double(plan.ringMillis + plan.talkMillis) / 1000 : 0
        flows = Flows(result.stats, holdSeconds: hold)
        setup = result.setup.started > 0 ? Flows(result.setup, holdSeconds: 0) : nil
        if plan.scenario == .fanout {
            fanout = Self.fanout(result)
        }
    }

    private static func fanout(_ result: RunResult) -> Fanout {
        let calls = result.fanout
        func lamp(_ lamp: LineLamp, _ metric: Metric) -> Lamp {
            let histogram = result.stats.histograms[metric.rawValue]
            let lasts = calls.map { Double($0.lastNanos[lamp.rawValue]) / 1e6 }.sorted()
            func round(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
            return Lamp(
                expected: calls.reduce(0) { $0 + $1.watchers },
                delivered: calls.reduce(0) { $0 + $1.reached[lamp.rawValue] },
                p50_ms: round(Double(histogram.valueAtPercentile(50)) / 1000),
                p99_ms: round(Double(histogram.valueAtPercentile(99)) / 1000),
                max_ms: round(Double(histogram.max) / 1000),
                last_median_ms: round(lasts.isEmpty ? 0 : lasts[lasts.count / 2]),
                last_max_ms: round(lasts.last ?? 0)
            )
        }
        let watchers = calls.map(\.watchers).sorted()
        let early = lamp(.early, .fanoutEarly)
        let confirmed = lamp(.confirmed, .fanoutConfirmed)
        let idle = lamp(.idle, .fanoutIdle)
        return Fanout(
            calls: calls.count,
            watchers_median: watchers.isEmpty ? 0 : watchers[watchers.count / 2],
            early: early,
            confirmed: confirmed,
            idle: idle,
            notifies_received: result.stats[.notifiesReceived],
            notifies_expected: early.expected + confirmed.expected + idle.expected
        )
    }

    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// The table printed at the end of a run.
    func table() -> String {
        var lines: [String] = []
        lines.append("busylamp-load \(scenario) → \(server) (domain \(domain)), \(threads) thread(s)")
        lines.append(String(format: "  wall %.1f s, tool CPU %.2f s", wall_s, tool_cpu_s))
        lines += Self.flowLines(flows, title: scenario)
        if let setup { lines += Self.flowLines(setup, title: "set-up (callee REGISTERs, fan-out calls)") }
        if let fanout {
            lines.append(
                "  fan-out: \(fanout.calls) call(s), \(fanout.watchers_median) watchers subscribed (median per call)"
            )
            lines.append("    lamp        delivered/expected   p50 ms   p99 ms   max ms   last-watcher median ms")
            for (name, lamp) in [("early", fanout.early), ("confirmed", fanout.confirmed), ("idle", fanout.idle)] {
                lines.append(
                    "    " + name.padding(toLength: 10, withPad: " ", startingAt: 0)
                        + String(
                            format: "  %9d/%-9d  %7.2f  %7.2f  %7.2f  %9.2f",
                            lamp.delivered,
                            lamp.expected,
                            lamp.p50_ms,
                            lamp.p99_ms,
                            lamp.max_ms,
                            lamp.last_median_ms
                        )
                )
            }
            lines.append("    NOTIFYs received during the run: \(fanout.notifies_received)")
        }
        return lines.joined(separator: "\n")
    }

    private static func flowLines(_ flows: Flows, title: String) -> [String] {
        var lines: [String] = []
        let failures = flows.failures_by_status.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(
            separator: " "
        )
        lines.append(
            "  \(title): started \(flows.started), succeeded \(flows.succeeded), failed \(flows.failed)\(failures.isEmpty ? "" : " (\(failures))"), timeouts \(flows.timeouts), unfinished \(flows.unfinished)"
        )
        lines.append(
            String(
                format: "    offered %.0f/s over %.2f s, completed %.0f/s, retransmissions %d (%.4f%% of requests)",
                flows.offered_per_s,
                flows.offer_window_s,
                flows.completed_per_s,
                flows.retransmissions,
                flows.retransmission_ratio * 100
            )
        )
        if !flows.latency_ms.isEmpty {
            lines.append("    latency ms              count      p50      p90      p99    p99.9      max")
            for metric in Metric.allCases {
                guard let latency = flows.latency_ms[metric.name] else { continue }
                lines.append(
                    "    " + metric.name.padding(toLength: 22, withPad: " ", startingAt: 0)
                        + String(
                            format: " %7llu  %7.2f  %7.2f  %7.2f  %7.2f  %7.2f",
                            latency.count,
                            latency.p50_ms,
                            latency.p90_ms,
                            latency.p99_ms,
                            latency.p99_9_ms,
                            latency.max_ms
                        )
                )
            }
        }
        let interesting = flows.counters.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map {
            "\($0.key)=\($0.value)"
        }
        if !interesting.isEmpty { lines.append("    " + interesting.joined(separator: " ")) }
        return lines
    }
}
