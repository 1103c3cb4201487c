import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension EndToEnd {
    /// The web console in a real browser (issue 8, "Done when"): headless Chromium driven over
    /// WebDriver (Debian's `chromium` and `chromium-driver`), against the real server with SIPp
    /// phones. It signs in with the token, shows the account's lamps, sees Bob's lamp ring with
    /// the caller's name while a SIPp call rings and go back to idle when it ends, and turns
    /// presence off for Bob in the page, which ends a SIPp watcher's subscription.
    @Suite("Web console (Chromium)", .timeLimit(.minutes(3)))
    struct Console {
        static let token = "browser-test-token-0123456789"
        static let bob = DirectoryFixture.bob

        @Test func receptionistSeesCallsAndTurnsPresenceOff() async throws {
            let calls = EndToEnd.Calls()
            try await calls.withCallServer(
                "console-browser",
                over: .udp,
                config: ["admin_token": Self.token, "ring_timeout": "4"]
            ) { server in
                let httpPort = try #require(server.httpPort)
                let browser = try await Browser.start(in: server.workDirectory)
                defer { browser.stop() }

                // Sign in with the token, as a receptionist would, in the page's own form.
                try await browser.open("http://127.0.0.1:\(httpPort)/")
                let tokenInput = try await browser.waitForElement("#token-input")
                try await browser.type(Self.token, into: tokenInput)
                try await browser.click(try await browser.waitForElement("#signin-submit"))
                let lamps = try await browser.waitUntil("the test account's lamps", within: .seconds(10)) {
                    let count = try await browser.script(
                        "return document.querySelectorAll('.lamp[data-extension]').length"
                    )
                    return (count as? Int).flatMap { $0 >= 4 ? $0 : nil }
                }
                #expect(lamps >= 4)
                #expect(try await browser.lampState("202") == "unregistered", "Bob has no phone yet")

                // Bob's phone registers: his lamp turns green (idle), live.
                let callee = calls.startCallee(.cancelled, name: "callee-bob", server, .udp)
                try await calls.waitForLogs(["callee-bob": "registered"], server, .udp)
                _ = try await browser.waitUntil("Bob's lamp idle once registered", within: .seconds(5)) {
                    try await browser.lampState("202") == "idle" ? true : nil
                }

                // Alice calls Bob; nobody answers, so it rings until ring_timeout (4 s), then ends.
                let caller = Task { try await calls.refusedCall("202", status: 480, server, .udp) }
                let ringing = try await browser.waitUntil("Bob's lamp ringing with Alice's name", within: .seconds(5)) {
                    let text = try await browser.lampText("202")
                    return try await browser.lampState("202") == "ringing" && text.contains("Alice") ? text : nil
                }
                #expect(
                    ringing.contains(DirectoryFixture.alice.number),
                    "the ringing lamp shows the caller's number: \(ringing)"
                )
                try await browser.screenshot(to: Self.screenshotURL("console-ringing", server))
                expectPass(try await caller.value, "call_refused 480 (Alice, ring timeout)", .udp, server)
                expectPass(try await callee.value, "call_callee + call_callee_cancelled (Bob)", .udp, server)
                _ = try await browser.waitUntil("Bob's lamp idle after the call", within: .seconds(5)) {
                    try await browser.lampState("202") == "idle" ? true : nil
                }

                // Joe's phone watches Bob; the receptionist turns Bob's presence off in the page.
                let watcher = Task {
                    try await SIPpRun.run(
                        "watcher_until_rules_end_it",
                        against: server,
                        over: .udp,
                        line: DirectoryFixture.joe,
                        keys: ["target": Self.bob.extensionNumber, "reason": "rejected"]
                    )
                }
                try await browser.click(try await browser.waitForElement(".lamp[data-extension=\"202\"]"))
                _ = try await browser.waitUntil("Joe listed as Bob's watcher in the line panel", within: .seconds(10)) {
                    () async throws -> Bool? in
                    let text =
                        try await browser.script("return document.querySelector('#line-panel')?.innerText ?? ''")
                        as? String ?? ""
                    if !text.contains("203") {
                        // The panel lists watchers when it opens: reopen it until Joe's SUBSCRIBE is in.
                        _ = try await browser.script("document.querySelector('.lamp[data-extension=\"202\"]').click()")
                        return nil
                    }
                    return true
                }
                try await browser.screenshot(to: Self.screenshotURL("console-line-panel", server))
                try await browser.click(try await browser.waitForElement("#line-presence option[value=\"off\"]"))
                try await browser.click(try await browser.waitForElement("#line-presence-save"))
                expectPass(try await watcher.value, "Joe's watcher ended by the page's presence toggle", .udp, server)
                let api = HTTPTestClient(port: httpPort, token: Self.token)
                let line = try await api.get("/api/v1/accounts/acme/lines/202").json
                #expect(line["presence"] as? Bool == false, "\(line)")
            }
        }

        /// `busylamp demo` as a new user meets it: the console URL it prints (with its token)
        /// opens the console, signed in, and the demo office's lamps change within a minute.
        @Test func demoConsoleURLOpensAndLampsChange() async throws {
            let workDirectory = try TestEnvironment.makeTemporaryDirectory("demo-console")
            let server = try await ServerProcess.start(in: workDirectory, demo: true)
            do {
                let line = try #require(
                    server.output.split(separator: "\n").first { $0.contains("Open the console: ") },
                    "busylamp demo printed no console URL:\n\(server.output)"
                )
                let url = String(line[line.range(of: "http://")!.lowerBound...]).trimmingCharacters(in: .whitespaces)
                #expect(url.contains("#token="), "\(url)")
                let browser = try await Browser.start(in: workDirectory)
                defer { browser.stop() }
                try await browser.open(url)
                let first = try await browser.waitUntil("the demo office's lamps", within: .seconds(15)) {
                    () async throws -> [String: String]? in
                    let states = try await browser.lampStates()
                    return states.count >= 4 ? states : nil
                }
                let changed = try await browser.waitUntil("a lamp of the demo office changing", within: .seconds(60)) {
                    () async throws -> [String: String]? in
                    let now = try await browser.lampStates()
                    return now != first && !now.isEmpty ? now : nil
                }
                #expect(changed != first)
                try await browser.screenshot(to: workDirectory.appendingPathComponent("console-demo.png"))
            } catch {
                _ = try? await server.stop()
                throw error
            }
            #expect(try await server.stop() == .exited(0), "busylamp demo after SIGTERM:\n\(server.output)")
            try? FileManager.default.removeItem(at: workDirectory)
        }

        /// Where a screenshot goes: beside the server's files, and copied to the system's
        /// temporary directory so that a person can look at the last run.
        static func screenshotURL(_ name: String, _ server: ServerProcess) -> URL {
            server.workDirectory.appendingPathComponent("\(name).png")
        }
    }
}

/// Headless Chromium under chromedriver, spoken to over the W3C WebDriver protocol.
final class Browser: @unchecked Sendable {
    // @unchecked: one test drives it at a time.
    let driver: ChildProcess
    let client: HTTPTestClient
    let session: String
    static let elementKey = "element-6066-11e4-a52e-4f735466cecf"

    private init(driver: ChildProcess, client: HTTPTestClient, session: String) {
        self.driver = driver
        self.client = client
        self.session = session
    }

    static func start(in directory: URL) async throws -> Browser {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver"),
            FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium")
        else {
            throw EndToEndFailure("chromium and chromium-driver are not installed (scripts/test installs them)")
        }
        let port = try freeTCPPort()
        let driver = try ChildProcess(
            executable: URL(fileURLWithPath: "/usr/bin/chromedriver"),
            arguments: ["--port=\(port)", "--allowed-ips=127.0.0.1"],
            standardOutput: directory.appendingPathComponent("chromedriver.out"),
            standardError: directory.appendingPathComponent("chromedriver.err")
        )
        let client = HTTPTestClient(port: port, token: nil)
        var ready = false
        for _ in 0..<100 {
            if let status = try? await client.get("/status"), status.status == 200 {
                ready = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard ready else { throw EndToEndFailure("chromedriver did not answer on port \(port)") }
        let capabilities = """
            {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
              "binary": "/usr/bin/chromium",
              "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                       "--window-size=1600,900", "--user-data-dir=\(directory.path)/chromium-profile"]}}}}
            """
        let created = try await client.send("POST", "/session", json: capabilities)
        guard let value = created.json["value"] as? [String: Any], let session = value["sessionId"] as? String else {
            throw EndToEndFailure("no WebDriver session: \(created)")
        }
        return Browser(driver: driver, client: client, session: session)
    }

    func stop() {
        let client = self.client
        let session = self.session
        let driver = self.driver
        Task {
            _ = try? await client.request("DELETE", "/session/\(session)")
            driver.signal(SIGTERM)
        }
    }

    @discardableResult
    func command(_ method: String, _ path: String, _ body: [String: Any] = [:]) async throws -> Any? {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        let response =
            method == "GET"
            ? try await client.get("/session/\(session)\(path)")
            : try await client.send(method, "/session/\(session)\(path)", json: json)
        guard response.status == 200 else { throw EndToEndFailure("WebDriver \(method) \(path): \(response)") }
        return response.json["value"]
    }

    func open(_ url: String) async throws { try await command("POST", "/url", ["url": url]) }

    func script(_ source: String) async throws -> Any? {
        try await command("POST", "/execute/sync", ["script": source, "args": []])
    }

    func waitForElement(_ selector: String, within timeout: Duration = .seconds(10)) async throws -> String {
        try await waitUntil("element \(selector)", within: timeout) {
            let response = try await self.client.send(
                "POST",
                "/session/\(self.session)/element",
                json: String(
                    decoding: try JSONSerialization.data(withJSONObject: ["using": "css selector", "value": selector]),
                    as: UTF8.self
                )
            )
            return (response.json["value"] as? [String: Any])?[Self.elementKey] as? String
        }
    }

    func click(_ element: String) async throws { try await command("POST", "/element/\(element)/click") }

    func type(_ text: String, into element: String) async throws {
        try await command("POST", "/element/\(element)/value", ["text": text])
    }

    func lampState(_ extensionNumber: String) async throws -> String? {
        try await script(
            "return document.querySelector('.lamp[data-extension=\"\(extensionNumber)\"]')?.dataset.state ?? null"
        ) as? String
    }

    /// Every lamp's `data-state`, by extension.
    func lampStates() async throws -> [String: String] {
        let pairs =
            try await script(
                "return [...document.querySelectorAll('.lamp[data-extension]')].map(l => l.dataset.extension + '=' + l.dataset.state)"
            ) as? [String] ?? []
        var states: [String: String] = [:]
        for pair in pairs {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { states[parts[0]] = parts[1] }
        }
        return states
    }

    func lampText(_ extensionNumber: String) async throws -> String {
        try await script(
            "return document.querySelector('.lamp[data-extension=\"\(extensionNumber)\"]')?.innerText ?? ''"
        ) as? String ?? ""
    }

    func screenshot(to url: URL) async throws {
        guard let base64 = try await command("GET", "/screenshot") as? String, let data = Data(base64Encoded: base64)
        else {
            throw EndToEndFailure("no screenshot")
        }
        try data.write(to: url)
        try? FileManager.default.removeItem(
            at: FileManager.default.temporaryDirectory.appendingPathComponent(url.lastPathComponent)
        )
        try? FileManager.default.copyItem(
            at: url,
            to: FileManager.default.temporaryDirectory.appendingPathComponent(url.lastPathComponent)
        )
    }

    /// Polls `condition` every 100 ms until it returns a value, or fails after `timeout`.
    func waitUntil<Value>(
        _ what: String,
        within timeout: Duration,
        _ condition: () async throws -> Value?
    ) async throws -> Value {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            if let value = try await condition() { return value }
            if clock.now >= deadline {
                let page = (try? await script("return document.body.innerText")) as? String ?? "?"
                throw EndToEndFailure("waited \(timeout) for \(what); the page says:\n\(page.prefix(3000))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago.
    static func freeTCPPort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = LoopbackSocket.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw EndToEndFailure("bind: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
