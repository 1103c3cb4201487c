import Benchmark
import BenchmarkSupport
import BusyLampCore
import NotifierFixtures
import SIPCore
import SIPTransactions

/// What one NOTIFY costs to build: its body (RFC 4235 dialog-info, RFC 3863 PIDF), its request
/// in the subscription's dialog, the whole NOTIFY as the notifier builds it, and its bytes.
///
/// Every iteration builds 1,000 (`scalingFactor: .kilo`): throughput is per second and mallocs
/// are per document or NOTIFY.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .busyLamp(scalingFactor: .kilo)

    let entity = "sip:202@\(NotifierFixtures.domain)"
    let ringing = NotifierFixtures.ringing()
    let busy = NotifierFixtures.busy()

    /// 1,000 documents of Bob's line, versions 0 to 999.
    func dialogInfo(_ benchmark: Benchmark, dialogs: [LineDialog], ended: [LineDialog] = []) {
        for n in benchmark.scaledIterations {
            blackHole(
                DialogInfoDocument.render(
                    entity: entity,
                    version: UInt32(n),
                    idleDialogID: "202",
                    dialogs: dialogs,
                    ended: ended
                )
            )
        }
    }
    Benchmark("dialog_info_idle") { dialogInfo($0, dialogs: []) }
    Benchmark("dialog_info_ringing") { dialogInfo($0, dialogs: ringing.dialogs) }
    // The call has just ended: RFC 4235 §3.7.1, listed once as terminated.
    Benchmark("dialog_info_ended") { dialogInfo($0, dialogs: [], ended: busy.dialogs) }

    Benchmark("PIDF_busy") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(PresenceDocument.render(entity: entity, tupleID: "202", state: busy))
        }
    }

    // The request line and the dialog's headers (From, To, Call-ID, CSeq, Max-Forwards), before
    // the notifier adds Event, Subscription-State and the body.
    var dialog = NotifierFixtures.subscription(0, watcher: NotifierFixtures.alice).dialog
    Benchmark("NOTIFY_in_dialog_request") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(dialog.makeRequest(method: .notify))
        }
    }

    // The whole NOTIFY as the notifier builds it for one watcher, with its `.persist`: Bob's
    // line rings, then the call ends (listed as terminated), each NOTIFY answered 200 (which
    // builds nothing). Mallocs are the mean of the two.
    var notifier = NotifierFixtures.settledNotifier(subscriptions: 1)
    let states = [ringing, NotifierFixtures.idle()]
    Benchmark("NOTIFY_built_by_notifier") { benchmark in
        for n in benchmark.scaledIterations {
            let actions = notifier.lineChanged(states[n % 2], now: NotifierFixtures.now)
            NotifierFixtures.answer(actions, in: &notifier)
            blackHole(actions)
        }
    }

    // Its bytes on the wire (the driver adds Via and Contact first).
    var once = NotifierFixtures.settledNotifier(subscriptions: 1)
    let notify = NotifierFixtures.notifies(in: once.lineChanged(ringing, now: NotifierFixtures.now))[0]
    Benchmark("NOTIFY_serialize") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(notify.serializedBytes)
        }
    }
}
