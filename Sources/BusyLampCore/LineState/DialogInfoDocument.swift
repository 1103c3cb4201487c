/// `application/dialog-info+xml` bodies (RFC 4235) as BLF keys need them (PHONES.md).
///
/// Every document is `state="full"`: it lists every live dialog of the line, and never is a
/// list empty: an idle line is reported as one dialog with an id in `terminated` (Yealink,
/// Grandstream and Bria misbehave on an empty list: opensips PR#1193, kamailio PR#55/#99).
public enum DialogInfoDocument {
    public static let contentType = "application/dialog-info+xml"

    /// - Parameters:
    ///   - entity: the watched line's address of record, `sip:NUMBER@DOMAIN`.
    ///   - version: RFC 4235 §4.1: starts at 0 and rises by one per NOTIFY of the subscription.
    ///   - idleDialogID: the id of the placeholder dialog of an idle line (the extension).
    ///   - dialogs: the line's live dialogs.
    ///   - ended: dialogs that ended since the last document: each is sent once as
    ///     `terminated`, so that a phone that tracks dialogs by id clears it.
    public static func render(
        entity: String,
        version: UInt32,
        idleDialogID: String,
        dialogs: [LineDialog],
        ended: [LineDialog] = []
    ) -> String {
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"\(version)\" state=\"full\""
        xml += " entity=\"\(entity.xmlEscaped)\">\n"
        if dialogs.isEmpty && ended.isEmpty {
            xml += "  <dialog id=\"\(idleDialogID.xmlEscaped)\"><state>terminated</state></dialog>\n"
        }
        for dialog in dialogs {
            render(dialog, state: dialog.state, into: &xml)
        }
        for dialog in ended where !dialogs.contains(where: { $0.id == dialog.id }) {
            render(dialog, state: .terminated, into: &xml)
        }
        xml += "</dialog-info>\n"
        return xml
    }

    private static func render(_ dialog: LineDialog, state: LineDialog.State, into xml: inout String) {
        xml += "  <dialog id=\"\(dialog.id.xmlEscaped)\" call-id=\"\(dialog.callID.xmlEscaped)\""
        if let localTag = dialog.localTag { xml += " local-tag=\"\(localTag.xmlEscaped)\"" }
        if let remoteTag = dialog.remoteTag { xml += " remote-tag=\"\(remoteTag.xmlEscaped)\"" }
        xml += " direction=\"\(dialog.direction.rawValue)\">\n"
        xml += "    <state>\(state.rawValue)</state>\n"
        if state != .terminated {
            render(dialog.local, element: "local", into: &xml)
            render(dialog.remote, element: "remote", into: &xml)
        }
        xml += "  </dialog>\n"
    }

    private static func render(_ party: LineDialog.Party, element: String, into xml: inout String) {
        xml += "    <\(element)>\n      <identity"
        if let displayName = party.displayName, !displayName.isEmpty {
            xml += " display=\"\(displayName.xmlEscaped)\""
        }
        xml += ">\(party.identity.xmlEscaped)</identity>\n"
        xml += "      <target uri=\"\((party.target ?? party.identity).xmlEscaped)\"/>\n"
        xml += "    </\(element)>\n"
    }
}

/// `application/pidf+xml` bodies (RFC 3863) with the RPID `on-the-phone` activity (RFC 4480),
/// for Polycom's Watch Buddy (`Event: presence`, RFC 3856).
public enum PresenceDocument {
    public static let contentType = "application/pidf+xml"

    /// Open while registered, closed when not; `on-the-phone` while ringing, dialing or busy.
    public static func render(entity: String, tupleID: String, state: LineState) -> String {
        let basic = state.isRegistered ? "open" : "closed"
        let note: String
        switch state.lamp {
        case .idle: note = state.isRegistered ? "Ready" : "Offline"
        case .ringing: note = "Ringing"
        case .dialing, .busy: note = "On the phone"
        }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\""
        xml += " xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\""
        xml += " xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"\(entity.xmlEscaped)\">\n"
        xml += "  <tuple id=\"\(tupleID.xmlEscaped)\"><status><basic>\(basic)</basic></status>"
        xml += "<contact priority=\"1\">\(entity.xmlEscaped)</contact></tuple>\n"
        xml += "  <dm:person id=\"p\(tupleID.xmlEscaped)\">"
        if state.lamp != .idle { xml += "<rpid:activities><rpid:on-the-phone/></rpid:activities>" }
        xml += "<dm:note>\(note)</dm:note></dm:person>\n"
        xml += "</presence>\n"
        return xml
    }
}

extension String {
    /// The text with the five XML special characters escaped, for attributes and content.
    var xmlEscaped: String {
        guard contains(where: { "<>&\"'".contains($0) }) else { return self }
        var out = ""
        out.reserveCapacity(utf8.count + 16)
        for character in self {
            switch character {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }
}
