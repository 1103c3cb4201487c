import BusyLampCore
import Foundation
import Metrics
import SIPCore

/// Every metric of the SIP server, its handles made once (STYLE.md: names
/// `busylamp_<area>_<what>_<unit>`, every drop and refusal counted by reason).
///
/// A metric with a label takes its values from a small, closed set (methods, reason codes,
/// event packages), so a handle per value is made the first time the value is seen and
/// reused after: nothing is concatenated or allocated per increment, and garbage from the
/// network cannot grow the set (unknown methods count as `other`).
final class ServerMetrics {
    /// One counter per value of one label.
    final class LabelledCounter {
        let label: String
        let dimension: String
        private var counters: [String: Counter] = [:]

        /// `knownValues` get their handle at once, so that the series shows (at 0) before the
        /// first increment: an operator's alert on it works from the start.
        init(_ label: String, by dimension: String, knownValues: [String] = []) {
            self.label = label
            self.dimension = dimension
            for value in knownValues { counters[value] = Counter(label: label, dimensions: [(dimension, value)]) }
        }

        func increment(_ value: String, by amount: Int = 1) {
            if let counter = counters[value] { return counter.increment(by: amount) }
            let counter = Counter(label: label, dimensions: [(dimension, value)])
            counters[value] = counter
            counter.increment(by: amount)
        }
    }

    /// Refusals, by method and reason.
    final class RefusalCounter {
        private struct Key: Hashable {
            var method: String
            var reason: String
        }
        private var counters: [Key: Counter] = [:]

        func increment(method: String, reason: String) {
            let key = Key(method: method, reason: reason)
            if let counter = counters[key] { return counter.increment() }
            let counter = Counter(
                label: "busylamp_sip_refusals_total",
                dimensions: [("method", method), ("reason", reason)]
            )
            counters[key] = counter
            counter.increment()
        }
    }

    let requests = LabelledCounter("busylamp_sip_requests_total", by: "method")
    let parseErrors = LabelledCounter("busylamp_sip_parse_errors_total", by: "reason")
    let overloadRejections = Counter(label: "busylamp_sip_overload_rejections_total")
    let authFailures = LabelledCounter(
        "busylamp_sip_auth_failures_total",
        by: "reason",
        knownValues: ["bad_credentials", "replayed_nonce"]
    )
    /// Lockouts started (logged once each), and requests refused while locked out, by scope.
    let authLockouts = LabelledCounter(
        "busylamp_sip_auth_lockouts_total",
        by: "scope",
        knownValues: ["user", "address"]
    )
    let authLockedOutRequests = LabelledCounter(
        "busylamp_sip_auth_locked_out_requests_total",
        by: "scope",
        knownValues: ["user", "address"]
    )
    let refusals = RefusalCounter()

    let registrationsAccepted = Counter(label: "busylamp_registrations_accepted_total")
    /// Lines with at least one live binding, and live bindings in all.
    let registeredLines = Gauge(label: "busylamp_registrations_lines")
    let registeredBindings = Gauge(label: "busylamp_registrations_bindings")

    let subscriptionsAccepted = LabelledCounter("busylamp_subscriptions_accepted_total", by: "event")
    let subscriptionsEnded = LabelledCounter("busylamp_subscriptions_ended_total", by: "reason")
    let activeSubscriptions: [EventPackage: Gauge] = Dictionary(
        uniqueKeysWithValues: EventPackage.allCases.map {
            ($0, Gauge(label: "busylamp_subscriptions_active", dimensions: [("event", $0.rawValue)]))
        }
    )

    let notifiesSent = Counter(label: "busylamp_notify_sent_total")
    let notifiesFailed = LabelledCounter(
        "busylamp_notify_failed_total",
        by: "reason",
        knownValues: ["timeout", "transport_error", "rejected", "no_route"]
    )
    let notifiesRefused = LabelledCounter("busylamp_notify_refused_total", by: "reason")
    let notifiesCoalesced = Counter(label: "busylamp_notify_coalesced_total")
    let notifiesOversizeUDP = Counter(label: "busylamp_notify_oversize_udp_total")
    /// From a line's state change to each NOTIFY that reports it leaving (seconds).
    let lineChangeToNotify = Metrics.Timer(
        label: "busylamp_notify_line_change_to_send_seconds",
        preferredDisplayUnit: .seconds
    )
    let lineChanges = Counter(label: "busylamp_line_state_changes_total")

    let callsStarted = LabelledCounter("busylamp_calls_started_total", by: "to")
    let callsEnded = Counter(label: "busylamp_calls_ended_total")
    let callRequestsRefused = LabelledCounter("busylamp_calls_requests_refused_total", by: "reason")
    let pickups = LabelledCounter(
        "busylamp_calls_pickups_total",
        by: "kind",
        knownValues: ["directed", "group", "replaces"]
    )
    let activeCalls = Gauge(label: "busylamp_calls_active")

    /// The notifier's coalesced count already reported.
    var reportedCoalesced = 0
}
