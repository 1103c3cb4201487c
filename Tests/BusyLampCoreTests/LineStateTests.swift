import BusyLampCore
import Foundation
import Testing

#if canImport(FoundationXML)
import FoundationXML  // XMLParser lives here on Linux
#endif

func makeDialog(
    _ id: String,
    _ direction: LineDialog.Direction,
    _ state: LineDialog.State,
    startedAt: TimeInterval = 0
) -> LineDialog {
    LineDialog(
        id: id,
        callID: "call-\(id)",
        localTag: "lt-\(id)",
        remoteTag: "rt-\(id)",
        direction: direction,
        state: state,
        local: .init(identity: "sip:6495550202@sip.busylamp.test", displayName: "Bob"),
        remote: .init(identity: "sip:6495550201@sip.busylamp.test", displayName: "Alice & \"Co\""),
        startedAt: Date(timeIntervalSince1970: startedAt)
    )
}

@Suite("Line state", .timeLimit(.minutes(1)))
struct LineStateTests {
    @Test(
        "The lamp follows PRODUCT.md's table",
        arguments: [
            ([], Lamp.idle),
            ([makeDialog("a", .recipient, .early)], .ringing),
            ([makeDialog("a", .recipient, .proceeding)], .ringing),
            ([makeDialog("a", .initiator, .early)], .dialing),
            ([makeDialog("a", .initiator, .confirmed)], .busy),
            ([makeDialog("a", .recipient, .confirmed)], .busy),
            // Busy wins over a second call ringing in (Polycom ignores ringing after in-use).
            ([makeDialog("a", .recipient, .confirmed), makeDialog("b", .recipient, .early)], .busy),
            ([makeDialog("a", .initiator, .early), makeDialog("b", .recipient, .early)], .ringing),
            ([makeDialog("a", .recipient, .terminated)], .idle),
        ] as [([LineDialog], Lamp)]
    )
    func lamp(dialogs: [LineDialog], expected: Lamp) {
        #expect(LineState(number: "6495550202", dialogs: dialogs).lamp == expected)
    }

    @Test func applyReportsOnlyVisibleChanges() {
        var state = LineState(number: "6495550202")
        var changes: [Bool] = []
        changes.append(state.apply(makeDialog("a", .recipient, .early)))
        changes.append(state.apply(makeDialog("a", .recipient, .early)))
        changes.append(state.apply(makeDialog("a", .recipient, .confirmed)))
        #expect(state.lamp == .busy)
        changes.append(state.apply(makeDialog("a", .recipient, .terminated)))
        #expect(state.dialogs.isEmpty)
        changes.append(state.apply(makeDialog("z", .recipient, .terminated)))
        changes.append(state.setRegistered(true))
        changes.append(state.setRegistered(true))
        #expect(changes == [true, false, true, true, false, true, false])
    }

    @Test func groupPickupTakesTheLatestRingingCall() {
        let state = LineState(
            number: "6495550202",
            dialogs: [
                makeDialog("old", .recipient, .early, startedAt: 10),
                makeDialog("new", .recipient, .early, startedAt: 20),
                makeDialog("out", .initiator, .early, startedAt: 30),
            ]
        )
        #expect(state.latestRingingDialog?.id == "new")
    }
}

@Suite("Dialog-info and PIDF documents", .timeLimit(.minutes(1)))
struct LineDocumentTests {
    let entity = "sip:6495550202@sip.busylamp.test"

    func parse(_ xml: String) throws -> ParsedXMLElement {
        try #require(ParsedXMLElement.parse(xml), "not well-formed XML:\n\(xml)")
    }

    @Test func idleHasOneTerminatedDialogWithAnID() throws {
        let root = try parse(
            DialogInfoDocument.render(entity: entity, version: 0, idleDialogID: "202", dialogs: [])
        )
        #expect(root.name == "dialog-info")
        #expect(root.attributes["state"] == "full")
        #expect(root.attributes["version"] == "0")
        #expect(root.attributes["entity"] == entity)
        let dialogs = root.children(named: "dialog")
        #expect(dialogs.count == 1)
        #expect(dialogs.first?.attributes["id"] == "202")
        #expect(dialogs.first?.children(named: "state").first?.text == "terminated")
    }

    @Test func ringingCarriesWhatAPickupNeeds() throws {
        let root = try parse(
            DialogInfoDocument.render(
                entity: entity,
                version: 1,
                idleDialogID: "202",
                dialogs: [makeDialog("a", .recipient, .early)]
            )
        )
        let dialog = try #require(root.children(named: "dialog").first)
        #expect(dialog.attributes["call-id"] == "call-a")
        #expect(dialog.attributes["local-tag"] == "lt-a")
        #expect(dialog.attributes["remote-tag"] == "rt-a")
        #expect(dialog.attributes["direction"] == "recipient")
        #expect(dialog.children(named: "state").first?.text == "early")
        let remote = try #require(dialog.children(named: "remote").first?.children(named: "identity").first)
        // The caller is shown, with XML specials escaped and read back intact.
        #expect(remote.attributes["display"] == "Alice & \"Co\"")
        #expect(remote.text == "sip:6495550201@sip.busylamp.test")
    }

    @Test func anEndedCallIsSentOnceAsTerminated() throws {
        let ended = makeDialog("a", .recipient, .confirmed)
        let root = try parse(
            DialogInfoDocument.render(entity: entity, version: 3, idleDialogID: "202", dialogs: [], ended: [ended])
        )
        let dialogs = root.children(named: "dialog")
        #expect(dialogs.count == 1)
        #expect(dialogs.first?.attributes["id"] == "a")
        #expect(dialogs.first?.children(named: "state").first?.text == "terminated")
    }

    @Test func severalCallsAreAllListed() throws {
        let root = try parse(
            DialogInfoDocument.render(
                entity: entity,
                version: 2,
                idleDialogID: "202",
                dialogs: [makeDialog("a", .recipient, .confirmed), makeDialog("b", .initiator, .early)]
            )
        )
        #expect(root.children(named: "dialog").compactMap { $0.attributes["id"] } == ["a", "b"])
    }

    @Test(
        "PIDF: open while registered, closed when not, on-the-phone while in use",
        arguments: [
            (true, [], "open", false, "Ready"),
            (false, [], "closed", false, "Offline"),
            (true, [makeDialog("a", .recipient, .early)], "open", true, "Ringing"),
            (true, [makeDialog("a", .initiator, .confirmed)], "open", true, "On the phone"),
        ] as [(Bool, [LineDialog], String, Bool, String)]
    )
    func presence(registered: Bool, dialogs: [LineDialog], basic: String, onThePhone: Bool, note: String) throws {
        let state = LineState(number: "6495550202", isRegistered: registered, dialogs: dialogs)
        let xml = PresenceDocument.render(entity: entity, tupleID: "202", state: state)
        let root = try parse(xml)
        #expect(root.name == "presence")
        #expect(root.attributes["entity"] == entity)
        #expect(root.descendants(named: "basic").first?.text == basic)
        #expect(!root.descendants(named: "rpid:on-the-phone").isEmpty == onThePhone)
        #expect(root.descendants(named: "dm:note").first?.text == note)
    }
}

/// A minimal element tree read with XMLParser, so that tests check well-formedness and read
/// attributes and text back as a phone's parser would.
final class ParsedXMLElement {
    let name: String
    let attributes: [String: String]
    var text = ""
    var childElements: [ParsedXMLElement] = []

    init(name: String, attributes: [String: String]) {
        self.name = name
        self.attributes = attributes
    }

    func children(named name: String) -> [ParsedXMLElement] { childElements.filter { $0.name == name } }

    func descendants(named name: String) -> [ParsedXMLElement] {
        children(named: name) + childElements.flatMap { $0.descendants(named: name) }
    }

    static func parse(_ xml: String) -> ParsedXMLElement? {
        let parser = XMLParser(data: Data(xml.utf8))
        let builder = Builder()
        parser.delegate = builder
        guard parser.parse() else { return nil }
        return builder.root
    }

    private final class Builder: NSObject, XMLParserDelegate {
        var root: ParsedXMLElement?
        var stack: [ParsedXMLElement] = []

        func parser(
            _ parser: XMLParser,
            didStartElement elementName: String,
            namespaceURI: String?,
            qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            let element = ParsedXMLElement(name: elementName, attributes: attributes)
            stack.last?.childElements.append(element)
            if root == nil { root = element }
            stack.append(element)
        }

        func parser(
            _ parser: XMLParser,
            didEndElement elementName: String,
            namespaceURI: String?,
            qualifiedName: String?
        ) {
            stack.removeLast()
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            stack.last?.text += string
        }
    }
}
