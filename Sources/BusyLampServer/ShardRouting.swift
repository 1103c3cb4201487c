import SIPCore

/// Which shard handles a message: the rule that lets N shards (one per core, each with its own
/// socket on the same port) serve like one server.
///
/// The kernel spreads datagrams over the shards' sockets by the sender's address, so a phone's
/// requests and its answers to our NOTIFYs keep arriving at one shard. Most work therefore
/// stays where it lands; what must be seen whole goes to one place:
///
/// - A line's state has one owner, shard 0 (``lineOwner``): every REGISTER and every call
///   (INVITE, ACK, CANCEL, the requests in a call's dialog, and the answers to the requests a
///   call sent) is handled there, so that pickups see every ringing call and a line's
///   registrations and calls never race. The owner sends each line change to every other
///   shard, whose watchers then get their NOTIFYs from their own shard.
/// - A subscription lives on the shard that accepted it. Its dialog's To tag and its NOTIFYs'
///   branches carry that shard's mark (``mark(_:shard:)``), so that a refresh or an answer that
///   the kernel hands to another shard (the phone changed its port, the shard count changed
///   across a restart) finds its way back. A tag without a usable mark belongs to the line
///   owner, which is also where such subscriptions are restored.
/// - Everything else (a new SUBSCRIBE, OPTIONS, PUBLISH, a request we do not serve) stays.
///
/// A cluster node is the same idea one level up: the line owner is the node that owns the
/// line, and the line changes it sends are what other nodes' watchers hear.
struct ShardRouting: Sendable {
    /// The shard that owns every line's state, registrations and calls.
    static let lineOwner = 0

    let shardCount: Int

    init(shardCount: Int) {
        self.shardCount = max(1, shardCount)
    }

    /// The shard that handles `message`, which arrived on shard `arrivedOn`.
    func shard(for message: SIPMessage, arrivedOn: Int) -> Int {
        guard shardCount > 1 else { return 0 }
        switch message {
        case .request(let request):
            switch request.method {
            case .register, .invite, .ack, .cancel:
                return Self.lineOwner
            case .subscribe:
                guard let tag = request.to?.tag else { return arrivedOn }
                return shard(ofMarked: tag)
            case .notify, .options, .publish:
                return arrivedOn
            default:
                // In a dialog, any other request is a call's (BYE, UPDATE, INFO, PRACK, REFER).
                return request.to?.tag == nil ? arrivedOn : Self.lineOwner
            }
        case .response(let response):
            guard response.cseq?.method == .notify else { return Self.lineOwner }
            guard let branch = response.topVia?.branch else { return arrivedOn }
            return shard(ofMarked: branch)
        }
    }

    /// Where a stored subscription is restored: where its refreshes will be routed.
    func shard(ofDialogTag localTag: String) -> Int {
        shardCount > 1 ? shard(ofMarked: localTag) : 0
    }

    /// `value` (a fresh tag or branch of ours) marked as belonging to `shard`.
    static func mark(_ value: String, shard: Int) -> String {
        value + markPrefix + String(shard)
    }

    private static let markPrefix = "-s"

    /// The shard a marked value names; the line owner for a value without a usable mark.
    private func shard(ofMarked value: String) -> Int {
        guard let range = value.range(of: Self.markPrefix, options: .backwards),
            let shard = Int(value[range.upperBound...]), shard >= 0, shard < shardCount
        else { return Self.lineOwner }
        return shard
    }
}
