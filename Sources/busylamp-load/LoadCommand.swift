import ArgumentParser
import Foundation
import NIOCore

@main
struct BusyLampLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "busylamp-load",
        abstract: "Simulates thousands of SIP phones from one process, on loopback, against any SIP server.",
        discussion: """
            Every load is bounded: --rate flows per second for --duration seconds (or --count flows),
            then at most --drain seconds for the flows in flight. UDP only, 127.0.0.x only.
            A live progress line goes to standard error once per second; the table to standard
            output; --json FILE writes every figure.
            """,
        subcommands: [Register.self, Subscribe.self, Calls.self, Fanout.self, Soak.self, SelfCheck.self]
    )
}

/// What every load takes: the server, the offered rate and the bounds.
struct LoadOptions: ParsableArguments {
    @Option(help: "The server, 127.0.0.x:PORT (UDP).")
    var server: String

    @Option(help: "The SIP domain of the From/To/Request-URI (default: the server's host:port).")
    var domain: String?

    @Option(help: "Flows begun per second.")
    var rate: Double = 1000

    @Option(help: "Seconds during which flows are begun.")
    var duration: Double = 10

    @Option(help: "Begin at most this many flows (default: rate × duration).")
    var count: Int?

    @Option(help: "Event loop threads (one shard each).")
    var threads: Int = 1

    @Option(help: "Client sockets per thread, each on 127.0.0.1 port 0.")
    var sockets: Int = 1

    @Option(help: "Pacing and timer tick in ms (flows begun per tick: rate × tick).")
    var tickMs: Int = 1

    @Option(help: "RFC 3261 T1 in ms (retransmissions start at T1 and double).")
    var t1: Int = 500

    @Option(help: "Transaction timeout in ms (Timers B/F; default 64·T1).")
    var timeout: Int?

    @Option(help: "Seconds to wait for flows in flight after the last one began.")
    var drain: Double?

    @Option(help: "Flows in flight at the most (0: no limit).")
    var maxInFlight: Int = 0

    @Option(help: "Write every figure to this JSON file.")
    var json: String?

    @Flag(help: "No progress line.")
    var quiet = false

    func validate() throws {
        guard rate > 0, duration > 0, threads >= 1, sockets >= 1, t1 >= 1 else {
            throw ValidationError("--rate, --duration, --threads, --sockets and --t1 must be positive")
        }
    }

    func serverAddress() throws -> SocketAddress {
        let parts = server.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]), parts[0].hasPrefix("127.") else {
            throw ValidationError("--server must be 127.0.0.x:PORT (loopback only)")
        }
        return try SocketAddress(ipAddress: String(parts[0]), port: port)
    }

    func basePlan(_ scenario: LoadPlan.Scenario) throws -> LoadPlan {
        var plan = LoadPlan(scenario: scenario, server: try serverAddress(), domain: domain ?? server)
        plan.durationSeconds = duration
        plan.t1Millis = t1
        plan.transactionTimeoutMillis = timeout ?? 64 * t1
        plan.sockets = sockets
        plan.tickMillis = tickMs
        plan.maxInFlight = maxInFlight
        plan.drainSeconds = drain ?? Double(plan.transactionTimeoutMillis) / 1000 + 5
        plan.token = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        return plan
    }
}

/// Users from a CSV file (SIPp's injection format, as bench/subscribe/generate.py and
/// bench/calls/bench.py write it) or made from a pattern.
struct UserOptions: ParsableArguments {
    @Option(help: "Users for the generated pattern: prefix + (start + i), zero-padded to --user-width.")
    var userPrefix = ""

    @Option(help: "The first generated user's number.")
    var userStart = 0

    @Option(help: "Zero-pad generated numbers to this many digits.")
    var userWidth = 0

    @Option(help: "Generated users' passwords; {user} and {i} are replaced.")
    var passwordPattern = "{user}"

    /// `spec` is a CSV path or a count of generated users (from `offset`).
    func users(_ spec: String, offset: Int = 0, target: String? = nil) throws -> [SimulatedUser] {
        if let count = Int(spec) {
            guard count > 0 else { throw ValidationError("a user count must be positive") }
            return UserSource.generate(
                count: count,
                prefix: userPrefix,
                start: userStart + offset,
                width: userWidth,
                passwordPattern: passwordPattern,
                target: target
            )
        }
        return try UserSource.load(csv: spec)
    }
}

extension ParsableCommand {
    func execute(_ plan: LoadPlan, options: LoadOptions, extraSeconds: Double = 0) throws {
        let shards = plan.scenario == .calls || plan.scenario == .fanout ? 1 : options.threads
        let total = options.count ?? Int((options.rate * options.duration).rounded(.up))
        let plans = (0..<shards).map { index -> LoadPlan in
            var share = plan
            share.shardIndex = index
            share.shardCount = shards
            share.rate = options.rate / Double(shards)
            share.count = plan.scenario == .fanout ? plan.count : total / shards + (index < total % shards ? 1 : 0)
            return share
        }
        let deadline = plan.durationSeconds + plan.drainSeconds * 2 + extraSeconds + 30
        let result = try LoadRunner.run(
            plans: plans,
            threads: shards,
            progress: !options.quiet,
            deadlineSeconds: deadline
        )
        let report = LoadReport(plan: plan, totalRate: options.rate, result: result)
        print(report.table())
        if let path = options.json {
            try report.json().write(to: URL(fileURLWithPath: path))
        }
    }
}

struct Register: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "REGISTER, 401, REGISTER with Authorization, 200 (a 200 without challenge counts too)."
    )

    @OptionGroup var options: LoadOptions
    @OptionGroup var userOptions: UserOptions

    @Option(help: "Users: a CSV file (user;target;[authentication username=U password=P]) or a count to generate.")
    var users: String

    @Option(help: "Expires of the REGISTER.")
    var expires = 3600

    func run() throws {
        var plan = try options.basePlan(.register)
        plan.users = try userOptions.users(users)
        plan.registerExpires = expires
        try execute(plan, options: options)
    }
}

struct Subscribe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "SUBSCRIBE (Event: dialog), 401/407, SUBSCRIBE with credentials, 2xx and the initial NOTIFY (answered 200)."
    )

    @OptionGroup var options: LoadOptions
    @OptionGroup var userOptions: UserOptions

    @Option(help: "Watchers: a CSV file (watcher;target;[authentication ...]) or a count to generate.")
    var users: String

    @Option(help: "Generated watchers watch this user (default: the next generated user).")
    var target: String?

    @Option(help: "Expires of the SUBSCRIBE.")
    var expires = 600

    func run() throws {
        var plan = try options.basePlan(.subscribe)
        plan.users = try userOptions.users(users, target: target)
        plan.subscribeExpires = expires
        try execute(plan, options: options)
    }
}

/// What `calls` and `fanout` share: the callee phones and the callers.
struct CallOptions: ParsableArguments {
    @Option(help: "Callee phones (REGISTER, then answer INVITEs): a CSV file or a count to generate.")
    var callees: String = "1"

    @Option(help: "Callers: a CSV file (caller;dialled;[authentication ...]) or a count to generate.")
    var callers: String = "1"

    @Flag(help: "Callers have no credentials (a trunk the server trusts by --caller-port).")
    var trunk = false

    @Option(help: "Bind the callers' socket to this port (the trunk's address in the server's directory).")
    var callerPort: Int?

    @Option(help: "Callee sockets.")
    var calleeSockets = 1

    @Option(help: "Ring time in ms before the callee answers 200.")
    var ringMs = 200

    @Option(help: "Talk time in ms before the caller sends BYE.")
    var talkMs = 1000

    func apply(to plan: inout LoadPlan, userOptions: UserOptions) throws {
        plan.callees = try userOptions.users(callees)
        var callerUsers = try userOptions.users(callers, offset: Int(callees) ?? 0)
        if Int(callers) != nil {
            // generated callers dial the callees in turn
            for index in callerUsers.indices {
                callerUsers[index].target = plan.callees[index % plan.callees.count].user
            }
        }
        if trunk {
            for index in callerUsers.indices {
                callerUsers[index].authUser = nil
                callerUsers[index].password = nil
            }
        }
        plan.callers = callerUsers
        plan.callerPort = callerPort
        plan.calleeSockets = max(1, calleeSockets)
        plan.ringMillis = ringMs
        plan.talkMillis = talkMs
    }
}

struct Calls: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Callees REGISTER and answer (180, 200 with SDP after --ring-ms); callers INVITE (407 answered), ACK, BYE after --talk-ms."
    )

    @OptionGroup var options: LoadOptions
    @OptionGroup var userOptions: UserOptions
    @OptionGroup var call: CallOptions

    func run() throws {
        var plan = try options.basePlan(.calls)
        try call.apply(to: &plan, userOptions: userOptions)
        plan.drainSeconds =
            options.drain ?? Double(plan.transactionTimeoutMillis + plan.ringMillis + plan.talkMillis) / 1000 + 5
        try execute(plan, options: options, extraSeconds: 60)
    }
}

struct Fanout: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "W watchers subscribe to a line; then --calls calls to it, one at a time; each watcher's NOTIFY is timed.",
        discussion: """
            The delays are from the caller's INVITE (early), the callee's 200 (confirmed) and the \
            caller's BYE (idle) to each watcher's first NOTIFY showing that lamp. --rate is the \
            watchers' SUBSCRIBE rate.
            """
    )

    @OptionGroup var options: LoadOptions
    @OptionGroup var userOptions: UserOptions
    @OptionGroup var call: CallOptions

    @Option(help: "Watchers: a CSV file (watcher;line;[authentication ...]) or a count to generate.")
    var watchers: String

    @Option(help: "Generated watchers watch this line (default: the first callee).")
    var line: String?

    @Option(help: "Calls to the line, one at a time.")
    var calls = 5

    @Option(help: "A call begins this many ms after the previous one began (and not before it ended).")
    var callIntervalMs: Int?

    @Option(help: "Expires of the watchers' SUBSCRIBEs.")
    var expires = 3600

    func run() throws {
        var plan = try options.basePlan(.fanout)
        try call.apply(to: &plan, userOptions: userOptions)
        let offset = (Int(call.callees) ?? 0) + (Int(call.callers) ?? 0)
        plan.users = try userOptions.users(watchers, offset: offset, target: line ?? plan.callees[0].user)
        plan.count = options.count ?? plan.users.count
        plan.durationSeconds = Double(plan.count) / options.rate + 1
        plan.subscribeExpires = expires
        plan.fanoutCalls = calls
        plan.callIntervalMillis = callIntervalMs ?? (plan.ringMillis + plan.talkMillis + 1000)
        let callSeconds = Double(calls * max(plan.callIntervalMillis, plan.ringMillis + plan.talkMillis + 1000)) / 1000
        try execute(plan, options: options, extraSeconds: callSeconds + 60)
    }
}
