/// A Cisco SPA 300/500 `<flat-profile>` with one extended-function key per colleague, in the
/// 2talk seed's form `fnc=blf+sd+cp;sub=NUMBER@HOST;usr=NUMBER;nme=NAME` (blf = lamp,
/// sd = speed dial when idle, cp = call pickup when ringing), and the attendant console settings
/// that the Kiwi seed sets by hand (Server Type Asterisk, Subscribe Expires 600, Subscribe Retry
/// Interval 30, Attendant Console Call Pickup Code = the group pickup code).
///
/// Parameter names from FusionPBX's SPA templates, github.com/fusionpbx/fusionpbx
/// `resources/templates/provision/cisco/spa504g/{$mac}.xml` (`Extension_N_` = `Disabled`,
/// `Short_Name_N_`, `Extended_Function_N_` per line key; `Server_Type`, `Subscribe_Expires`,
/// `Subscribe_Retry_Interval`, `Attendant_Console_Call_Pickup_Code`, `Unit_1_Enable`,
/// `Unit_1_Key_N` of the attendant console); the meaning of the fields from ezyCloud's SPA guide
/// (my.ezycloud.com.au/knowledgebase/201204226/Cisco-or-Linksys-SPA-Range-Handsets.html: Server
/// Type Asterisk, "Change the Extension to Disabled", Short Name = the key's label, and
/// `sub=` "which extension to interact with", `usr=` "the user of the extension", `nme=` the
/// name shown) and Kazoo's SPA504G walk-through
/// (docs.2600hz.com/kazoo_dev/applications/callflow/doc/group_pickup_feature/: "Extension:
/// disabled … Extended Function: fnc=blf+cp;sub=…@sip.domain.com").
///
/// The profile sets no `BLF_List_URI`: that is for a resource-list (RFC 4662) subscription on
/// BroadSoft-type servers, while BusyLamp is watched line by line.
enum CiscoProvisioning {
    /// The Kiwi seed: "set the 'Server Type' to 'Asterisk'". It makes the SPA read dialog-info
    /// the way BusyLamp writes it and dial the pickup code for `cp`.
    static let serverType = "Asterisk"
    /// Line key 1 stays the line itself (its `Extension_1_` is 1), so calls keep a key.
    static let firstLineKey = 2
    /// The SPA504G (the Kiwi seed's phone) and SPA525G have 4 and 5 line keys; the first three
    /// colleagues take keys 2 to 4, which every such model has, and the rest go to the SPA500S.
    static let lastLineKey = 4
    /// Up to two SPA500S attendant consoles of 32 keys each.
    static let consoleUnits = 1...2
    static let keysPerConsoleUnit = 32

    enum Position: Hashable {
        case lineKey(Int)
        case consoleKey(unit: Int, key: Int)
    }

    static let positions: [Position] =
        (firstLineKey...lastLineKey).map(Position.lineKey)
        + consoleUnits.flatMap { unit in (1...keysPerConsoleUnit).map { Position.consoleKey(unit: unit, key: $0) } }

    static func document(for context: ProvisioningContext) -> ProvisioningDocument {
        let layout = KeyLayout(context.keys, positions: positions)
        var xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
        xml += "<!-- BusyLamp BLF keys. Generated from the directory: change the directory, not this file. -->\n"
        xml += "<flat-profile>\n"
        xml += "  <!-- Attendant Console / General: how every BLF key subscribes and picks up. -->\n"
        xml += element("Server_Type", serverType)
        xml += element("Subscribe_Expires", String(context.subscriptionSeconds))
        xml += element("Subscribe_Retry_Interval", String(ProvisioningContext.subscriptionRetrySeconds))
        xml += element("Attendant_Console_Call_Pickup_Code", ProvisioningText.singleLine(context.pickup.group))

        var enabledUnits: Set<Int> = []
        for (position, key) in layout.placed {
            let function = extendedFunction(for: key, host: context.subscriptionHost)
            switch position {
            case .lineKey(let index):
                xml += "  <!-- Phone / Line Key \(index) -->\n"
                xml += element("Extension_\(index)_", "Disabled")
                xml += element("Short_Name_\(index)_", key.label)
                xml += element("Extended_Function_\(index)_", function)
            case .consoleKey(let unit, let index):
                if enabledUnits.insert(unit).inserted {
                    xml += "  <!-- Attendant Console / Unit \(unit) -->\n"
                    xml += element("Unit_\(unit)_Enable", "Yes")
                }
                xml += element("Unit_\(unit)_Key_\(index)", function)
            }
        }
        if !layout.unplaced.isEmpty {
            xml +=
                "  <!-- \(layout.unplaced.count) more colleagues did not fit on line keys and attendant consoles. -->\n"
        }
        xml += "</flat-profile>\n"
        return ProvisioningDocument(
            contentType: ProvisioningContentType.xml,
            fileName: context.fileName(.cisco, extension: "xml"),
            body: xml
        )
    }

    /// `fnc=blf+sd+cp;sub=NUMBER@HOST;usr=NUMBER;nme=NAME`, as in the 2talk seed (which writes
    /// `usr` as the bare number). `sub` is the Request-URI of the SUBSCRIBE. The SPA splits the value at
    /// `;` and `=`, so the name loses those two characters rather than end the field early.
    static func extendedFunction(for key: BLFKey, host: String) -> String {
        let name = ProvisioningText.singleLine(String(key.label.filter { $0 != ";" && $0 != "=" }))
        var function = "fnc=blf+sd+cp;sub=\(key.number)@\(host);usr=\(key.number)"
        if !name.isEmpty { function += ";nme=\(name)" }
        return function
    }

    private static func element(_ name: String, _ value: String) -> String {
        "  <\(name)>\(ProvisioningText.xmlEscaped(value))</\(name)>\n"
    }
}
