import Foundation
import Testing

extension EndToEnd {
    /// The admin HTTP API against the real `busylamp serve` (issue 8, "Done when"): every
    /// endpoint and each error status over HTTP, and the live effects of a change on SIPp
    /// watchers (presence off ends a subscription and refuses the next SUBSCRIBE; on again lets
    /// it in; a group change refuses it and the diagnosis names the group and the address).
    @Suite("Admin API (HTTP, SIPp)", .timeLimit(.minutes(3)))
    struct AdminAPI {
        static let token = "e2e-admin-token-0123456789"
        static let alice = DirectoryFixture.alice
        static let bob = DirectoryFixture.bob
        static let domain = DirectoryFixture.domain

        /// A server with the fixture's directory and an admin token.
        static func withAPIServer(
            _ label: String,
            config: [String: String] = ["admin_token": AdminAPI.token],
            _ body: (ServerProcess, HTTPTestClient) async throws -> Void
        ) async throws {
            try await withServer(label, directory: DirectoryFixture.yaml, config: config) { server in
                let port = try #require(server.httpPort, "busylamp serve printed no `http 127.0.0.1:PORT` line")
                try await body(server, HTTPTestClient(port: port, token: Self.token))
            }
        }

        // MARK: Every endpoint, every error

        @Test func accountsAndLinesWithEveryErrorStatus() async throws {
            try await Self.withAPIServer("api-crud") { server, api in
                // 401: no token, a wrong token.
                var anonymous = api
                anonymous.token = nil
                let noToken = try await anonymous.get("/api/v1/accounts")
                #expect(noToken.status == 401 && noToken.json["error"] as? String == "unauthorized", "\(noToken)")
                #expect(noToken.headers["www-authenticate"]?.hasPrefix("Bearer") == true, "\(noToken)")
                anonymous.token = "not-the-token-at-all"
                #expect(try await anonymous.get("/api/v1/accounts").status == 401)

                // The directory file's account, with its lines' settings and no password.
                let accounts = try await api.get("/api/v1/accounts")
                #expect(accounts.status == 200, "\(accounts)")
                let list = accounts.json["accounts"] as? [[String: Any]] ?? []
                #expect(list.map { $0["id"] as? String } == ["acme"], "\(accounts)")
                let lines = try await api.get("/api/v1/accounts/acme/lines")
                #expect((lines.json["lines"] as? [[String: Any]])?.count == DirectoryFixture.lines.count, "\(lines)")
                #expect(
                    !lines.text.contains("password") && !lines.text.contains("secret"),
                    "passwords are write-only: \(lines)"
                )

                // Accounts: create, duplicate, bad bodies, read, change, unknown.
                let created = try await api.send(
                    "POST",
                    "/api/v1/accounts",
                    json: #"{"id": "globex", "name": "Globex", "presence": false}"#
                )
                #expect(created.status == 201 && created.json["presence"] as? Bool == false, "\(created)")
                let duplicate = try await api.send("POST", "/api/v1/accounts", json: #"{"id": "globex"}"#)
                #expect(duplicate.status == 409 && duplicate.json["error"] as? String == "conflict", "\(duplicate)")
                for (body, field) in [
                    (#"{"id": "Bad Id!"}"#, "id"),
                    (#"{"id": "ok", "colour": "red"}"#, "colour"),
                    (#"{"id": "ok", "presence": "yes"}"#, "presence"),
                    (#"{"id": "ok", "pickup": {"directed": "*8a"}}"#, "pickup.directed"),
                    (#"{"name": "no id"}"#, "id"),
                ] {
                    let refused = try await api.send("POST", "/api/v1/accounts", json: body)
                    #expect(refused.status == 400 && refused.json["field"] as? String == field, "\(body) → \(refused)")
                }
                let notJSON = try await api.send("POST", "/api/v1/accounts", json: "{not json")
                #expect(notJSON.status == 400 && notJSON.json["error"] as? String == "bad_request", "\(notJSON)")
                let huge = try await api.send(
                    "POST",
                    "/api/v1/accounts",
                    json: #"{"id": "x", "name": ""# + String(repeating: "a", count: 70_000) + #""}"#
                )
                #expect(huge.status == 413 && huge.json["error"] as? String == "body_too_large", "\(huge)")
                #expect(try await api.get("/api/v1/accounts/globex").json["name"] as? String == "Globex")
                let patched = try await api.send(
                    "PATCH",
                    "/api/v1/accounts/globex",
                    json: #"{"presence": null, "same_network_only": true}"#
                )
                #expect(
                    patched.status == 200 && patched.json["presence"] is NSNull
                        && patched.json["same_network_only"] as? Bool == true,
                    "\(patched)"
                )
                #expect(try await api.get("/api/v1/accounts/nope").status == 404)
                #expect(try await api.send("PATCH", "/api/v1/accounts/nope", json: "{}").status == 404)

                // Lines: create, duplicates, bad values, read, change, delete.
                let line = try await api.send(
                    "POST",
                    "/api/v1/accounts/globex/lines",
                    json:
                        #"{"extension": "501", "number": "6495550501", "name": "Gina", "password": "gina-secret", "group": "SALES"}"#
                )
                #expect(
                    line.status == 201 && line.json["group"] as? String == "SALES" && line.json["password"] == nil,
                    "\(line)"
                )
                let sameExtension = try await api.send(
                    "POST",
                    "/api/v1/accounts/globex/lines",
                    json: #"{"extension": "501", "number": "6495550599", "password": "p"}"#
                )
                #expect(
                    sameExtension.status == 409 && sameExtension.json["field"] as? String == "extension",
                    "\(sameExtension)"
                )
                let sameNumber = try await api.send(
                    "POST",
                    "/api/v1/accounts/globex/lines",
                    json: #"{"extension": "502", "number": "\#(Self.alice.number)", "password": "p"}"#
                )
                #expect(sameNumber.status == 409 && sameNumber.json["field"] as? String == "number", "\(sameNumber)")
                for (body, field) in [
                    (#"{"extension": "50a", "number": "6495550502", "password": "p"}"#, "extension"),
                    (#"{"extension": "502", "number": "+6495550502", "password": "p"}"#, "number"),
                    (#"{"extension": "502", "number": "6495550502"}"#, "password"),
                    (
                        #"{"extension": "502", "number": "6495550502", "password": "p", "group": "SA\u0000LES"}"#,
                        "group"
                    ),
                    (#"{"extension": "502", "number": "6495550502", "password": "p", "group": "A\nB"}"#, "group"),
                    (#"{"extension": 502, "number": "6495550502", "password": "p"}"#, "extension"),
                ] {
                    let refused = try await api.send("POST", "/api/v1/accounts/globex/lines", json: body)
                    #expect(refused.status == 400 && refused.json["field"] as? String == field, "\(body) → \(refused)")
                }
                #expect(
                    try await api.send(
                        "POST",
                        "/api/v1/accounts/nope/lines",
                        json: #"{"extension": "1", "number": "123", "password": "p"}"#
                    ).status == 404
                )
                let renumber = try await api.send(
                    "PATCH",
                    "/api/v1/accounts/globex/lines/501",
                    json: #"{"number": "6495550511"}"#
                )
                #expect(renumber.status == 400 && renumber.json["field"] as? String == "password", "\(renumber)")
                let changed = try await api.send(
                    "PATCH",
                    "/api/v1/accounts/globex/lines/501",
                    json: #"{"name": "Gina B", "presence": true, "password": "new-secret"}"#
                )
                #expect(
                    changed.status == 200 && changed.json["name"] as? String == "Gina B"
                        && changed.json["presence_source"] as? String == "line",
                    "\(changed)"
                )
                #expect(
                    try await api.get("/api/v1/accounts/globex/lines/501").json["presence_effective"] as? Bool == true
                )
                #expect(try await api.get("/api/v1/accounts/globex/lines/999").status == 404)
                #expect(try await api.request("DELETE", "/api/v1/accounts/globex/lines/501").status == 204)
                #expect(try await api.request("DELETE", "/api/v1/accounts/globex/lines/501").status == 404)

                // Live reads of an idle office.
                let state = try await api.get("/api/v1/accounts/acme/lines/\(Self.bob.extensionNumber)/state")
                #expect(
                    state.status == 200 && state.json["state"] as? String == "idle"
                        && state.json["registered"] as? Bool == false,
                    "\(state)"
                )
                #expect(try await api.get("/api/v1/accounts/acme/lines/999/state").status == 404)
                #expect(
                    (try await api.get("/api/v1/accounts/acme/lamps").json["lamps"] as? [Any])?.count
                        == DirectoryFixture.lines.count
                )
                #expect(try await api.get("/api/v1/accounts/acme/subscriptions").json["subscriptions"] as? [Any] != nil)
                #expect(try await api.get("/api/v1/accounts/acme/refusals").json["refusals"] as? [Any] != nil)
                #expect(try await api.get("/api/v1/accounts/nope/refusals").status == 404)
                let noWatcher = try await api.get("/api/v1/accounts/acme/diagnose?target=202")
                #expect(noWatcher.status == 400 && noWatcher.json["field"] as? String == "watcher", "\(noWatcher)")
                let badTarget = try await api.get("/api/v1/accounts/acme/diagnose?watcher=201&target=2x2")
                #expect(badTarget.status == 400 && badTarget.json["field"] as? String == "target", "\(badTarget)")
                let accepted = try await api.get("/api/v1/accounts/acme/diagnose?watcher=201&target=202")
                #expect(accepted.status == 200 && accepted.json["decision"] as? String == "accept", "\(accepted)")

                // Provisioning files for each vendor; an unknown vendor or line is 404.
                for (vendor, type) in [
                    ("yealink", "text/plain"), ("polycom", "xml"), ("cisco", "xml"), ("snom", "xml"),
                ] {
                    let file = try await api.get("/provision/\(vendor)/acme/201")
                    #expect(
                        file.status == 200 && file.headers["content-type"]?.contains(type) == true,
                        "\(vendor): \(file)"
                    )
                    #expect(file.headers["content-disposition"]?.contains("attachment") == true, "\(vendor): \(file)")
                    #expect(file.text.contains(Self.bob.number), "\(vendor)'s file should have a key for Bob: \(file)")
                }
                #expect(try await api.get("/provision/nokia/acme/201").status == 404)
                #expect(try await api.get("/provision/yealink/acme/999").status == 404)
                #expect(try await anonymous.get("/provision/yealink/acme/201").status == 401)

                // Deleting the account deletes its lines.
                #expect(try await api.request("DELETE", "/api/v1/accounts/globex").status == 204)
                #expect(try await api.get("/api/v1/accounts/globex").status == 404)
                #expect(try await api.get("/api/v1/nothing-here").json["error"] as? String == "not_found")

                // What the API accepted is in the store: a restart still has Gina's account.
                _ = server
            }
        }

        /// "Nothing lost": what the API accepted is in the store, and a restart with the same
        /// (unedited) directory file keeps it; `kill -9` right after the 2xx loses nothing either.
        @Test func apiChangesSurviveARestartAndACrash() async throws {
            let workDirectory = try TestEnvironment.makeTemporaryDirectory("api-restart")
            let configFile = workDirectory.appendingPathComponent("config.yaml")
            try "admin_token: \(Self.token)\n".write(to: configFile, atomically: true, encoding: .utf8)
            let arguments = ["--config", configFile.path]
            let first = try await ServerProcess.start(in: workDirectory, extraArguments: arguments)
            let api = HTTPTestClient(port: try #require(first.httpPort), token: Self.token)
            #expect(
                try await api.send("PATCH", "/api/v1/accounts/acme/lines/202", json: #"{"group": "SALES"}"#).status
                    == 200
            )
            #expect(
                try await api.send("POST", "/api/v1/accounts", json: #"{"id": "kept", "name": "Kept Ltd"}"#).status
                    == 201
            )
            _ = try await first.killHard()

            let second = try await ServerProcess.start(in: workDirectory, extraArguments: arguments)
            let again = HTTPTestClient(port: try #require(second.httpPort), token: Self.token)
            let line = try await again.get("/api/v1/accounts/acme/lines/202")
            #expect(line.json["group"] as? String == "SALES", "after kill -9 and a restart: \(line)\n\(second.output)")
            #expect(try await again.get("/api/v1/accounts/kept").status == 200)
            #expect(second.output.contains("unchanged since its last import"), "\(second.output)")
            #expect(try await second.stop() == .exited(0))

            // An edited file is the operator's new directory: it replaces the store at start.
            let edited = DirectoryFixture.yaml.replacingOccurrences(of: "name: Acme Ltd", with: "name: Acme Limited")
            let third = try await DirectoryFixture.serving(edited) {
                try await ServerProcess.start(in: workDirectory, extraArguments: arguments)
            }
            let fresh = HTTPTestClient(port: try #require(third.httpPort), token: Self.token)
            #expect(try await fresh.get("/api/v1/accounts/acme").json["name"] as? String == "Acme Limited")
            #expect(try await fresh.get("/api/v1/accounts/acme/lines/202").json["group"] as? String == "DEFAULT")
            #expect(try await third.stop() == .exited(0))
            try? FileManager.default.removeItem(at: workDirectory)
        }

        /// INTERFACE.md: no token configured → the API is closed (503, never open), while SIP,
        /// `/metrics`, `/healthz` and the console page are served.
        @Test func noTokenMeansTheAPIIsClosed() async throws {
            try await Self.withAPIServer("api-no-token", config: [:]) { server, api in
                let closed = try await api.get("/api/v1/accounts")
                #expect(closed.status == 503 && closed.json["error"] as? String == "no_token_configured", "\(closed)")
                #expect(try await api.get("/healthz").status == 200)
                #expect(try await api.get("/metrics").status == 200)
                let page = try await api.get("/")
                #expect(page.status == 200 && page.headers["content-type"]?.contains("text/html") == true, "\(page)")
                #expect(
                    server.output.contains("No admin token configured"),
                    "the start-up log should say so:\n\(server.output)"
                )
                let register = try await SIPpRun.run("register", against: server, over: .udp, line: Self.alice)
                expectPass(register, "register with the API closed", .udp, server)
            }
        }

        /// A burst of wrong tokens from one address: 401 each, counted, then 429 with Retry-After.
        @Test func wrongTokensAreSlowedThenRefused() async throws {
            try await Self.withAPIServer("api-guessing") { _, api in
                var guesser = api
                var statuses: [Int] = []
                for attempt in 0..<22 {
                    guesser.token = "guess-\(attempt)-0000000000"
                    statuses.append(try await guesser.get("/api/v1/accounts", headers: [:]).status)
                }
                #expect(statuses.prefix(20).allSatisfy { $0 == 401 }, "\(statuses)")
                #expect(statuses.suffix(2).allSatisfy { $0 == 429 }, "\(statuses)")
                let locked = try await guesser.get("/api/v1/accounts")
                #expect(locked.headers["retry-after"] != nil, "\(locked)")
                let metrics = try await api.get("/metrics").text
                #expect(metrics.contains("busylamp_admin_auth_failures_total 20"), "\(metrics.prefix(3000))")
            }
        }

        // MARK: Live effects on SIP

        /// Presence off for Bob through the API: Alice's subscription ends with a terminated
        /// NOTIFY (`rejected`) and her next SUBSCRIBE gets 403; presence on again: 200.
        @Test func presenceOffEndsTheSubscriptionAndOnLetsItBackIn() async throws {
            try await Self.withAPIServer("api-presence") { server, api in
                let watcher = try await aliceWatchesBob(server, api, until: "rejected")
                let off = try await api.send(
                    "PATCH",
                    "/api/v1/accounts/acme/lines/\(Self.bob.extensionNumber)",
                    json: #"{"presence": false}"#
                )
                #expect(off.status == 200 && off.json["presence_effective"] as? Bool == false, "\(off)")
                expectPass(try await watcher.value, "watcher ended by presence off (API)", .udp, server)

                let refused = try await subscribe(server, expecting: 403)
                expectPass(refused, "SUBSCRIBE after presence off: 403", .udp, server)

                let on = try await api.send(
                    "PATCH",
                    "/api/v1/accounts/acme/lines/\(Self.bob.extensionNumber)",
                    json: #"{"presence": true}"#
                )
                #expect(on.status == 200 && on.json["presence_effective"] as? Bool == true, "\(on)")
                let accepted = try await SIPpRun.run(
                    "subscribe_dialog",
                    against: server,
                    over: .udp,
                    line: Self.alice,
                    keys: [
                        "target": "\(Self.bob.extensionNumber)@\(Self.domain)",
                        "entity": "sip:\(Self.bob.extensionNumber)@\(Self.domain)",
                        "dialog_id": Self.bob.extensionNumber, "expires": "600", "expires_limit": "600",
                    ]
                )
                expectPass(accepted, "SUBSCRIBE after presence on: 200", .udp, server)
            }
        }

        /// The account-wide switch ends the account's subscriptions too.
        @Test func accountPresenceOffEndsTheSubscription() async throws {
            try await Self.withAPIServer("api-account-presence") { server, api in
                let watcher = try await aliceWatchesBob(server, api, until: "rejected")
                let off = try await api.send("PATCH", "/api/v1/accounts/acme", json: #"{"presence": false}"#)
                #expect(off.status == 200, "\(off)")
                expectPass(try await watcher.value, "watcher ended by the account's presence off (API)", .udp, server)
                let diagnosis = try await api.get("/api/v1/accounts/acme/diagnose?watcher=201&target=202").json
                let presence = (diagnosis["rules"] as? [[String: Any]])?.first { $0["rule"] as? String == "presence" }
                #expect(
                    presence?["verdict"] as? String == "fail" && presence?["source"] as? String == "account",
                    "\(diagnosis)"
                )
            }
        }

        /// A new password for the watcher's line ends its subscription with `deactivated` (the
        /// phone re-subscribes and authenticates again); a deleted target with `noresource`.
        @Test(arguments: [
            ("new password for the watcher", "201", #"{"password": "alice-new-secret"}"#, "deactivated"),
            ("target deleted", "202", "", "noresource"),
        ])
        func passwordChangeAndDeletionEndTheSubscription(
            _ label: String,
            _ extensionNumber: String,
            _ body: String,
            _ reason: String
        ) async throws {
            try await Self.withAPIServer("api-\(reason)") { server, api in
                let watcher = try await aliceWatchesBob(server, api, until: reason)
                let path = "/api/v1/accounts/acme/lines/\(extensionNumber)"
                let response =
                    body.isEmpty ? try await api.request("DELETE", path) : try await api.send("PATCH", path, json: body)
                #expect((200..<300).contains(response.status), "\(label): \(response)")
                expectPass(
                    try await watcher.value,
                    "watcher ended (\(label)): terminated;reason=\(reason)",
                    .udp,
                    server
                )
            }
        }

        /// Bob moved to another group: Alice's subscription ends, her next SUBSCRIBE gets 403, and
        /// the diagnosis names the group and the address the refused attempt came from.
        @Test func groupChangeRefusesAndTheDiagnosisSaysWhy() async throws {
            try await Self.withAPIServer("api-group") { server, api in
                let watcher = try await aliceWatchesBob(server, api, until: "rejected")
                let moved = try await api.send(
                    "PATCH",
                    "/api/v1/accounts/acme/lines/\(Self.bob.extensionNumber)",
                    json: #"{"group": "SALES"}"#
                )
                #expect(moved.status == 200 && moved.json["group"] as? String == "SALES", "\(moved)")
                expectPass(try await watcher.value, "watcher ended by the group change (API)", .udp, server)

                let port = try LoopbackSocket.freeUDPPort()
                let refused = try await subscribe(server, expecting: 403, localPort: port)
                expectPass(refused, "SUBSCRIBE after the group change: 403", .udp, server)

                let response = try await api.get("/api/v1/accounts/acme/diagnose?watcher=201&target=202")
                let diagnosis = response.json
                #expect(
                    diagnosis["decision"] as? String == "refuse" && diagnosis["status"] as? Int == 403,
                    "\(response)"
                )
                #expect((diagnosis["summary"] as? String)?.contains("SALES") == true, "\(response)")
                let group = (diagnosis["rules"] as? [[String: Any]])?.first { $0["rule"] as? String == "same_group" }
                #expect(
                    group?["verdict"] as? String == "fail" && (group?["detail"] as? String)?.contains("SALES") == true,
                    "\(response)"
                )
                let attempts = diagnosis["refusals"] as? [[String: Any]] ?? []
                let attempt = attempts.first { $0["status"] as? Int == 403 }
                #expect(
                    attempt?["source"] as? String == "udp:127.0.0.1:\(port)",
                    "the refused attempt's source: \(response)"
                )
                #expect((attempt?["reason"] as? String)?.lowercased().contains("group") == true, "\(response)")
                #expect(attempt?["code"] as? String == "other_group", "\(response)")
                let refusals =
                    try await api.get("/api/v1/accounts/acme/refusals").json["refusals"] as? [[String: Any]] ?? []
                #expect(
                    refusals.contains {
                        $0["code"] as? String == "other_group" && $0["watcher"] as? String == "201"
                            && $0["target"] as? String == "202"
                    }
                )
            }
        }

        /// A wrong password shows up in the diagnosis as bad credentials, with its address.
        @Test func badCredentialsAreInTheDiagnosis() async throws {
            try await Self.withAPIServer("api-bad-credentials") { server, api in
                let run = try await SIPpRun.run(
                    "subscribe_refused",
                    against: server,
                    over: .udp,
                    line: Self.alice,
                    password: "not-alices-password",
                    keys: [
                        "target": "\(Self.bob.extensionNumber)@\(Self.domain)", "event": "dialog",
                        "accept": "application/dialog-info+xml", "expires": "600", "status": "401",
                        "min_expires": String(DirectoryFixture.minimumExpires),
                    ]
                )
                _ = run  // the scenario's pass or fail is SIPp's view of a 401 loop; the server's record is what counts
                let diagnosis = try await api.get("/api/v1/accounts/acme/diagnose?watcher=201&target=202").json
                let attempts = diagnosis["refusals"] as? [[String: Any]] ?? []
                #expect(
                    attempts.contains {
                        $0["code"] as? String == "bad_credentials"
                            && ($0["source"] as? String)?.hasPrefix("udp:127.0.0.1:") == true
                    },
                    "\(diagnosis)"
                )
            }
        }

        /// `busylamp why`: asks the running server (the refused attempt included); with no
        /// server it reads the store and says it shows the rules only.
        @Test func whyAsksTheServerThenReadsTheStore() async throws {
            let configFile = FileManager.default.temporaryDirectory
                .appendingPathComponent("busylamp-why-\(UUID().uuidString.prefix(8)).yaml")
            defer { try? FileManager.default.removeItem(at: configFile) }
            try await Self.withAPIServer("api-why") { server, api in
                try "admin_token: \(Self.token)\n".write(to: configFile, atomically: true, encoding: .utf8)
                let moved = try await api.send("PATCH", "/api/v1/accounts/acme/lines/202", json: #"{"group": "SALES"}"#)
                #expect(moved.status == 200)
                expectPass(try await subscribe(server, expecting: 403), "SUBSCRIBE across groups: 403", .udp, server)
                let live = try await Self.busylamp(
                    [
                        "why", "--account", "acme", "--watcher", "201", "--target", "202", "--config", configFile.path,
                        "--http", "127.0.0.1:\(api.port)",
                    ],
                    in: server.workDirectory
                )
                #expect(live.status == .exited(0), "\(live.output)")
                #expect(live.output.contains("Decision: refuse (403 Target In Another Group)"), "\(live.output)")
                #expect(live.output.contains("from udp:127.0.0.1:"), "the refused attempt is listed:\n\(live.output)")

                // Nothing listens at --http: the store alone (SQLite is read beside the server).
                let offline = try await Self.busylamp(
                    [
                        "why", "--account", "acme", "--watcher", "201", "--target", "202", "--data",
                        server.dataDirectory.path, "--http", "127.0.0.1:1",
                    ],
                    in: server.workDirectory
                )
                #expect(offline.status == .exited(0), "\(offline.output)")
                #expect(offline.output.contains("rules from the store only"), "\(offline.output)")
                #expect(
                    offline.output.contains("[FAIL] same_group"),
                    "the API's group change was stored:\n\(offline.output)"
                )
            }
        }

        /// Runs the busylamp binary to its end and returns its exit and output.
        static func busylamp(
            _ arguments: [String],
            in directory: URL
        ) async throws
            -> (status: ChildProcess.Termination, output: String)
        {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let stamp = UUID().uuidString.prefix(8)
            let out = directory.appendingPathComponent("cli-\(stamp).out")
            let err = directory.appendingPathComponent("cli-\(stamp).err")
            let process = try ChildProcess(
                executable: try TestEnvironment.busylampBinary(),
                arguments: arguments,
                standardOutput: out,
                standardError: err
            )
            guard let status = try await process.waitForExit(within: .seconds(20)) else {
                throw EndToEndFailure("busylamp \(arguments.joined(separator: " ")) did not end in 20 s")
            }
            let output =
                ((try? String(contentsOf: out, encoding: .utf8)) ?? "")
                + ((try? String(contentsOf: err, encoding: .utf8)) ?? "")
            return (status, output)
        }

        /// A refused call is in the account's refusals too, with its reason.
        @Test func refusedCallIsInTheRefusals() async throws {
            try await Self.withAPIServer("api-invite-refusal") { server, api in
                let run = try await SIPpRun.run(
                    "call_refused",
                    against: server,
                    over: .udp,
                    line: Self.alice,
                    keys: [
                        "target": "299", "status": "404", "sdp_port": "6000",
                        "extra_header": "X-Busylamp-Test: none",
                    ]
                )
                expectPass(run, "call_refused 404 (Alice calls 299)", .udp, server)
                let refusals =
                    try await api.get("/api/v1/accounts/acme/refusals").json["refusals"] as? [[String: Any]] ?? []
                let call = refusals.first { $0["method"] as? String == "INVITE" }
                #expect(call?["status"] as? Int == 404 && call?["watcher"] as? String == "201", "\(refusals)")
                #expect(
                    call?["code"] as? String == "no_trunk",
                    "299 is no extension, and the fixture has no trunk: \(refusals)"
                )
            }
        }

        // MARK: Events and metrics

        /// The event stream: a snapshot, then one `lamp` event per change (a registration), a
        /// heartbeat, and a reconnect with Last-Event-ID that gets exactly the missed change.
        @Test func eventStreamSnapshotChangesAndResume() async throws {
            try await Self.withAPIServer("api-events", config: ["admin_token": Self.token]) { server, api in
                let stream = try await api.events("/api/v1/accounts/acme/events")
                #expect(stream.status == 200)
                let snapshot = try #require(try await stream.next(within: .seconds(5)), "no snapshot event")
                #expect(
                    snapshot.event == "snapshot"
                        && (snapshot.json["lamps"] as? [Any])?.count == DirectoryFixture.lines.count,
                    "\(snapshot)"
                )

                let register = try await SIPpRun.run("register", against: server, over: .udp, line: Self.bob)
                expectPass(register, "register (Bob)", .udp, server)
                let lamp = try #require(
                    try await stream.next(within: .seconds(5)),
                    "no lamp event after Bob registered"
                )
                #expect(
                    lamp.event == "lamp" && lamp.json["extension"] as? String == "202"
                        && lamp.json["registered"] as? Bool == true,
                    "\(lamp)"
                )
                let lastID = try #require(lamp.id)

                // Missed while disconnected: Alice registers.
                let aliceRegisters = try await SIPpRun.run("register", against: server, over: .udp, line: Self.alice)
                expectPass(aliceRegisters, "register (Alice)", .udp, server)
                let resumed = try await api.events("/api/v1/accounts/acme/events", headers: ["Last-Event-ID": lastID])
                let missed = try #require(try await resumed.next(within: .seconds(5)), "no event on resume")
                #expect(
                    missed.event == "lamp" && missed.json["extension"] as? String == "201",
                    "resume should replay Alice's change, not a snapshot: \(missed)"
                )

                // An id from another run (epoch) gets a snapshot.
                let stale = try await api.events("/api/v1/accounts/acme/events", headers: ["Last-Event-ID": "other-5"])
                #expect(try await stale.next(within: .seconds(5))?.event == "snapshot")
                #expect(try await api.get("/api/v1/accounts/nope/events").status == 404)
            }
        }

        /// An idle stream sends a heartbeat comment (every 15 s), so proxies and browsers keep it.
        @Test func idleEventStreamSendsAHeartbeat() async throws {
            try await Self.withAPIServer("api-heartbeat") { _, api in
                let stream = try await api.events("/api/v1/accounts/acme/events")
                #expect(try await stream.next(within: .seconds(5))?.event == "snapshot")
                let clock = ContinuousClock()
                let deadline = clock.now.advanced(by: .seconds(18))
                while stream.commentCount == 0, clock.now < deadline {
                    _ = try await stream.next(within: .milliseconds(500))
                }
                #expect(
                    stream.commentCount >= 1,
                    "no heartbeat within 18 s: \(String(decoding: stream.connection.received, as: UTF8.self).suffix(300).debugDescription)"
                )
            }
        }

        /// `/metrics` is Prometheus text: every line a comment or `name{labels} value`, and the
        /// issue's metrics are there after some traffic; `/healthz` says the store and listeners.
        @Test func metricsAreParseablePrometheusText() async throws {
            try await Self.withAPIServer("api-metrics") { server, api in
                let register = try await SIPpRun.run("register", against: server, over: .udp, line: Self.bob)
                expectPass(register, "register (Bob)", .udp, server)
                let refused = try await subscribe(server, expecting: 404, target: "299")
                expectPass(refused, "SUBSCRIBE to an unknown target: 404", .udp, server)
                try await Task.sleep(for: .seconds(1.2))  // the gauges are recorded each second

                let response = try await api.get("/metrics")
                #expect(response.status == 200 && response.headers["content-type"]?.hasPrefix("text/plain") == true)
                let samples = try PrometheusText.parse(response.text)
                for name in [
                    "busylamp_sip_requests_total", "busylamp_sip_refusals_total", "busylamp_sip_auth_failures_total",
                    "busylamp_subscriptions_active", "busylamp_registrations_lines", "busylamp_notify_sent_total",
                    "busylamp_notify_coalesced_total", "busylamp_calls_active",
                ] {
                    #expect(
                        samples.contains { $0.name == name },
                        "no \(name) in /metrics:\n\(response.text.prefix(4000))"
                    )
                }
                #expect(samples.contains { $0.name == "busylamp_notify_line_change_to_send_seconds_bucket" })
                #expect(samples.first { $0.name == "busylamp_registrations_lines" }?.value == 1, "\(samples)")
                #expect(
                    samples.contains {
                        $0.name == "busylamp_sip_refusals_total" && $0.labels["reason"] == "unknown_target"
                            && $0.value >= 1
                    }
                )

                let health = try await api.get("/healthz")
                #expect(
                    health.status == 200 && health.json["store"] as? String == "ok"
                        && health.json["sip_listeners"] as? Int == 2,
                    "\(health)"
                )
                let document = try await api.get("/openapi.json")
                #expect(
                    document.status == 200 && document.json["openapi"] as? String != nil,
                    "\(document.text.prefix(200))"
                )
            }
        }

        // MARK: Helpers

        /// Alice's BLF key on Bob (`watcher_until_rules_end_it`), started in the background and
        /// returned once the server lists the subscription; it ends when a NOTIFY says
        /// `terminated;reason=REASON`.
        func aliceWatchesBob(
            _ server: ServerProcess,
            _ api: HTTPTestClient,
            until reason: String
        ) async throws
            -> Task<SIPpRun, Error>
        {
            let watcher = Task {
                try await SIPpRun.run(
                    "watcher_until_rules_end_it",
                    against: server,
                    over: .udp,
                    line: Self.alice,
                    keys: ["target": Self.bob.extensionNumber, "reason": reason]
                )
            }
            try await eventuallySubscribed(api, watcher: Self.alice.extensionNumber, target: Self.bob.extensionNumber)
            return watcher
        }

        /// Waits until the server lists `watcher`'s subscription to `target` (its 200 was sent).
        func eventuallySubscribed(_ api: HTTPTestClient, watcher: String, target: String) async throws {
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: .seconds(10))
            while clock.now < deadline {
                let list = try await api.get("/api/v1/accounts/acme/subscriptions?target=\(target)").json
                let subscriptions = list["subscriptions"] as? [[String: Any]] ?? []
                if subscriptions.contains(where: { $0["watcher"] as? String == watcher }) {
                    try await Task.sleep(for: .milliseconds(300))  // the initial NOTIFY and its 200
                    return
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw EndToEndFailure("\(watcher) never subscribed to \(target)")
        }

        /// Alice's SUBSCRIBE to `target` (Bob by default), expecting `status`.
        func subscribe(
            _ server: ServerProcess,
            expecting status: Int,
            target: String = "202",
            localPort: Int? = nil
        )
            async throws -> SIPpRun
        {
            try await SIPpRun.run(
                "subscribe_refused",
                against: server,
                over: .udp,
                line: Self.alice,
                localPort: localPort,
                keys: [
                    "target": "\(target)@\(Self.domain)", "event": "dialog", "accept": "application/dialog-info+xml",
                    "expires": "600", "status": String(status), "min_expires": String(DirectoryFixture.minimumExpires),
                ]
            )
        }
    }
}

/// A reader of the Prometheus text format (version 0.0.4) that refuses anything malformed.
enum PrometheusText {
    struct Sample: Sendable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    static func parse(_ text: String) throws -> [Sample] {
        var samples: [Sample] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("#") {
                let words = line.split(separator: " ")
                if words.count >= 2, words[1] == "TYPE" {
                    guard words.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(words[3])
                    else {
                        throw EndToEndFailure("bad TYPE line: \(line)")
                    }
                }
                continue
            }
            guard
                let match = line.wholeMatch(
                    of: /(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)( \d+)?/
                )
            else { throw EndToEndFailure("not a Prometheus sample line: \(line)") }
            let valueText = String(match.output.value)
            guard
                let value = Double(valueText)
                    ?? (valueText == "+Inf" ? .infinity : valueText == "-Inf" ? -.infinity : nil)
            else { throw EndToEndFailure("bad sample value: \(line)") }
            var labels: [String: String] = [:]
            if let labelText = match.output.labels, !labelText.isEmpty {
                for pair in labelText.split(separator: ",") {
                    guard let pairMatch = pair.wholeMatch(of: /(?<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?<value>[^"]*)"/) else {
                        throw EndToEndFailure("bad label \(pair) in: \(line)")
                    }
                    labels[String(pairMatch.output.key)] = String(pairMatch.output.value)
                }
            }
            samples.append(Sample(name: String(match.output.name), labels: labels, value: value))
        }
        return samples
    }
}
