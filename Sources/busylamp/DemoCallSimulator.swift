import BusyLampCore
import BusyLampServer
import Foundation
import Logging
import ServiceLifecycle

/// `busylamp demo`'s simulated calls (PRODUCT.md: "simulated calls, so a newcomer sees lamps
/// change at once"), round and round while the demo runs, a few seconds apart:
/// 1. Joe calls Bob: Bob's lamp blinks, Bob answers, both are busy, they hang up.
/// 2. Alice calls Joe, and Joe answers.
/// 3. Joe calls Bob, Bob's lamp blinks, and Leo picks the call up (`*89222`): Bob's lamp goes
///    idle, Leo's shows the call from Joe, Joe's shows Leo; then they hang up.
///
/// The calls are shown to the lamps only, through ``SIPServer/simulate(_:onLine:simulatedUserAgent:)``:
/// no SIP message is sent. A line registered only by the demo's own phones (``DemoPhones``,
/// which place no calls) shows them; a line with another phone registered is left to its real
/// calls.
struct DemoCallSimulator: Service {
    let server: SIPServer
    let office: DemoOffice
    let logger: Logger
    /// How long each simulated call rings, talks, and how long the office is quiet between calls
    /// (short, so that some lamp changes at least every 10 s).
    var ringing: Duration = .seconds(4)
    var talking: Duration = .seconds(6)
    var quiet: Duration = .seconds(4)
    /// The demo office's lines, built once (building them hashes every password).
    private let directory: Directory

    init(server: SIPServer, office: DemoOffice, logger: Logger) {
        self.server = server
        self.office = office
        self.logger = logger
        self.directory = office.directory
    }

    /// One call of the round.
    private enum Call {
        case answered(caller: String, callee: String)
        case pickedUp(caller: String, callee: String, picker: String)
    }

    func run() async throws {
        let round: [Call] = [
            .answered(caller: "223", callee: "222"),  // Joe → Bob
            .answered(caller: "221", callee: "223"),  // Alice → Joe
            .pickedUp(caller: "223", callee: "222", picker: "220"),  // Joe → Bob, Leo picks up
        ]
        // Graceful shutdown cancels the loop's sleeps, so the demo stops at once on Ctrl-C.
        try? await cancelWhenGracefulShutdown {
            var count = 0
            while !Task.isCancelled {
                let call = round[count % round.count]
                count += 1
                try await play(steps(of: call, id: "demo\(count)"))
                try await Task.sleep(for: quiet)
            }
        }
    }

    /// What the lamps show at one moment of a call, and how long until the next moment.
    private struct Step {
        var dialogs: [(number: String, dialog: LineDialog)]
        var pause: Duration
    }

    private func steps(of call: Call, id: String) -> [Step] {
        let started = Date()
        let callID = id + "@demo.busylamp"
        switch call {
        case .answered(let caller, let callee):
            func both(_ state: LineDialog.State) -> [(number: String, dialog: LineDialog)] {
                [
                    leg("c" + id, callID, on: caller, .initiator, state, with: callee, startedAt: started),
                    leg("r" + id, callID, on: callee, .recipient, state, with: caller, startedAt: started),
                ]
            }
            return [
                Step(dialogs: both(.early), pause: ringing),
                Step(dialogs: both(.confirmed), pause: talking),
                Step(dialogs: both(.terminated), pause: .zero),
            ]
        case .pickedUp(let caller, let callee, let picker):
            func callerLeg(_ state: LineDialog.State, with remote: String) -> (number: String, dialog: LineDialog) {
                leg("c" + id, callID, on: caller, .initiator, state, with: remote, startedAt: started)
            }
            func calleeLeg(_ state: LineDialog.State) -> (number: String, dialog: LineDialog) {
                leg("r" + id, callID, on: callee, .recipient, state, with: caller, startedAt: started)
            }
            let pickupCallID = id + "-pickup@demo.busylamp"
            // The picker's own call leg (its INVITE to the pickup code), which the B2BUA reports
            // as the caller's call arriving at the picker.
            func pickerLeg(_ state: LineDialog.State) -> (number: String, dialog: LineDialog) {
                leg("p" + id, pickupCallID, on: picker, .recipient, state, with: caller, startedAt: started)
            }
            return [
                Step(dialogs: [callerLeg(.early, with: callee), calleeLeg(.early)], pause: ringing),
                Step(
                    dialogs: [calleeLeg(.terminated), pickerLeg(.confirmed), callerLeg(.confirmed, with: picker)],
                    pause: talking
                ),
                Step(dialogs: [pickerLeg(.terminated), callerLeg(.terminated, with: picker)], pause: .zero),
            ]
        }
    }

    private func play(_ steps: [Step]) async throws {
        for step in steps {
            for (number, dialog) in step.dialogs {
                _ = await server.simulate(dialog, onLine: number, simulatedUserAgent: DemoPhones.userAgent)
                logger.debug(
                    "Simulated call",
                    metadata: [
                        DemoLogKey.call: "\(dialog.callID)", DemoLogKey.state: "\(dialog.state.rawValue)",
                        LogKey.line: "\(number)",
                    ]
                )
            }
            if step.pause > .zero { try await Task.sleep(for: step.pause) }
        }
    }

    /// The dialog of one line (`lineExtension`) in a call with `remoteExtension`.
    private func leg(
        _ dialogID: String,
        _ callID: String,
        on lineExtension: String,
        _ direction: LineDialog.Direction,
        _ state: LineDialog.State,
        with remoteExtension: String,
        startedAt: Date
    ) -> (number: String, dialog: LineDialog) {
        let dialog = LineDialog(
            id: dialogID,
            callID: callID,
            localTag: nil,
            remoteTag: nil,
            direction: direction,
            state: state,
            local: party(lineExtension),
            remote: party(remoteExtension),
            startedAt: startedAt
        )
        return (office.number(lineExtension), dialog)
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

extension DemoCallSimulator: CustomStringConvertible {
    /// What ServiceLifecycle logs for the service (without the office's passwords).
    var description: String { "DemoCallSimulator" }
}
