import Crypto
import Foundation

/// Issues digest nonces and judges the nonces that come back, without storing each nonce it
/// issued.
///
/// A nonce is `base64url(timestamp ‖ random ‖ HMAC-SHA256(secret, timestamp ‖ random ‖ realm))`:
/// 8 bytes of seconds since 1970 (big-endian), 14 random bytes, 32 bytes of MAC: 54 bytes, a
/// multiple of 3, so 72 characters with no spare bits (each nonce has exactly one spelling).
/// Only a holder of the secret can make one, so a nonce that verifies is ours, for that realm,
/// and its age is known. RFC 7616 §3.3 suggests this shape for `nonce`: a time stamp and a hash
/// over it and secret data.
///
/// Replay protection (RFC 7616 §3.4 `nc`, §5 Security Considerations): from a nonce's first accepted
/// use until it expires, the highest nonce-count seen for it is remembered, and a credential
/// must present a strictly greater one. At most `maximumTrackedNonces` are remembered; the
/// earliest-used is forgotten first, and `forgottenIssuedAtOrBefore` records the newest issue
/// time among those forgotten. A fresh nonce that is not in the table but was issued at or before
/// that time may have been used and forgotten, so it is answered `stale` (the client retries
/// with a new nonce and no user prompt); one issued later is certainly unused.
///
/// A value: the server holds one per secret and passes `now` on every call; it reads no clock.
public struct NonceManager: Sendable {
    /// What a returned nonce turned out to be.
    public enum Validity: Sendable, Hashable {
        /// Ours, for this realm, within its lifetime.
        case fresh
        /// Ours, for this realm, but older than the lifetime: challenge again with `stale=TRUE`.
        case stale
        /// Not a nonce we issued for this realm (malformed, forged, or from before a restart
        /// with a new secret): challenge again, not stale.
        case invalid
    }

    /// What `acceptNonceCount` decided.
    public enum NonceCountDecision: Sendable, Hashable {
        /// Greater than every count seen for this nonce; now remembered.
        case accepted
        /// Not greater than a count already seen: a replay (or a client bug).
        case replayed
        /// The nonce may have been used and forgotten (table overflow): ask for a new one.
        case forgotten
    }

    /// Bytes of randomness per nonce: 112 bits makes two equal nonces in the same second
    /// vanishingly unlikely, and brings the nonce to a multiple of 3 bytes.
    static let randomByteCount = 14
    static let timestampByteCount = 8
    static let macByteCount = 32
    static let nonceByteCount = timestampByteCount + randomByteCount + macByteCount
    /// Shortest secret accepted: the HMAC key should be at least as long as its security level.
    public static let minimumSecretLength = 16
    /// How far in the future a nonce's timestamp may be and still count as ours: allows for a
    /// wall clock stepped back a little (Kamailio's `nonce_auth_max_drift` defaults to 3 s).
    public static let maximumClockDrift: Int64 = 3

    /// The HMAC key, made once: a key per HMAC (three per digest subscription) copied the
    /// secret into new secure storage each time. `SymmetricKey` is not marked `Sendable`, but it
    /// is immutable once made, and this one is only ever read.
    private nonisolated(unsafe) let key: SymmetricKey
    /// Seconds a nonce stays fresh.
    public let lifetimeSeconds: Int64
    public let maximumTrackedNonces: Int

    /// What the replay table knows a nonce by: its timestamp and its randomness, which fix its
    /// MAC. 24 bytes inline instead of a 72-character string on the heap: the table holds
    /// every nonce used in the last `lifetimeSeconds`, one per subscription or registration.
    private struct Identity: Hashable, Sendable {
        var issued: Int64
        /// The 14 random bytes: the first 8, then the last 6.
        var randomHead: UInt64
        var randomTail: UInt64
    }
    /// The highest nonce-count accepted per nonce.
    private var entries: [Identity: UInt32] = [:]
    /// Nonces in the order of their first accepted use, for eviction; `head` is the oldest live.
    private var order: [Identity] = []
    private var head = 0
    /// The newest issue time among forgotten nonces (see the type's doc comment).
    private var forgottenIssuedAtOrBefore: Int64 = .min

    /// - Parameters:
    ///   - secret: the HMAC key, at least `minimumSecretLength` bytes; the server generates it
    ///     at start (`NonceManager.makeSecret()`), so nonces do not survive a restart.
    ///   - lifetime: how long a nonce is fresh (`DigestPolicy.nonceLifetime`).
    ///   - maximumTrackedNonces: see `DigestPolicy.maximumTrackedNonces`.
    public init(
        secret: [UInt8],
        lifetime: Duration = .seconds(300),
        maximumTrackedNonces: Int = DigestPolicy.defaultMaximumTrackedNonces
    ) {
        precondition(
            secret.count >= Self.minimumSecretLength,
            "nonce secret shorter than \(Self.minimumSecretLength) bytes"
        )
        precondition(maximumTrackedNonces > 0, "maximumTrackedNonces must be positive")
        self.key = SymmetricKey(data: secret)
        lifetimeSeconds = max(1, lifetime.components.seconds)
        self.maximumTrackedNonces = maximumTrackedNonces
    }

    /// A new random secret of 32 bytes.
    public static func makeSecret<R: RandomNumberGenerator>(using generator: inout R) -> [UInt8] {
        (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// A new random secret of 32 bytes from the system's generator.
    public static func makeSecret() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return makeSecret(using: &generator)
    }

    /// How many nonces are being tracked for replay protection.
    public var trackedNonceCount: Int { entries.count }

    // MARK: Issuing

    /// A new nonce for `realm`, stamped with `now`.
    public func issueNonce<R: RandomNumberGenerator>(realm: String, now: Date, using generator: inout R) -> String {
        var payload = Self.timestampBytes(Self.seconds(now))
        // Eight bytes per draw: each draw from the system's generator is a system call.
        while payload.count < Self.timestampByteCount + Self.randomByteCount {
            let random = generator.next()
            let needed = Self.timestampByteCount + Self.randomByteCount - payload.count
            withUnsafeBytes(of: random) { payload.append(contentsOf: $0.prefix(needed)) }
        }
        payload.append(contentsOf: mac(payload, realm: realm))
        return Base64URL.encode(payload)
    }

    /// A new nonce for `realm` with randomness from the system's generator.
    public func issueNonce(realm: String, now: Date) -> String {
        var generator = SystemRandomNumberGenerator()
        return issueNonce(realm: realm, now: now, using: &generator)
    }

    /// An `opaque` value for `realm`: constant for a secret and realm, so it needs no storage.
    /// Clients must echo it (RFC 7616 §3.3); we do not rely on it.
    public func opaque(realm: String) -> String {
        Array(HMAC<SHA256>.authenticationCode(for: Array("opaque:\(realm)".utf8), using: key).prefix(16)).hexString
    }

    // MARK: Validating

    /// Judges a nonce a client returned: ours and fresh, ours and expired, or not ours.
    public func validate(nonce: String, realm: String, now: Date) -> Validity {
        guard let issued = issueTime(of: nonce, realm: realm) else { return .invalid }
        let current = Self.seconds(now)
        if issued > current + Self.maximumClockDrift { return .invalid }
        return current - issued >= lifetimeSeconds ? .stale : .fresh
    }

    /// Records `count` for `nonce` if it is strictly greater than any count seen for it.
    /// Call only after the nonce validated as `.fresh` and the response hash was verified, so
    /// that a forger cannot use up counts.
    ///
    /// RFC 7616 §3.4: "The nc value is the hexadecimal count of the number of requests
    /// (including the current request) that the client has sent with the nonce value in this
    /// request." Remembering the highest count seen lets a server refuse a replayed request
    /// (RFC 7616 §5, paraphrased).
    public mutating func acceptNonceCount(
        _ count: UInt32,
        for nonce: String,
        realm: String,
        now: Date
    ) -> NonceCountDecision {
        // Counts start at 1 (the first request with a nonce), so 0 is never new.
        guard count > 0 else { return .replayed }
        // The caller validated the nonce (its MAC included): no second HMAC here.
        guard let identity = Self.identity(of: nonce) else { return .forgotten }
        if let highest = entries[identity] {
            guard count > highest else { return .replayed }
            entries[identity] = count
            return .accepted
        }
        if identity.issued <= forgottenIssuedAtOrBefore { return .forgotten }
        removeExpired(now: now)
        while entries.count >= maximumTrackedNonces { evictOldest() }
        entries[identity] = count
        order.append(identity)
        return .accepted
    }

    /// Like `acceptNonceCount` for a credential without `qop` (RFC 2069 style), which has no
    /// count: it is accepted while the nonce is fresh, unless that nonce was used with `qop`.
    public func acceptWithoutCount(for nonce: String) -> NonceCountDecision {
        guard let identity = Self.identity(of: nonce) else { return .replayed }
        return entries[identity] == nil ? .accepted : .replayed
    }

    // MARK: Internals

    private func issueTime(of nonce: String, realm: String) -> Int64? {
        // Cheap checks first: a hostile nonce costs a length test, not a decode and an HMAC.
        guard nonce.utf8.count == Base64URL.encodedLength(Self.nonceByteCount),
            let bytes = Base64URL.decode(nonce), bytes.count == Self.nonceByteCount
        else { return nil }
        let signed = Array(bytes.prefix(Self.timestampByteCount + Self.randomByteCount))
        let presented = bytes.suffix(Self.macByteCount)
        guard constantTimeEqual(mac(signed, realm: realm), presented) else { return nil }
        var seconds: UInt64 = 0
        for byte in bytes.prefix(Self.timestampByteCount) { seconds = seconds << 8 | UInt64(byte) }
        return Int64(bitPattern: seconds)
    }

    /// The timestamp and randomness of a nonce of our shape, decoded from its first 32
    /// characters (24 bytes); `nil` for any other shape. Checks no MAC.
    private static func identity(of nonce: String) -> Identity? {
        // 24 bytes are 32 characters exactly: the first two bytes of the MAC come along.
        let prefixByteCount = timestampByteCount + randomByteCount + 2
        guard nonce.utf8.count == Base64URL.encodedLength(nonceByteCount),
            let bytes = Base64URL.decode(nonce.utf8.prefix(Base64URL.encodedLength(prefixByteCount))),
            bytes.count == prefixByteCount
        else { return nil }
        func integer(_ range: Range<Int>) -> UInt64 { bytes[range].reduce(0) { $0 << 8 | UInt64($1) } }
        let randomStart = timestampByteCount
        return Identity(
            issued: Int64(bitPattern: integer(0..<randomStart)),
            randomHead: integer(randomStart..<randomStart + 8),
            randomTail: integer(randomStart + 8..<randomStart + randomByteCount)
        )
    }

    private func mac(_ payload: [UInt8], realm: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: payload + Array(realm.utf8), using: key))
    }

    /// Drops expired nonces from the front of the use order: they would be refused as stale
    /// anyway, so forgetting them does not weaken replay protection.
    private mutating func removeExpired(now: Date) {
        let current = Self.seconds(now)
        while head < order.count, current - order[head].issued >= lifetimeSeconds {
            entries[order[head]] = nil
            head += 1
        }
        compactOrder()
    }

    private mutating func evictOldest() {
        guard head < order.count else { return }
        let identity = order[head]
        head += 1
        if entries.removeValue(forKey: identity) != nil {
            forgottenIssuedAtOrBefore = max(forgottenIssuedAtOrBefore, identity.issued)
        }
        compactOrder()
    }

    /// Keeps `order` from growing without bound: drop the consumed prefix once it is half.
    private mutating func compactOrder() {
        if head > 64, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }

    static func seconds(_ date: Date) -> Int64 {
        Int64(date.timeIntervalSince1970.rounded(.down))
    }

    static func timestampBytes(_ seconds: Int64) -> [UInt8] {
        let value = UInt64(bitPattern: seconds)
        return (0..<8).reversed().map { UInt8(truncatingIfNeeded: value >> (UInt64($0) * 8)) }
    }
}

/// RFC 4648 §5 base64url without padding: nonces travel in quoted strings and must not hold
/// `"` or `\`; this alphabet has neither, nor `,`.
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encodedLength(_ byteCount: Int) -> Int { (byteCount * 4 + 2) / 3 }

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(encodedLength(bytes.count))
        var index = 0
        while index < bytes.count {
            let remaining = bytes.count - index
            let b0 = bytes[index]
            let b1 = remaining > 1 ? bytes[index + 1] : 0
            let b2 = remaining > 2 ? bytes[index + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            if remaining > 1 { out.append(alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)]) }
            if remaining > 2 { out.append(alphabet[Int(b2 & 0x3F)]) }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `nil` for any character outside the alphabet or an impossible length.
    static func decode(_ text: String) -> [UInt8]? { decode(text.utf8) }

    /// `decode(_:)` of UTF-8 bytes (a prefix of a nonce, for instance).
    static func decode(_ utf8: some Collection<UInt8>) -> [UInt8]? {
        var sextets: [UInt8] = []
        sextets.reserveCapacity(utf8.count)
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): sextets.append(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): sextets.append(byte - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): sextets.append(byte - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "-"): sextets.append(62)
            case UInt8(ascii: "_"): sextets.append(63)
            default: return nil
            }
        }
        guard sextets.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(sextets.count * 3 / 4)
        var index = 0
        while index < sextets.count {
            let remaining = sextets.count - index
            let s0 = sextets[index]
            let s1 = sextets[index + 1]
            let s2: UInt8 = remaining > 2 ? sextets[index + 2] : 0
            let s3: UInt8 = remaining > 3 ? sextets[index + 3] : 0
            out.append(s0 << 2 | s1 >> 4)
            if remaining > 2 { out.append(s1 << 4 | s2 >> 2) }
            if remaining > 3 { out.append(s2 << 6 | s3) }
            index += 4
        }
        return out
    }
}
