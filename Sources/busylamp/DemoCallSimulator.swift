import BusyLampCore
import BusyLampServer
import Foundation
import Logging
import ServiceLifecycle

/// `busylamp demo`'s simulated calls (PRODUCT.md: "simulated calls, so a newcomer sees lamps
/// change at once"): Joe calls Bob, Bob's lamp blinks, Bob answers, both are busy, they hang
/// up; then Alice calls Joe; and round again, while the demo runs.
///
/// The calls are shown to the lamps only, through ``SIPServer/simulate(_:onLine:)``: no SIP
/// message is sent, and a line whose phone is registered is left to its real calls.
struct DemoCallSimulator: Service {
    let server: SIPServer
    let office: DemoOffice
    let logger: Logger
    /// How long each simulated call rings, talks, and how long the office is quiet between calls.
    var ringing: Duration = .seconds(4)
    var talking: Duration = .seconds(6)
    var quiet: Duration = .seconds(5)
    /// The demo office's lines, built once (building them hashes every password).
    private let directory: Directory

    init(server: SIPServer, office: DemoOffice, logger: Logger) {
        self.server = server
        self.office = office
        self.logger = logger
        self.directory = office.directory
    }

    func run() async throws {
        let pairs = [("223", "222"), ("221", "223")]  // Joe → Bob, Alice → Joe
        // Graceful shutdown cancels the loop's sleeps, so the demo stops at once on Ctrl-C.
        try? await cancelWhenGracefulShutdown {
            var round = 0
            while !Task.isCancelled {
                let (callerExtension, calleeExtension) = pairs[round % pairs.count]
                round += 1
                try await simulateCall(from: callerExtension, to: calleeExtension, id: "demo\(round)")
                try await Task.sleep(for: quiet)
            }
        }
    }

    private func simulateCall(from callerExtension: String, to calleeExtension: String, id: String) async throws {
        let caller = party(callerExtension)
        let callee = party(calleeExtension)
        let started = Date()
        func dialog(_ state: LineDialog.State, direction: LineDialog.Direction) -> LineDialog {
            let (local, remote) = direction == .initiator ? (caller, callee) : (callee, caller)
            return LineDialog(
                id: (direction == .initiator ? "c" : "r") + id,
                callID: id + "@demo.busylamp",
                localTag: nil,
                remoteTag: nil,
                direction: direction,
                state: state,
                local: local,
                remote: remote,
                startedAt: started
            )
        }
        let callerNumber = office.number(callerExtension)
        let calleeNumber = office.number(calleeExtension)
        for (state, pause) in [(LineDialog.State.early, ringing), (.confirmed, talking), (.terminated, Duration.zero)] {
            _ = await server.simulate(dialog(state, direction: .initiator), onLine: callerNumber)
            _ = await server.simulate(dialog(state, direction: .recipient), onLine: calleeNumber)
            logger.debug("Simulated call", metadata: ["demo.call": "\(id)", "demo.state": "\(state.rawValue)"])
            if pause > .zero { try await Task.sleep(for: pause) }
        }
    }

    private func party(_ extensionNumber: String) -> LineDialog.Party {
        let line = directory.line(accountID: DemoOffice.accountID, extensionNumber: extensionNumber)
        let identity = line?.identity(domain: DemoOffice.domain)
        return LineDialog.Party(
            identity: identity?.uri.description ?? extensionNumber,
            displayName: identity?.displayName
        )
    }
}
