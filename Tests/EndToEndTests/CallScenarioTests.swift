import Foundation
import Testing

extension EndToEnd {
    /// Calls and pickup through the real server (issue 4, "Done when"), each over UDP and over
    /// TCP: caller, callee(s), picker and watchers are separate SIPp processes running at once,
    /// driven by the `call_*`, `pickup_*` and `watch_*` scenarios of `tests/sipp/`.
    ///
    /// A callee is `call_callee.xml` (it registers the line, then waits) with an out-of-call
    /// scenario for BusyLamp's INVITE: `call_callee_answer.xml`, `call_callee_busy.xml` or
    /// `call_callee_cancelled.xml`. Every party's SDP carries a port of its own
    /// (`CallFixture.callerMediaPort`, …), so the scenarios check whose description each party
    /// ends with. Alice (201) calls Bob (202) unless a case says otherwise.
    @Suite("Calls and pickup (SIPp)", .timeLimit(.minutes(3)))
    struct Calls {
        typealias Line = DirectoryFixture.Line
        static let alice = CallFixture.alice
        static let bob = CallFixture.bob

        // MARK: Line to line

        /// Alice calls Bob, who rings a second and answers; Alice hangs up after a second. Bob's
        /// watcher (Joe) sees idle → early (recipient, Alice's identity) → confirmed → idle;
        /// Alice's (Leo) sees idle → (trying/proceeding) → early → confirmed → idle as initiator.
        @Test(arguments: Transport.allCases)
        func lineToLine(over transport: Transport) async throws {
            try await withCallServer("call-line-\(transport)", over: transport) { server in
                let bobWatcher = start(
                    "watch_dialog",
                    name: "watch-bob",
                    line: CallFixture.joe,
                    keys: ["target": Self.bob.extensionNumber],
                    server,
                    transport
                )
                let aliceWatcher = start(
                    "watch_dialog",
                    name: "watch-alice",
                    line: CallFixture.leo,
                    keys: ["target": Self.alice.extensionNumber],
                    server,
                    transport
                )
                let callee = startCallee(.answer, name: "callee-bob", server, transport)
                try await waitForLogs(
                    ["watch-bob": "subscribed", "watch-alice": "subscribed", "callee-bob": "registered"],
                    server,
                    transport
                )
                let caller = try await call(Self.bob.extensionNumber, server, transport)
                let bobWatched = try await bobWatcher.value
                let aliceWatched = try await aliceWatcher.value
                expectPass(caller, "call_caller (Alice)", transport, server)
                expectPass(try await callee.value, "call_callee + call_callee_answer (Bob)", transport, server)
                expectPass(bobWatched, "watch_dialog (Joe watching Bob)", transport, server)
                expectPass(aliceWatched, "watch_dialog (Leo watching Alice)", transport, server)
                expectSequence(
                    Self.notifies(in: bobWatched.messages),
                    of: "Bob (recipient)",
                    direction: "recipient",
                    allowingTrying: false,
                    caller: Self.alice
                )
                expectSequence(
                    Self.notifies(in: aliceWatched.messages),
                    of: "Alice (initiator)",
                    direction: "initiator",
                    allowingTrying: true,
                    caller: nil
                )
            }
        }

        /// Shards (issue 10): with four event loops, the kernel spreads eight watchers of Bob over
        /// the shards by their source ports, while the call is handled by the line owner. Every
        /// watcher, whichever shard holds its subscription, sees the call's lamp sequence; the
        /// per-shard gauge shows that subscriptions live on more than one shard (so that some
        /// watcher was notified of a call handled on another loop).
        @Test(arguments: Transport.allCases)
        func watchersOnEveryShardSeeACallOnTheLineOwner(over transport: Transport) async throws {
            try await withCallServer("call-shards-\(transport)", over: transport, config: ["sip_threads": "4"]) {
                server in
                let names = (1...8).map { "watch-bob-\($0)" }
                let watchers = names.map { name in
                    start(
                        "watch_dialog",
                        name: name,
                        line: CallFixture.joe,
                        keys: ["target": Self.bob.extensionNumber],
                        server,
                        transport
                    )
                }
                let callee = startCallee(.answer, name: "callee-bob", server, transport)
                var expected = Dictionary(uniqueKeysWithValues: names.map { ($0, "subscribed") })
                expected["callee-bob"] = "registered"
                try await waitForLogs(expected, server, transport)
                // The gauges are reported by each shard's one-second sweep.
                try await Task.sleep(for: .milliseconds(2_500))
                let metrics = try await HTTPTestClient(port: try #require(server.httpPort)).get("/metrics").text
                let perShard = metrics.split(separator: "\n").filter { $0.hasPrefix("busylamp_shard_subscriptions{") }
                let holding = perShard.filter { ($0.split(separator: " ").last.flatMap { Double($0) } ?? 0) > 0 }
                #expect(perShard.count == 4, "one gauge per shard: \(perShard)")
                #expect(holding.count >= 2, "eight watchers from eight ports all on one shard: \(perShard)")
                let caller = try await call(Self.bob.extensionNumber, server, transport)
                expectPass(caller, "call_caller (Alice)", transport, server)
                expectPass(try await callee.value, "call_callee + call_callee_answer (Bob)", transport, server)
                for (name, watcher) in zip(names, watchers) {
                    let watched = try await watcher.value
                    expectPass(watched, "watch_dialog (\(name))", transport, server)
                    expectSequence(
                        Self.notifies(in: watched.messages),
                        of: "Bob (recipient) seen by \(name)",
                        direction: "recipient",
                        allowingTrying: false,
                        caller: Self.alice
                    )
                }
            }
        }

        /// Speed dial is the same INVITE to the watched line's number instead of its extension.
        @Test(arguments: Transport.allCases)
        func lineToLineByNumber(over transport: Transport) async throws {
            try await withCallServer("call-number-\(transport)", over: transport) { server in
                let callee = startCallee(.answer, name: "callee-bob", server, transport)
                try await waitForLogs(["callee-bob": "registered"], server, transport)
                let caller = try await call(Self.bob.number, server, transport)
                expectPass(caller, "call_caller (Alice dials Bob's number)", transport, server)
                expectPass(try await callee.value, "call_callee + call_callee_answer (Bob)", transport, server)
            }
        }

        /// Bob answers, then hangs up: his BYE reaches Alice in her dialog, her 200 reaches him.
        @Test(arguments: Transport.allCases)
        func calleeHangsUp(over transport: Transport) async throws {
            try await withCallServer("call-callee-bye-\(transport)", over: transport) { server in
                let callee = startCallee(.hangUp, name: "callee-bob", server, transport)
                try await waitForLogs(["callee-bob": "registered"], server, transport)
                let caller = try await aliceRuns(
                    "call_caller_hung_up",
                    calling: Self.bob.extensionNumber,
                    server,
                    transport,
                    keys: ["answer_port": String(CallFixture.calleeMediaPort)]
                )
                expectPass(caller, "call_caller_hung_up (Alice)", transport, server)
                expectPass(try await callee.value, "call_callee + call_callee_hangup (Bob)", transport, server)
            }
        }

        // MARK: Trunk

        /// The trunk calls Bob's number, with no digest; Bob sees the trunk's From.
        @Test(arguments: Transport.allCases)
        func trunkToLine(over transport: Transport) async throws {
            let trunkPort = try LoopbackSocket.freeUDPPort()
            let host = CallFixture.trunkHost(over: transport)
            try await withCallServer("call-trunk-in-\(transport)", over: transport, trunkPort: trunkPort) { server in
                let outside = CallFixture.outsideCaller
                let callee = startCallee(
                    .answer,
                    name: "callee-bob",
                    server,
                    transport,
                    caller: (display: outside.name, number: outside.number)
                )
                try await waitForLogs(["callee-bob": "registered"], server, transport)
                let trunk = try await SIPpRun.run(
                    "call_trunk_caller",
                    against: server,
                    over: transport,
                    line: outside,
                    localPort: trunkPort,
                    localAddress: host,
                    keys: [
                        "target": Self.bob.number,
                        "caller_display": outside.name,
                        "sdp_port": String(CallFixture.trunkMediaPort),
                        "answer_port": String(CallFixture.calleeMediaPort),
                    ],
                    timeout: "30s"
                )
                expectPass(trunk, "call_trunk_caller (the trunk at \(host):\(trunkPort))", transport, server)
                expectPass(try await callee.value, "call_callee + call_callee_answer (Bob)", transport, server)
            }
        }

        /// Alice dials an outside number: after her digest, BusyLamp sends the INVITE to the
        /// trunk's address, Request-URI user the number, From Alice's identity.
        @Test(arguments: Transport.allCases)
        func lineToTrunk(over transport: Transport) async throws {
            let trunkPort = try LoopbackSocket.freeUDPPort()
            let host = CallFixture.trunkHost(over: transport)
            try await withCallServer("call-trunk-out-\(transport)", over: transport, trunkPort: trunkPort) { server in
                let trunk = Task {
                    try await SIPpRun.run(
                        "call_callee_answer",
                        against: server,
                        over: transport,
                        line: CallFixture.outsideCaller,
                        localPort: trunkPort,
                        localAddress: host,
                        name: "trunk",
                        keys: [
                            "ruri_user": CallFixture.outsideNumber,
                            "from_display": Self.alice.name,
                            "from_user": Self.alice.number,
                            "offer_port": String(CallFixture.callerMediaPort),
                            "answer_port": String(CallFixture.trunkMediaPort),
                            "ring_ms": "1000",
                        ],
                        timeout: "30s"
                    )
                }
                // A UAS prints nothing until its INVITE: give it time to bind its port.
                try await Task.sleep(for: .seconds(1))
                let caller = try await call(
                    CallFixture.outsideNumber,
                    server,
                    transport,
                    answerPort: CallFixture.trunkMediaPort
                )
                expectPass(caller, "call_caller (Alice dials \(CallFixture.outsideNumber))", transport, server)
                expectPass(
                    try await trunk.value,
                    "call_callee_answer (the trunk at \(host):\(trunkPort))",
                    transport,
                    server
                )
            }
        }

        // MARK: Forking and failures

        /// Bob registered from two phones: both ring; the first answers, the other gets CANCEL
        /// (200 + 487); Alice gets the first one's 200.
        @Test(arguments: Transport.allCases)
        func forkingToTwoContacts(over transport: Transport) async throws {
            try await withCallServer("call-fork-\(transport)", over: transport) { server in
                let winner = startCallee(.answer, name: "callee-bob-1", server, transport)
                let loser = startCallee(.cancelled, name: "callee-bob-2", server, transport)
                try await waitForLogs(["callee-bob-1": "registered", "callee-bob-2": "registered"], server, transport)
                let caller = try await call(Self.bob.extensionNumber, server, transport)
                expectPass(caller, "call_caller (Alice)", transport, server)
                expectPass(
                    try await winner.value,
                    "call_callee + call_callee_answer (Bob's first phone)",
                    transport,
                    server
                )
                expectPass(
                    try await loser.value,
                    "call_callee + call_callee_cancelled (Bob's second phone)",
                    transport,
                    server
                )
            }
        }

        /// No contact registered: 480.
        @Test(arguments: Transport.allCases)
        func nobodyRegistered(over transport: Transport) async throws {
            try await withCallServer("call-480-\(transport)", over: transport) { server in
                let caller = try await refusedCall(Self.bob.extensionNumber, status: 480, server, transport)
                expectPass(caller, "call_refused 480 (Bob not registered)", transport, server)
            }
        }

        /// The only contact answers 486: Alice gets 486.
        @Test(arguments: Transport.allCases)
        func busy(over transport: Transport) async throws {
            try await withCallServer("call-486-\(transport)", over: transport) { server in
                let callee = startCallee(.busy, name: "callee-bob", server, transport)
                try await waitForLogs(["callee-bob": "registered"], server, transport)
                let caller = try await refusedCall(Self.bob.extensionNumber, status: 486, server, transport)
                expectPass(caller, "call_refused 486 (Bob busy)", transport, server)
                expectPass(try await callee.value, "call_callee + call_callee_busy (Bob)", transport, server)
            }
        }

        /// Alice hangs up while Bob rings: 200 for her CANCEL, 487 for her INVITE; Bob gets CANCEL.
        @Test(arguments: Transport.allCases)
        func callerCancels(over transport: Transport) async throws {
            try await withCallServer("call-487-\(transport)", over: transport) { server in
                let callee = startCallee(.cancelled, name: "callee-bob", server, transport)
                try await waitForLogs(["callee-bob": "registered"], server, transport)
                let caller = try await aliceRuns(
                    "call_caller_cancel",
                    calling: Self.bob.extensionNumber,
                    server,
                    transport
                )
                expectPass(caller, "call_caller_cancel (Alice)", transport, server)
                expectPass(try await callee.value, "call_callee + call_callee_cancelled (Bob)", transport, server)
            }
        }

        /// `ring_timeout: 2`: nobody answers in two seconds, Alice gets 480 and Bob gets CANCEL.
        @Test(arguments: Transport.allCases)
        func ringTimeout(over transport: Transport) async throws {
            try await withCallServer("call-ring-timeout-\(transport)", over: transport, config: ["ring_timeout": "2"]) {
                server in
                let callee = startCallee(.cancelled, name: "callee-bob", server, transport)
                try await waitForLogs(["callee-bob": "registered"], server, transport)
                let clock = ContinuousClock()
                let started = clock.now
                let caller = try await refusedCall(Self.bob.extensionNumber, status: 480, server, transport)
                let elapsed = clock.now - started
                expectPass(caller, "call_refused 480 (ring timeout)", transport, server)
                expectPass(try await callee.value, "call_callee + call_callee_cancelled (Bob)", transport, server)
                #expect(
                    caller.log.contains("ringing") && elapsed >= .seconds(2),
                    "the 480 should come after Bob rang for ring_timeout (2 s); it came after \(elapsed)\n\(caller.report)"
                )
            }
        }

        // MARK: Pickup

        struct Pickup: CustomTestStringConvertible, Sendable {
            var label: String
            /// `pickup_directed` (a code) or `pickup_replaces`.
            var scenario: String
            var target: String
            var testDescription: String { label }
        }

        static let pickupCases: [Pickup] = [
            Pickup(label: "directed *89 + extension", scenario: "pickup_directed", target: "*89202"),
            Pickup(label: "directed *89 + number", scenario: "pickup_directed", target: "*896495550202"),
            Pickup(label: "group *88", scenario: "pickup_directed", target: "*88"),
            Pickup(label: "directed, INVITE without SDP", scenario: "pickup_directed_no_sdp", target: "*89202"),
            Pickup(label: "Replaces from the NOTIFY", scenario: "pickup_replaces", target: "202"),
        ]

        /// Alice calls Bob, who rings and never answers; Joe picks the call up. Bob gets CANCEL;
        /// Joe gets a placeholder answer, then a re-INVITE with Alice's offer (he ends with her
        /// port) and answers it; Alice's 200 carries Joe's answer (she ends with his port).
        /// With no SDP in Joe's INVITE, his 200 carries Alice's offer and his ACK the answer.
        /// Alice hangs up and Joe gets her BYE.
        @Test(arguments: pickupCases, Transport.allCases)
        func pickup(_ pickup: Pickup, over transport: Transport) async throws {
            try await withCallServer("pickup-\(transport)", over: transport) { server in
                let callee = startCallee(.cancelled, name: "callee-bob", server, transport)
                try await waitForLogs(["callee-bob": "registered"], server, transport)
                let byReplaces = pickup.scenario == "pickup_replaces"
                // Joe: by Replaces he watches Bob before the call (and takes the ids from the early
                // NOTIFY); by code he dials once Bob rings.
                let picking = Task {
                    if !byReplaces { try await waitForLogs(["callee-bob": "ringing"], server, transport) }
                    return try await SIPpRun.run(
                        pickup.scenario,
                        against: server,
                        over: transport,
                        line: CallFixture.joe,
                        localPort: try LoopbackSocket.freeUDPPort(),
                        name: "picker",
                        extraArguments: byReplaces ? ["-aa"] : [],
                        keys: [
                            "target": pickup.target,
                            "watched": Self.bob.extensionNumber,
                            "sdp_port": String(CallFixture.pickerMediaPort),
                            "caller_port": String(CallFixture.callerMediaPort),
                        ],
                        timeout: "30s"
                    )
                }
                if byReplaces { try await waitForLogs(["picker": "NOTIFY"], server, transport) }
                let caller = try await call(
                    Self.bob.extensionNumber,
                    server,
                    transport,
                    answerPort: CallFixture.pickerMediaPort
                )
                let picker = try await picking.value
                let callerRun = caller
                if byReplaces {
                    // The ids came from the NOTIFY (the scenario logs what it sent).
                    let replaces = picker.log.split(separator: "\n").first { $0.hasPrefix("Replaces: ") }
                    #expect(
                        replaces.map { !$0.dropFirst("Replaces: ".count).hasPrefix(";") } == true,
                        "Joe should have sent Replaces with the call-id from the early NOTIFY\n\(picker.log)"
                    )
                }
                expectPass(picker, "\(pickup.scenario) (Joe, \(pickup.label))", transport, server)
                expectPass(callerRun, "call_caller (Alice)", transport, server)
                expectPass(try await callee.value, "call_callee + call_callee_cancelled (Bob)", transport, server)
                // What each party ends with (the scenarios check the ports; these say it here too).
                #expect(
                    callerRun.log.contains("answered: m=audio \(CallFixture.pickerMediaPort) "),
                    "Alice's 200 should carry Joe's media port \(CallFixture.pickerMediaPort)\n\(callerRun.log)"
                )
                #expect(
                    picker.log.contains("caller's offer m=audio \(CallFixture.callerMediaPort) "),
                    "Joe should get Alice's offer, media port \(CallFixture.callerMediaPort) (in the re-INVITE, or in the 200 when his INVITE had no SDP)\n\(picker.log)"
                )
            }
        }

        /// The lamps through a pickup by code (the call flows' "After pickup"): Leo watches Bob,
        /// Joe and Alice. Bob's line goes idle → early → idle (never confirmed: the call left
        /// it); Joe's shows a confirmed dialog, then idle; Alice's a confirmed dialog whose remote
        /// is Joe, then idle.
        @Test(arguments: Transport.allCases)
        func pickupLamps(over transport: Transport) async throws {
            try await withCallServer("pickup-lamps-\(transport)", over: transport) { server in
                let joe = CallFixture.joe
                let watched = ["watch-bob": Self.bob, "watch-joe": joe, "watch-alice": Self.alice]
                let watchers = watched.mapValues { line in
                    start(
                        "watch_dialog",
                        name: "watch-\(line.name.lowercased())",
                        line: CallFixture.leo,
                        keys: ["target": line.extensionNumber],
                        server,
                        transport
                    )
                }
                let callee = startCallee(.cancelled, name: "callee-bob", server, transport)
                try await waitForLogs(
                    watched.mapValues { _ in "subscribed" }.merging(["callee-bob": "registered"]) { $1 },
                    server,
                    transport
                )
                let caller = Task {
                    try await call(Self.bob.extensionNumber, server, transport, answerPort: CallFixture.pickerMediaPort)
                }
                try await waitForLogs(["callee-bob": "ringing"], server, transport)
                let picker = try await SIPpRun.run(
                    "pickup_directed",
                    against: server,
                    over: transport,
                    line: joe,
                    localPort: try LoopbackSocket.freeUDPPort(),
                    keys: [
                        "target": "*89\(Self.bob.extensionNumber)",
                        "sdp_port": String(CallFixture.pickerMediaPort),
                        "caller_port": String(CallFixture.callerMediaPort),
                    ],
                    timeout: "30s"
                )
                expectPass(picker, "pickup_directed (Joe)", transport, server)
                expectPass(try await caller.value, "call_caller (Alice)", transport, server)
                expectPass(try await callee.value, "call_callee + call_callee_cancelled (Bob)", transport, server)
                var seen: [String: [Notify]] = [:]
                for (name, watcher) in watchers {
                    let run = try await watcher.value
                    expectPass(run, "watch_dialog (\(name))", transport, server)
                    seen[name] = Self.notifies(in: run.messages)
                }
                let bobStates = Self.merged(seen["watch-bob"] ?? [])
                #expect(
                    bobStates == ["idle", "early", "idle"],
                    "Bob's lamp through the pickup: \(seen["watch-bob"] ?? [])"
                )
                let joeNotifies = seen["watch-joe"] ?? []
                #expect(
                    joeNotifies.contains { $0.state == "confirmed" } && Self.merged(joeNotifies).last == "idle",
                    "Joe's lamp through the pickup should show a confirmed dialog, then idle: \(joeNotifies)"
                )
                let aliceNotifies = seen["watch-alice"] ?? []
                #expect(
                    aliceNotifies.contains { $0.state == "confirmed" && $0.identity.contains("sip:\(joe.number)@") }
                        && Self.merged(aliceNotifies).last == "idle",
                    "Alice's lamp should show her call confirmed with Joe (sip:\(joe.number)@…) as remote, then idle: \(aliceNotifies)"
                )
            }
        }

        struct Refusal: CustomTestStringConvertible, Sendable {
            var label: String
            var picker: Line
            var target: String
            /// A whole header line for the INVITE (Replaces), or a harmless one.
            var header = "X-Busylamp-Test: none"
            var status: Int
            /// The reason phrase must contain one of these (case-insensitive); empty: free text.
            var reasonWords: [String] = []
            /// Whether Bob's phone rings meanwhile (answering after four seconds): the refusal
            /// must leave that call alone.
            var whileRinging: Bool
            var testDescription: String { "\(status) \(label)" }
        }

        static let refusalCases: [Refusal] = [
            Refusal(
                label: "another group (Sam, SALES)",
                picker: CallFixture.sam,
                target: "*89202",
                status: 403,
                reasonWords: ["group"],
                whileRinging: true
            ),
            Refusal(
                label: "another account (Gus, globex)",
                picker: CallFixture.gus,
                target: "*896495550202",
                status: 403,
                reasonWords: ["account"],
                whileRinging: true
            ),
            Refusal(
                label: "nothing ringing (*89)",
                picker: CallFixture.joe,
                target: "*89202",
                status: 480,
                whileRinging: false
            ),
            Refusal(
                label: "nothing ringing (*88)",
                picker: CallFixture.joe,
                target: "*88",
                status: 480,
                whileRinging: false
            ),
            Refusal(
                label: "no such target",
                picker: CallFixture.joe,
                target: "*89999",
                status: 404,
                reasonWords: ["target", "not found", "no such"],
                whileRinging: true
            ),
            Refusal(
                label: "Replaces naming no call",
                picker: CallFixture.joe,
                target: "202",
                header: "Replaces: no-such-call@127.0.0.1;to-tag=no-such-tag;from-tag=no-such-tag",
                status: 481,
                whileRinging: true
            ),
        ]

        /// A refused pickup: the picker gets the status; a call ringing at Bob meanwhile is left
        /// alone (no CANCEL reaches Bob, who answers after four seconds, and Alice gets his 200).
        @Test(arguments: refusalCases, Transport.allCases)
        func refusedPickup(_ refusal: Refusal, over transport: Transport) async throws {
            try await withCallServer("pickup-refused-\(transport)", over: transport) { server in
                var ringing: (callee: Task<SIPpRun, Error>, caller: Task<SIPpRun, Error>)?
                if refusal.whileRinging {
                    let callee = startCallee(.answer, name: "callee-bob", server, transport, ringMilliseconds: 4000)
                    try await waitForLogs(["callee-bob": "registered"], server, transport)
                    let caller = Task { try await call(Self.bob.extensionNumber, server, transport) }
                    ringing = (callee, caller)
                    try await waitForLogs(["callee-bob": "ringing"], server, transport)
                }
                let picker = try await SIPpRun.run(
                    "call_refused",
                    against: server,
                    over: transport,
                    line: refusal.picker,
                    localPort: try LoopbackSocket.freeUDPPort(),
                    keys: [
                        "target": refusal.target,
                        "sdp_port": String(CallFixture.pickerMediaPort),
                        "status": String(refusal.status),
                        "extra_header": refusal.header,
                    ],
                    timeout: "30s"
                )
                expectPass(picker, "call_refused \(refusal.status) (\(refusal.label))", transport, server)
                let phrase = Self.reasonPhrase(in: picker.log, status: refusal.status)
                if !refusal.reasonWords.isEmpty {
                    #expect(
                        phrase.map { phrase in refusal.reasonWords.contains { phrase.lowercased().contains($0) } }
                            == true,
                        "the \(refusal.status) for \(refusal.label) should say why (one of \(refusal.reasonWords)); its reason phrase: \(phrase ?? "none logged")\n\(picker.report)"
                    )
                }
                if let ringing {
                    let callerRun = try await ringing.caller.value
                    expectPass(callerRun, "call_caller (Alice, still ringing Bob)", transport, server)
                    expectPass(
                        try await ringing.callee.value,
                        "call_callee + call_callee_answer (Bob, answering after the refusal)",
                        transport,
                        server
                    )
                }
            }
        }

        // MARK: Parties

        enum CalleeBehaviour: String {
            case answer = "call_callee_answer"
            case busy = "call_callee_busy"
            case cancelled = "call_callee_cancelled"
            case hangUp = "call_callee_hangup"
        }

        /// Starts Bob's phone: it registers, then handles one INVITE as `behaviour` says.
        func startCallee(
            _ behaviour: CalleeBehaviour,
            name: String,
            _ server: ServerProcess,
            _ transport: Transport,
            caller: (display: String, number: String) = (Self.alice.name, Self.alice.number),
            ringMilliseconds: Int = 1000
        ) -> Task<SIPpRun, Error> {
            let mediaPort = name.hasSuffix("-2") ? CallFixture.secondCalleeMediaPort : CallFixture.calleeMediaPort
            return start(
                "call_callee",
                outOfCall: behaviour.rawValue,
                name: name,
                line: Self.bob,
                keys: [
                    "ruri_user": Self.bob.number,
                    "from_display": caller.display,
                    "from_user": caller.number,
                    "offer_port": String(CallFixture.callerMediaPort),
                    "answer_port": String(mediaPort),
                    "ring_ms": String(ringMilliseconds),
                ],
                server,
                transport
            )
        }

        /// Runs a SIPp in the background; its log is `sipp-NAME-TRANSPORT-….log`.
        func start(
            _ scenario: String,
            outOfCall: String? = nil,
            name: String,
            line: Line,
            keys: [String: String],
            _ server: ServerProcess,
            _ transport: Transport
        ) -> Task<SIPpRun, Error> {
            Task {
                try await SIPpRun.run(
                    scenario,
                    against: server,
                    over: transport,
                    line: line,
                    localPort: try LoopbackSocket.freeUDPPort(),
                    outOfCall: outOfCall,
                    name: name,
                    extraArguments: scenario == "watch_dialog" ? ["-aa"] : [],
                    keys: keys,
                    timeout: "40s"
                )
            }
        }

        /// Alice calls `target` (`call_caller.xml`) and expects the answer's media port.
        func call(
            _ target: String,
            _ server: ServerProcess,
            _ transport: Transport,
            answerPort: Int = CallFixture.calleeMediaPort
        ) async throws -> SIPpRun {
            try await aliceRuns(
                "call_caller",
                calling: target,
                server,
                transport,
                name: "caller-alice",
                keys: ["answer_port": String(answerPort)]
            )
        }

        /// Alice calls `target` and expects the final response `status`.
        func refusedCall(
            _ target: String,
            status: Int,
            _ server: ServerProcess,
            _ transport: Transport
        ) async throws -> SIPpRun {
            try await aliceRuns(
                "call_refused",
                calling: target,
                server,
                transport,
                keys: ["status": String(status), "extra_header": "X-Busylamp-Test: none"]
            )
        }

        /// Alice runs caller `scenario` towards `target`, her SDP on `CallFixture.callerMediaPort`.
        func aliceRuns(
            _ scenario: String,
            calling target: String,
            _ server: ServerProcess,
            _ transport: Transport,
            name: String? = nil,
            keys: [String: String] = [:]
        ) async throws -> SIPpRun {
            try await SIPpRun.run(
                scenario,
                against: server,
                over: transport,
                line: Self.alice,
                localPort: try LoopbackSocket.freeUDPPort(),
                name: name,
                keys: keys.merging(["target": target, "sdp_port": String(CallFixture.callerMediaPort)]) { mine, _ in
                    mine
                },
                timeout: "30s"
            )
        }

        /// Waits until each named SIPp's log contains its text (10 s), or fails with what they logged.
        func waitForLogs(
            _ expected: [String: String],
            _ server: ServerProcess,
            _ transport: Transport,
            sourceLocation: SourceLocation = #_sourceLocation
        ) async throws {
            let seen = try await eventually(within: .seconds(10)) {
                expected.allSatisfy { name, text in
                    Self.logs(of: name, over: transport, in: server.workDirectory).contains(text)
                }
            }
            guard seen else {
                let logs = expected.keys.sorted().map {
                    "\($0): \(Self.logs(of: $0, over: transport, in: server.workDirectory))"
                }
                throw EndToEndFailure(
                    "over \(transport), waited 10 s for \(expected); the logs:\n\(logs.joined(separator: "\n"))\nserver output:\n\(server.output)"
                )
            }
        }

        /// What the SIPp runs named `name` over `transport` logged so far.
        static func logs(of name: String, over transport: Transport, in directory: URL) -> String {
            let prefix = "sipp-\(name)-\(transport.rawValue)-"
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".log") }
                .compactMap { try? String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8) }
                .joined(separator: "\n")
        }

        // MARK: Server

        /// `withServer` serving `CallFixture.yaml` (its trunk on `trunkPort`, or on a port
        /// nothing listens on), with `config` (snake_case keys) as a `--config` file.
        func withCallServer(
            _ label: String,
            over transport: Transport,
            trunkPort: Int? = nil,
            config: [String: String] = [:],
            _ body: (ServerProcess) async throws -> Void
        ) async throws {
            let port = try trunkPort ?? LoopbackSocket.freeUDPPort()
            let directory = CallFixture.yaml(
                trunkHost: CallFixture.trunkHost(over: transport),
                trunkPort: port,
                over: transport
            )
            try await withServer(label, directory: directory, config: config, body)
        }

        // MARK: Checks

        /// One NOTIFY a watcher received, as far as the lamp goes.
        struct Notify: CustomStringConvertible {
            var version: Int
            /// `trying`, `proceeding`, `early`, `confirmed`, or `idle` (no dialog in those states).
            var state: String
            /// The busy dialog's attributes (id, call-id, tags, direction), and its remote
            /// identity's attributes and URI.
            var dialog: String
            var remote: String
            var identity: String
            var listsTerminated: Bool
            var description: String { "v\(version) \(state) [\(dialog)] remote [\(remote)] \(identity)" }
        }

        /// The NOTIFYs in a `watch_dialog.xml` run's message trace (those the scenario answered
        /// and those `-aa` did), once each (a retransmission has the same version), by version.
        static func notifies(in trace: String) -> [Notify] {
            func between(_ text: Substring, _ open: String, _ close: String) -> Substring? {
                guard let start = text.range(of: open), let end = text[start.upperBound...].range(of: close) else {
                    return nil
                }
                return text[start.upperBound..<end.lowerBound]
            }
            var byVersion: [Int: Notify] = [:]
            for request in trace.components(separatedBy: "NOTIFY sip:").dropFirst() {
                guard let document = between(request[...], "<dialog-info", "</dialog-info>"),
                    let versionText = between(document, "version=\"", "\""), let version = Int(versionText)
                else { continue }
                var notify = Notify(
                    version: version,
                    state: "idle",
                    dialog: "",
                    remote: "",
                    identity: "",
                    listsTerminated: false
                )
                for element in document.components(separatedBy: "<dialog ").dropFirst() {
                    let dialog = element[...]
                    let state = between(dialog, "<state", "</state>").map { $0.split(separator: ">").last ?? "" } ?? ""
                    if state == "terminated" { notify.listsTerminated = true }
                    guard notify.state == "idle", ["trying", "proceeding", "early", "confirmed"].contains(state) else {
                        continue
                    }
                    notify.state = String(state)
                    notify.dialog = String(dialog.prefix { $0 != ">" })
                    if let remote = between(dialog, "<remote>", "</remote>"),
                        let identity = between(remote, "<identity", "</identity>")
                    {
                        notify.remote = String(identity.prefix { $0 != ">" })
                        notify.identity = String(identity.drop { $0 != ">" }.dropFirst())
                    }
                }
                byVersion[version] = notify
            }
            return byVersion.values.sorted { $0.version < $1.version }
        }

        /// The states of `notifies` with repeats of one state merged.
        static func merged(_ notifies: [Notify]) -> [String] {
            var states: [String] = []
            for notify in notifies where states.last != notify.state { states.append(notify.state) }
            return states
        }

        /// idle → early → confirmed → idle (repeats of one state merged; for the initiator,
        /// trying/proceeding allowed before early), every busy document with `direction`, every
        /// idle one listing a terminated dialog; for the recipient, early names the caller.
        func expectSequence(
            _ notifies: [Notify],
            of whose: String,
            direction: String,
            allowingTrying: Bool,
            caller: Line?,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            var states = Self.merged(notifies)
            if allowingTrying { states.removeAll { $0 == "trying" || $0 == "proceeding" } }
            #expect(
                states == ["idle", "early", "confirmed", "idle"],
                "\(whose): NOTIFY states \(notifies.map(\.state)); expected idle, early, confirmed, idle\n\(notifies)",
                sourceLocation: sourceLocation
            )
            for notify in notifies where notify.state != "idle" {
                #expect(
                    notify.dialog.contains("direction=\"\(direction)\""),
                    "\(whose): a \(notify.state) dialog should have direction=\"\(direction)\": \(notify)",
                    sourceLocation: sourceLocation
                )
            }
            for notify in notifies where notify.state == "idle" {
                #expect(
                    notify.listsTerminated,
                    "\(whose): an idle NOTIFY should list a terminated dialog: \(notify)",
                    sourceLocation: sourceLocation
                )
            }
            if let caller {
                let early = notifies.filter { $0.state == "early" }
                #expect(!early.isEmpty, "\(whose): no early NOTIFY\n\(notifies)", sourceLocation: sourceLocation)
                for notify in early {
                    #expect(
                        notify.remote.contains("display=\"\(caller.name)\"")
                            && notify.identity.contains("sip:\(caller.number)@"),
                        "\(whose): early should name the caller \"\(caller.name)\" sip:\(caller.number)@…: \(notify)",
                        sourceLocation: sourceLocation
                    )
                }
            }
        }

        /// The reason phrase `call_refused.xml` logs as "refused CODE PHRASE".
        static func reasonPhrase(in log: String, status: Int) -> String? {
            for line in log.split(separator: "\n") {
                guard let range = line.range(of: "refused \(status) ") else { continue }
                return String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
            }
            return nil
        }
    }
}
