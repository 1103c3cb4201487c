import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "A long mixed load: phones register and refresh, watchers subscribe, phones call, cancel and pick up.",
        discussion: """
            Phone i is extension --first-extension + i, number --number-prefix + extension, \
            password --password-prefix + extension + "x" (scripts/soak writes the same lines into \
            the directory). The first --call-pool phones call each other and are watched; the \
            next --watchers phones each watch --targets of them. After the warm-up (every phone \
            registered, every subscription's first NOTIFY, --warmup-calls seconds of calls) a \
            line "soak: warm" goes to standard output; then --duration seconds of load, the end \
            of every call, --settle seconds of refreshes only, and the report (--json).
            """
    )

    @Option(help: "The server, 127.0.0.x:PORT (UDP).")
    var server: String

    @Option(help: "The SIP domain (default: the server's host:port).")
    var domain: String?

    @Option(help: "Simulated phones (lines of the soaked account).")
    var phones = 2000

    @Option(help: "The first phone's extension.")
    var firstExtension = 1000

    @Option(help: "A phone's number is this prefix and its extension.")
    var numberPrefix = "6499"

    @Option(help: "A phone's password is this prefix, its extension and \"x\".")
    var passwordPrefix = "pw"

    @Option(help: "The phones that call each other and are watched (the first ones).")
    var callPool = 200

    @Option(help: "Watching phones (after the call pool).")
    var watchers = 100

    @Option(help: "Lines each watcher watches.")
    var targets = 3

    @Option(help: "Calls placed per second.")
    var callRate = 2.0

    @Option(help: "Expires of the REGISTERs (refreshed at 40-60 %).")
    var registerExpires = 60

    @Option(help: "Expires of the SUBSCRIBEs (refreshed at 40-60 %).")
    var subscribeExpires = 120

    @Option(help: "Seconds of calls in the warm-up.")
    var warmupCalls = 10.0

    @Option(help: "Seconds of load after the warm-up.")
    var duration = 600.0

    @Option(help: "Seconds of refreshes only after every call ended.")
    var settle = 10.0

    @Option(help: "The account's directed pickup code.")
    var pickupCode = "*89"

    @Option(help: "Share of calls picked up by a third phone.")
    var pickupShare = 0.2

    @Option(help: "Share of calls the caller cancels while they ring.")
    var cancelShare = 0.2

    @Option(help: "Client sockets on 127.0.0.1 (phones share them).")
    var sockets = 4

    @Option(help: "Seed of the soak's choices.")
    var seed: UInt64 = 1

    @Option(help: "Write the report to this JSON file.")
    var json: String?

    func validate() throws {
        guard phones >= 3, callPool >= 3, callPool <= phones, watchers >= 0, callPool + watchers <= phones else {
            throw ValidationError("need 3 <= --call-pool, --call-pool + --watchers <= --phones")
        }
        guard duration > 0, callRate >= 0, sockets >= 1, pickupShare + cancelShare <= 1 else {
            throw ValidationError("--duration and --sockets must be positive, the shares at most 1 together")
        }
    }

    func run() throws {
        let parts = server.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]), parts[0].hasPrefix("127.") else {
            throw ValidationError("--server must be 127.0.0.x:PORT (loopback only)")
        }
        let lines = (0..<phones).map { index -> SoakPlan.Phone in
            let ext = String(firstExtension + index)
            return SoakPlan.Phone(number: numberPrefix + ext, ext: ext, password: passwordPrefix + ext + "x")
        }
        var plan = SoakPlan(
            server: try SocketAddress(ipAddress: String(parts[0]), port: port),
            domain: domain ?? server,
            phones: lines
        )
        plan.sockets = sockets
        plan.registerExpires = registerExpires
        plan.subscribeExpires = subscribeExpires
        plan.watchers = watchers
        plan.targetsPerWatcher = targets
        plan.callPool = callPool
        plan.callsPerSecond = callRate
        plan.warmupCallSeconds = warmupCalls
        plan.durationSeconds = duration
        plan.settleSeconds = settle
        plan.pickupCode = pickupCode
        plan.pickupShare = pickupShare
        plan.cancelShare = cancelShare
        plan.seed = seed
        plan.token = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let report = try Self.run(plan)
        FileHandle.standardError.write(Data((report.summary() + "\n").utf8))
        if let json { try report.json().write(to: URL(fileURLWithPath: json)) }
    }

    /// Runs the soak on one event loop; a progress line each 10 s, "soak: warm" at the end of
    /// the warm-up; bounded by the plan's times and a margin.
    static func run(_ plan: SoakPlan) throws -> SoakReport {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let shard = SoakShard(plan: plan, loop: group.next())
        do {
            try shard.loop.flatSubmit { shard.bind() }.wait()
        } catch {
            throw LoadRunner.Failure(description: "cannot bind the soak's sockets on 127.0.0.1: \(error)")
        }
        shard.loop.execute { shard.start() }
        let finished = ThreadSafeFlag()
        shard.done.futureResult.whenComplete { _ in finished.set() }
        shard.warm.futureResult.whenSuccess {
            FileHandle.standardOutput.write(Data("soak: warm\n".utf8))
        }
        let started = Date()
        let bound = 240 + plan.warmupCallSeconds + plan.durationSeconds + plan.endSeconds + plan.settleSeconds + 60
        var lastLine = started
        while !finished.isSet {
            finished.wait(seconds: 1)
            let now = Date()
            if now.timeIntervalSince(started) > bound {
                FileHandle.standardError.write(
                    Data("busylamp-load soak: bound of \(Int(bound)) s passed; stopping\n".utf8)
                )
                break
            }
            guard now.timeIntervalSince(lastLine) >= 10 else { continue }
            lastLine = now
            let line = try shard.loop.submit { () -> String in
                let counts = shard.counts
                let failures = shard.failures.values.reduce(0, +)
                return
                    "[\(Int(now.timeIntervalSince(started)))s] \(shard.stage.rawValue): REGISTER ok \(counts["ok REGISTER", default: 0]), SUBSCRIBE ok \(counts["ok SUBSCRIBE", default: 0]), NOTIFY \(counts["NOTIFY", default: 0]), calls \(counts["ended calls", default: 0]), pickups \(counts["pickups", default: 0]), failures \(failures)"
            }.wait()
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        let report = try shard.loop.submit { shard.report() }.wait()
        try? shard.loop.flatSubmit { shard.close() }.wait()
        return report
    }
}
