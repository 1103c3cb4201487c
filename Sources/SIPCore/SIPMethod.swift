/// A SIP request method (RFC 3261 §7.1). Methods are case-sensitive tokens: `INVITE` and
/// `invite` are different methods (RFC 4475 §3.1.2.7 checks this).
public struct SIPMethod: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public var description: String { rawValue }

    public static let invite = SIPMethod("INVITE")
    public static let ack = SIPMethod("ACK")
    public static let bye = SIPMethod("BYE")
    public static let cancel = SIPMethod("CANCEL")
    public static let register = SIPMethod("REGISTER")
    public static let options = SIPMethod("OPTIONS")
    public static let subscribe = SIPMethod("SUBSCRIBE")
    public static let notify = SIPMethod("NOTIFY")
    public static let publish = SIPMethod("PUBLISH")
    public static let refer = SIPMethod("REFER")
    public static let message = SIPMethod("MESSAGE")
    public static let info = SIPMethod("INFO")
    public static let prack = SIPMethod("PRACK")
    public static let update = SIPMethod("UPDATE")

    /// Every method defined by an RFC that BusyLamp knows of. A request with a method outside
    /// this set gets 501; one inside it that a server does not serve gets 405 (RFC 3261 §21.5.2,
    /// §21.4.6).
    public static let known: Set<SIPMethod> = [
        .invite, .ack, .bye, .cancel, .register, .options, .subscribe, .notify, .publish, .refer,
        .message, .info, .prack, .update,
    ]
}
