import Foundation
import Testing

@testable import AdminAPI

/// The API's input rules (docs/admin-api.md) and the bad-token throttle, with no server.
@Suite("Admin API input and token", .timeLimit(.minutes(1)))
struct AdminInputTests {
    @Test(arguments: [
        ("201", true), ("2", true), ("", false), ("20a", false), ("٢٠١", false),
        (String(repeating: "1", count: 17), false),
    ])
    func extensions(_ text: String, _ valid: Bool) {
        #expect((FieldRules.extensionNumber(text) == nil) == valid, "\(text)")
    }

    @Test(arguments: [
        ("SALES", true), ("Front desk", true), ("", false), ("A\u{0}B", false), ("A\nB", false), ("A\u{202E}B", false),
        (" SALES", false), (String(repeating: "x", count: 65), false),
    ])
    func groups(_ text: String, _ valid: Bool) {
        #expect((FieldRules.group(text) == nil) == valid, "\(text.debugDescription)")
    }

    @Test(arguments: [("acme", true), ("acme-2_b", true), ("Acme", false), ("-acme", false), ("a b", false)])
    func accountIDs(_ text: String, _ valid: Bool) {
        #expect((FieldRules.accountID(text) == nil) == valid, "\(text)")
    }

    static func body(_ json: String) throws -> JSONObjectBody {
        guard case .object(let fields) = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)) else {
            throw APIError.badRequest("not an object")
        }
        return JSONObjectBody(fields: fields)
    }

    @Test func nullTrueFalseAndAbsentAreToldApart() throws {
        let body = try Self.body(#"{"a": null, "b": true, "c": 1, "d": "x"}"#)
        #expect(try body.optionalBool("a") == .some(nil))
        #expect(try body.optionalBool("b") == .some(true))
        #expect(try body.optionalBool("missing") == .none)
        #expect(throws: APIError.self) { try body.optionalBool("c") }
        #expect(throws: APIError.self) { try body.bool("d") }
        #expect(throws: APIError.self) { try body.string("c") }
        #expect(throws: APIError.self) { try body.refuseUnknown(allowed: ["a", "b", "c"]) }
    }

    @Test func nestedFieldsAreNamedWithTheirParent() throws {
        let body = try Self.body(#"{"pickup": {"directed": 5}}"#)
        let pickup = try #require(try body.object("pickup", allowed: ["directed", "group"]))
        do {
            _ = try pickup.string("directed")
            Issue.record("a number for a string field was accepted")
        } catch let error as APIError {
            #expect(error.field == "pickup.directed")
        }
    }

    @Test func tokenGuard() {
        let guardian = BearerTokenGuard(token: "the-right-token-0123")
        #expect(guardian.check(presented: "the-right-token-0123", from: "10.0.0.1") == .allowed)
        for attempt in 1...BearerTokenGuard.lockAfter {
            let verdict = guardian.check(presented: "wrong", from: "10.0.0.1")
            #expect(verdict == .wrongToken(slowDown: attempt > BearerTokenGuard.slowDownAfter), "attempt \(attempt)")
        }
        // Locked: even the right token waits until the window ends.
        guard case .locked = guardian.check(presented: "the-right-token-0123", from: "10.0.0.1") else {
            Issue.record("not locked after \(BearerTokenGuard.lockAfter) failures")
            return
        }
        // Another address is not affected; the window passes.
        #expect(guardian.check(presented: "the-right-token-0123", from: "10.0.0.2") == .allowed)
        let later = Date().addingTimeInterval(BearerTokenGuard.window + 1)
        #expect(guardian.check(presented: "the-right-token-0123", from: "10.0.0.1", now: later) == .allowed)
        #expect(BearerTokenGuard(token: nil).check(presented: "x", from: "10.0.0.1") == .noTokenConfigured)
        #expect(BearerTokenGuard.bearerToken(fromAuthorization: "Bearer abc") == "abc")
        #expect(BearerTokenGuard.bearerToken(fromAuthorization: "Basic abc") == nil)
    }
}
