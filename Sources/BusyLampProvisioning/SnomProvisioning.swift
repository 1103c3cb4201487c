/// snom `<settings>` with one function key of type BLF per colleague:
/// `blf <sip:NUMBER@HOST>|PICKUP`, where the part after `|` is the prefix the phone dials in
/// front of the number to pick up a ringing call (`*89` → `*896495550202`, the directed pickup
/// the server implements). `HOST` is where the phone registers, as in the seed's "LED control:
/// 222@<IP>".
///
/// Sources: snom's "Function Key Types" (service.snom.com/display/wiki/Function+Key+Types:
/// type `blf`, and the `<fkey idx="0" context="1" perm="" label="…">` element with its label
/// attribute), NethServer's Tancredi templates, github.com/nethesis/tancredi
/// `data/templates/snom.macros` (`<fkey … label="…" perm="">blf VALUE|PICKUP</fkey>`), and
/// FusionPBX's github.com/fusionpbx/fusionpbx `resources/templates/provision/snom/7xx/{$mac}.xml`
/// (`<settings>` / `<functionKeys>` / `<fkey idx="N" context="active" label="…" perm="">`).
enum SnomProvisioning {
    /// `fkey idx="0"` (P1) stays a line key so calls keep a key to appear on; colleagues start at
    /// P2. snom numbers the keys of expansion modules after the phone's own, so no cap is needed
    /// here: keys past what the hardware has are ignored.
    static let firstKeyIndex = 1
    /// Keys act on the identity in use, like the line key of the seeds' other phones.
    static let context = "active"

    static func document(for context: ProvisioningContext) -> ProvisioningDocument {
        let directed = ProvisioningText.singleLine(context.pickup.directed)
        var xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
        xml += "<!-- BusyLamp BLF keys. Generated from the directory: change the directory, not this file. -->\n"
        xml += "<settings>\n"
        xml += "  <functionKeys>\n"
        for (offset, key) in context.keys.enumerated() {
            let value = "blf <sip:\(key.number)@\(context.subscriptionHost)>|\(directed)"
            xml += "    <fkey idx=\"\(firstKeyIndex + offset)\" context=\"\(self.context)\""
            xml += " label=\"\(ProvisioningText.xmlEscaped(key.label))\" perm=\"\">"
            xml += ProvisioningText.xmlEscaped(value)
            xml += "</fkey>\n"
        }
        xml += "  </functionKeys>\n"
        xml += "</settings>\n"
        return ProvisioningDocument(
            contentType: ProvisioningContentType.xml,
            fileName: context.fileName(.snom, extension: "xml"),
            body: xml
        )
    }
}
