import ArgumentParser
import BusyLampCore
import Foundation
import FoundationNetworking

/// `busylamp why --account ID --watcher EXT --target EXT`: "why is this lamp orange?" from the
/// command line. It asks the running server (`--http`, token from `BUSYLAMP_ADMIN_TOKEN` or
/// the config's `admin_token`) and prints its diagnosis with the recent refused attempts; when
/// no server answers, it reads the store and says that it shows the rules only (what the
/// running server knows live, where phones register from and what was refused, is not there).
struct WhyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "why",
        abstract: "Explain whether a line may watch another, and why a BLF key is refused."
    )

    @Option(help: "The account id.") var account: String
    @Option(help: "The watcher's extension (the phone with the orange key).") var watcher: String
    @Option(help: "The target's extension (the line the key watches).") var target: String
    @OptionGroup var options: ServerOptions

    func run() async throws {
        let resolved = try options.resolve()
        for (name, value) in [("--watcher", watcher), ("--target", target)]
        where value.isEmpty || !value.allSatisfy(\.isNumber) {
            throw OperatorError(message: "\(name) \(value): expected an extension (digits)")
        }
        if let live = try await askServer(resolved) {
            print(live)
            return
        }
        let store = try ServerLauncher.openStore(resolved.storeLocation)
        defer { try? store.close() }
        guard let directory = try store.loadDirectory() else {
            throw OperatorError(message: "no directory in the store \(store.path)", exitCode: 1)
        }
        guard directory.account(id: account) != nil else {
            throw OperatorError(message: "no account \"\(account)\" in the store", exitCode: 1)
        }
        let diagnosis = SubscriptionDiagnosis.diagnose(
            accountID: account,
            watcherExtension: watcher,
            targetExtension: target,
            directory: directory,
            registeredSourceHosts: nil,
            refusals: []
        )
        print(
            "No server answered at \(resolved.httpAddress): these are the rules from the store only "
                + "(where phones register from and the refused attempts are known to the running server).\n"
        )
        print(Self.render(diagnosis))
    }

    /// The running server's diagnosis as text, or nil when none answers.
    private func askServer(_ resolved: ServerOptions.Resolved) async throws -> String? {
        let host = resolved.httpHost == "0.0.0.0" ? "127.0.0.1" : resolved.httpHost
        let port = resolved.httpPort
        guard port != 0,
            let url = URL(
                string: "http://\(host):\(port)/api/v1/accounts/\(account)/diagnose?watcher=\(watcher)&target=\(target)"
            )
        else { return nil }
        var request = URLRequest(url: url)
        request.timeoutInterval = 3
        if let token = resolved.adminToken { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let answer: (Data, URLResponse)
        do {
            answer = try await URLSession.shared.data(for: request)
        } catch {
            return nil  // nothing listens there: fall back to the store
        }
        let status = (answer.1 as? HTTPURLResponse)?.statusCode ?? 0
        let body = (try? JSONSerialization.jsonObject(with: answer.0)) as? [String: Any] ?? [:]
        guard status == 200 else {
            let detail = body["detail"] as? String ?? String(decoding: answer.0.prefix(200), as: UTF8.self)
            throw OperatorError(message: "the server at \(host):\(port) answered \(status): \(detail)", exitCode: 1)
        }
        return Self.render(json: body)
    }

    static func verdictMark(_ verdict: String) -> String {
        switch verdict {
        case "pass": return "ok  "
        case "fail": return "FAIL"
        case "info": return "info"
        default: return " -- "
        }
    }

    static func render(_ diagnosis: SubscriptionDiagnosis) -> String {
        var text =
            diagnosis.isAccepted
            ? "Decision: accept (200)\n"
            : "Decision: refuse (\(diagnosis.refusalStatus ?? 0) \(diagnosis.refusalReason ?? ""))\n"
        text += diagnosis.summary + "\n\n"
        for rule in diagnosis.rules {
            text += "  [\(verdictMark(rule.verdict.rawValue))] \(rule.name.rawValue): \(rule.detail)\n"
        }
        return text
    }

    static func render(json: [String: Any]) -> String {
        let decision = json["decision"] as? String ?? "?"
        var text = "Decision: \(decision) (\(json["status"] as? Int ?? 0) \(json["reason"] as? String ?? ""))\n"
        text += (json["summary"] as? String ?? "") + "\n\n"
        for rule in json["rules"] as? [[String: Any]] ?? [] {
            let verdict = rule["verdict"] as? String ?? ""
            text += "  [\(verdictMark(verdict))] \(rule["rule"] as? String ?? ""): \(rule["detail"] as? String ?? "")\n"
        }
        let refusals = json["refusals"] as? [[String: Any]] ?? []
        text += refusals.isEmpty ? "\nNo refused attempts recently for this pair.\n" : "\nRecent refused attempts:\n"
        for refusal in refusals {
            text += "  \(refusal["time"] as? String ?? "")  from \(refusal["source"] as? String ?? "")  "
            text += "\(refusal["status"] as? Int ?? 0) \(refusal["reason"] as? String ?? "")\n"
        }
        return text
    }
}
