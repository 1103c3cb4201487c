import Foundation
import SIPCore
import Testing

@testable import SIPAuth

@Suite(.timeLimit(.minutes(1))) struct NonceManagerTests {
    let realm = "sip.busylamp.test"

    func manager(maximumTrackedNonces: Int = 100) -> NonceManager {
        NonceManager(secret: testSecret, lifetime: .seconds(300), maximumTrackedNonces: maximumTrackedNonces)
    }

    func issue(_ nonces: NonceManager, at date: Date, seed: UInt64 = 1) -> String {
        var generator = SplitMix64(seed: seed)
        return nonces.issueNonce(realm: realm, now: date, using: &generator)
    }

    @Test func nonceShapeIsQuotableAndFixedLength() {
        let nonce = issue(manager(), at: testEpoch)
        #expect(nonce.utf8.count == 72)
        #expect(
            nonce.utf8.allSatisfy { $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") && $0 != UInt8(ascii: ",") }
        )
    }

    @Test func randomnessIsInjectedAndVaries() {
        let nonces = manager()
        #expect(issue(nonces, at: testEpoch, seed: 7) == issue(nonces, at: testEpoch, seed: 7))
        #expect(issue(nonces, at: testEpoch, seed: 7) != issue(nonces, at: testEpoch, seed: 8))
        #expect(nonces.issueNonce(realm: realm, now: testEpoch) != nonces.issueNonce(realm: realm, now: testEpoch))
    }

    @Test func freshUntilTheLifetimeThenStale() {
        let nonces = manager()
        let nonce = issue(nonces, at: testEpoch)
        #expect(nonces.validate(nonce: nonce, realm: realm, now: testEpoch) == .fresh)
        #expect(nonces.validate(nonce: nonce, realm: realm, now: testEpoch + 299) == .fresh)
        #expect(nonces.validate(nonce: nonce, realm: realm, now: testEpoch + 300) == .stale)
        #expect(nonces.validate(nonce: nonce, realm: realm, now: testEpoch + 86_400) == .stale)
    }

    @Test func forgedOrForeignNoncesAreInvalid() {
        let nonces = manager()
        let nonce = issue(nonces, at: testEpoch)
        // One character changed anywhere (timestamp, random part, MAC) breaks the MAC.
        for position in [0, 5, 11, 20, 40, 71] {
            var bytes = Array(nonce.utf8)
            bytes[position] = bytes[position] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            #expect(
                nonces.validate(nonce: String(decoding: bytes, as: UTF8.self), realm: realm, now: testEpoch) == .invalid
            )
        }
        #expect(nonces.validate(nonce: nonce, realm: "other.test", now: testEpoch) == .invalid)
        let otherSecret = NonceManager(secret: Array("another secret of 32 bytes......".utf8))
        #expect(otherSecret.validate(nonce: nonce, realm: realm, now: testEpoch) == .invalid)
        for garbage in [
            "", "abc", String(repeating: "A", count: 72), String(repeating: "=", count: 72),
            String(repeating: "é", count: 36), nonce + "A",
        ] {
            #expect(nonces.validate(nonce: garbage, realm: realm, now: testEpoch) == .invalid)
        }
    }

    /// A nonce stamped later than now (a clock stepped back further than the allowed drift)
    /// is not accepted as ours.
    @Test func futureNoncesBeyondDriftAreInvalid() {
        let nonces = manager()
        let nonce = issue(nonces, at: testEpoch + 60)
        #expect(nonces.validate(nonce: nonce, realm: realm, now: testEpoch) == .invalid)
        #expect(
            nonces.validate(nonce: nonce, realm: realm, now: testEpoch + 60 - Double(NonceManager.maximumClockDrift))
                == .fresh
        )
    }

    @Test func nonceCountMustIncreaseStrictly() {
        var nonces = manager()
        let nonce = issue(nonces, at: testEpoch)
        #expect(nonces.acceptNonceCount(1, for: nonce, realm: realm, now: testEpoch) == .accepted)
        #expect(nonces.acceptNonceCount(1, for: nonce, realm: realm, now: testEpoch) == .replayed)
        #expect(nonces.acceptNonceCount(3, for: nonce, realm: realm, now: testEpoch) == .accepted)
        #expect(nonces.acceptNonceCount(2, for: nonce, realm: realm, now: testEpoch) == .replayed)
        #expect(nonces.acceptNonceCount(4, for: nonce, realm: realm, now: testEpoch) == .accepted)
        #expect(nonces.acceptWithoutCount(for: nonce) == .replayed)
        let unused = issue(nonces, at: testEpoch, seed: 2)
        #expect(nonces.acceptNonceCount(0, for: unused, realm: realm, now: testEpoch) == .replayed)
        #expect(nonces.trackedNonceCount == 1)
    }

    @Test func tableIsBoundedAndForgottenNoncesAreNotReplayable() {
        let limit = 4
        var nonces = manager(maximumTrackedNonces: limit)
        // Nonces issued one second apart, used in order.
        let issued = (0..<10).map { issue(nonces, at: testEpoch + Double($0), seed: UInt64($0) + 1) }
        for (index, nonce) in issued.enumerated() {
            #expect(nonces.acceptNonceCount(1, for: nonce, realm: realm, now: testEpoch + 10) == .accepted)
            #expect(nonces.trackedNonceCount == min(index + 1, limit))
        }
        // The first six were forgotten: their reuse is refused as "forgotten" (answered stale),
        // never accepted again.
        for nonce in issued.prefix(6) {
            #expect(nonces.acceptNonceCount(1, for: nonce, realm: realm, now: testEpoch + 10) == .forgotten)
            #expect(nonces.acceptNonceCount(2, for: nonce, realm: realm, now: testEpoch + 10) == .forgotten)
        }
        for nonce in issued.suffix(4) {
            #expect(nonces.acceptNonceCount(1, for: nonce, realm: realm, now: testEpoch + 10) == .replayed)
        }
        // A nonce issued after every forgotten one is certainly unused and is accepted.
        let later = issue(nonces, at: testEpoch + 20, seed: 99)
        #expect(nonces.acceptNonceCount(1, for: later, realm: realm, now: testEpoch + 20) == .accepted)
        #expect(nonces.trackedNonceCount == limit)
    }

    @Test func expiredEntriesAreDroppedFirst() {
        var nonces = manager(maximumTrackedNonces: 1000)
        for index in 0..<200 {
            let nonce = issue(nonces, at: testEpoch, seed: UInt64(index) + 1)
            #expect(nonces.acceptNonceCount(1, for: nonce, realm: realm, now: testEpoch) == .accepted)
        }
        #expect(nonces.trackedNonceCount == 200)
        let later = issue(nonces, at: testEpoch + 400, seed: 5000)
        #expect(nonces.acceptNonceCount(1, for: later, realm: realm, now: testEpoch + 400) == .accepted)
        #expect(nonces.trackedNonceCount == 1)
    }

    @Test func opaqueIsStablePerRealm() {
        let nonces = manager()
        #expect(nonces.opaque(realm: realm) == manager().opaque(realm: realm))
        #expect(nonces.opaque(realm: realm) != nonces.opaque(realm: "other"))
        #expect(nonces.opaque(realm: realm).count == 32)
    }

    @Test(arguments: [0, 1, 2, 3, 4, 5, 53, 54, 55])
    func base64URLRoundTrips(length: Int) {
        var generator = SplitMix64(seed: UInt64(length) + 3)
        let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let text = Base64URL.encode(bytes)
        #expect(text.utf8.count == Base64URL.encodedLength(length))
        #expect(Base64URL.decode(text) == bytes)
    }
}
