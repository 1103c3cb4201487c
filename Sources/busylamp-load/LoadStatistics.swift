import Histogram

/// The latencies the tool measures, each in its own HdrHistogram (microseconds).
enum Metric: Int, CaseIterable, Sendable {
    /// First REGISTER → 200 (the 401 round trip included).
    case register
    /// First SUBSCRIBE → 2xx (the 401/407 round trip included), as SIPp's rtd 1.
    case subscribeAccepted
    /// First SUBSCRIBE → the initial NOTIFY, as SIPp's rtd 2.
    case subscribeFirstNotify
    /// First INVITE → 180 (the 407 round trip included).
    case inviteRinging
    /// First INVITE → 200.
    case inviteAnswered
    /// BYE → 200.
    case byeAnswered
    /// Fan-out: the caller's INVITE sent → each watcher's first NOTIFY showing the line early.
    case fanoutEarly
    /// Fan-out: the callee's 200 sent → each watcher's first NOTIFY showing the line confirmed.
    case fanoutConfirmed
    /// Fan-out: the caller's BYE sent → each watcher's first NOTIFY showing the line idle.
    case fanoutIdle

    var name: String {
        switch self {
        case .register: return "register_200"
        case .subscribeAccepted: return "subscribe_2xx"
        case .subscribeFirstNotify: return "subscribe_first_notify"
        case .inviteRinging: return "invite_180"
        case .inviteAnswered: return "invite_200"
        case .byeAnswered: return "bye_200"
        case .fanoutEarly: return "fanout_early"
        case .fanoutConfirmed: return "fanout_confirmed"
        case .fanoutIdle: return "fanout_idle"
        }
    }
}

/// Event counts beside the flows' outcome.
enum Counter: Int, CaseIterable, Sendable {
    case requestsSent
    case responsesSent
    case messagesReceived
    /// Datagrams the SIPCore parser refused.
    case parseErrors
    /// Messages for no flow of ours (a Call-ID we did not make, a flow already finished).
    case unmatched
    case notifiesReceived
    /// A NOTIFY whose CSeq was not above the last one of its subscription.
    case notifyRetransmissionsReceived
    /// Received copies of a final response or of a request already answered.
    case duplicatesReceived
    case calleeInvites
    case calleeAnswered
    case calleeByes
    case challenges
    /// A 401/407 with `stale=TRUE` answered with fresh credentials.
    case staleChallenges

    var name: String {
        switch self {
        case .requestsSent: return "requests_sent"
        case .responsesSent: return "responses_sent"
        case .messagesReceived: return "messages_received"
        case .parseErrors: return "parse_errors"
        case .unmatched: return "unmatched"
        case .notifiesReceived: return "notifies_received"
        case .notifyRetransmissionsReceived: return "notify_retransmissions_received"
        case .duplicatesReceived: return "duplicates_received"
        case .calleeInvites: return "callee_invites"
        case .calleeAnswered: return "callee_answered"
        case .calleeByes: return "callee_byes"
        case .challenges: return "challenges"
        case .staleChallenges: return "stale_challenges"
        }
    }
}

/// What one shard counted. Shards merge theirs at the end; the main thread reads copies.
struct LoadStatistics: Sendable {
    /// Flows begun (the offered load).
    var started = 0
    var succeeded = 0
    /// Flows ended by a final response other than the expected one, by its status code.
    var failuresByStatus: [Int: Int] = [:]
    /// Flows ended by Timer B/F (64·T1 without a final response) or a missing NOTIFY.
    var timeouts = 0
    /// Requests (and 2xx to INVITE) sent again by Timers A/E/G, as SIPp counts them.
    var retransmissions = 0
    var counters = [Int](repeating: 0, count: Counter.allCases.count)
    var histograms: [Histogram<UInt64>] = Metric.allCases.map { _ in LoadStatistics.makeHistogram() }
    /// The progress line's window: the main metric since the last line.
    var window = LoadStatistics.makeHistogram()
    var firstStartNanos: UInt64 = 0
    var lastStartNanos: UInt64 = 0
    var lastCompletionNanos: UInt64 = 0

    static func makeHistogram() -> Histogram<UInt64> {
        // 1 µs to 10 minutes, 3 significant digits.
        Histogram<UInt64>(
            lowestDiscernibleValue: 1,
            highestTrackableValue: 600_000_000,
            numberOfSignificantValueDigits: .three
        )
    }

    var failed: Int { failuresByStatus.values.reduce(0, +) }

    subscript(counter: Counter) -> Int {
        get { counters[counter.rawValue] }
        set { counters[counter.rawValue] = newValue }
    }

    mutating func record(_ metric: Metric, nanos: UInt64, window inWindow: Bool = false) {
        let micros = max(1, nanos / 1000)
        histograms[metric.rawValue].record(micros)
        if inWindow { window.record(micros) }
    }

    mutating func fail(status: Int, at now: UInt64) {
        failuresByStatus[status, default: 0] += 1
        lastCompletionNanos = max(lastCompletionNanos, now)
    }

    mutating func timeout(at now: UInt64) {
        timeouts += 1
        lastCompletionNanos = max(lastCompletionNanos, now)
    }

    mutating func succeed(at now: UInt64) {
        succeeded += 1
        lastCompletionNanos = max(lastCompletionNanos, now)
    }

    mutating func begin(at now: UInt64) {
        if started == 0 { firstStartNanos = now }
        started += 1
        lastStartNanos = now
    }

    mutating func merge(_ other: LoadStatistics) {
        if other.started > 0 {
            firstStartNanos = started == 0 ? other.firstStartNanos : min(firstStartNanos, other.firstStartNanos)
        }
        started += other.started
        succeeded += other.succeeded
        timeouts += other.timeouts
        retransmissions += other.retransmissions
        for (status, count) in other.failuresByStatus { failuresByStatus[status, default: 0] += count }
        for index in counters.indices { counters[index] += other.counters[index] }
        for index in histograms.indices { histograms[index].add(other.histograms[index]) }
        window.add(other.window)
        lastStartNanos = max(lastStartNanos, other.lastStartNanos)
        lastCompletionNanos = max(lastCompletionNanos, other.lastCompletionNanos)
    }
}
