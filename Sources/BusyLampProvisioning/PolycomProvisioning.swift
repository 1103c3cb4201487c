/// A Polycom VVX contact directory (`<MAC>-directory.xml`) with Watch Buddy on for every
/// colleague: the file form of the 2talk seed's steps (Contacts Directory → name and full
/// number → Protocol SIP → Watch Buddy Enable → Add to Favorites).
///
/// Watch Buddy subscribes with `Event: presence` (PIDF); BusyLamp answers that as well as
/// `dialog`. The phone replaces its local directory with this file when it boots ("the boot
/// server copy of the directory, if present, will overwrite the local copy"), so the file
/// lists every colleague, not a difference.
///
/// Element names and limits from Polycom's "Local Contact Directory File Format"
/// (SoundPoint IP Administrator Guide §3.1.17.1: `fn`, `ln`, `ct`, `sd`, `rt`, `dc`, `ad`, `ar`,
/// `bw` "buddy watching: if 1, add this contact to the list of watched phones", `bb`; fn/ln
/// "UTF-8 encoded string of up to 40 bytes", sd "Null, 1 to 40": manualshive.com/en/manual/polycom/soundpoint-ip-500/1576195?page=39)
/// and the VVX Expansion Module Administrator's Guide Addendum, UC Software 4.1.6
/// (document 2200-46350-025: `lb` label, `pt` protocol "SIP, H323, or Unspecified"),
/// cross-checked with FusionPBX's github.com/fusionpbx/fusionpbx
/// `resources/templates/provision/polycom/5.x/{$mac}-directory.xml`.
enum PolycomProvisioning {
    /// Polycom's limit for `fn`, `ln` and `lb`, in bytes of UTF-8.
    static let maximumFieldBytes = 40
    /// Speed-dial bins are 1 to 40 on the oldest documented firmware; entries beyond get none
    /// (they are still in the directory and still watched).
    static let speedDialIndexes = 1...40

    static func document(for context: ProvisioningContext) -> ProvisioningDocument {
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
        xml +=
            "<!-- BusyLamp contact directory with Watch Buddy. Generated from the directory: change the directory, not this file. -->\n"
        xml += "<directory>\n"
        xml += "  <item_list>\n"
        for (offset, key) in context.keys.enumerated() {
            let names = splitName(key.label)
            let speedDial = speedDialIndexes.contains(offset + 1) ? String(offset + 1) : nil
            xml += "    <item>\n"
            xml += element("fn", ProvisioningText.truncated(names.first, toUTF8Bytes: maximumFieldBytes))
            xml += element("ln", ProvisioningText.truncated(names.last, toUTF8Bytes: maximumFieldBytes))
            xml += element("ct", key.number)
            xml += element("sd", speedDial)
            xml += element("lb", ProvisioningText.truncated(key.label, toUTF8Bytes: maximumFieldBytes))
            xml += element("pt", "SIP")
            xml += element("ad", "0")
            xml += element("ar", "0")
            xml += element("bw", "1")
            xml += element("bb", "0")
            xml += "    </item>\n"
        }
        xml += "  </item_list>\n"
        xml += "</directory>\n"
        return ProvisioningDocument(
            contentType: ProvisioningContentType.xml,
            fileName: context.fileName(.polycom, suffix: "-directory", extension: "xml"),
            body: xml
        )
    }

    /// First word as first name, the rest as last name: the phone shows "fn ln" where it does not
    /// show the label, so the full name appears either way.
    static func splitName(_ label: String) -> (first: String, last: String) {
        guard let space = label.firstIndex(of: " ") else { return (label, "") }
        return (String(label[..<space]), String(label[label.index(after: space)...]))
    }

    private static func element(_ name: String, _ value: String?) -> String {
        guard let value, !value.isEmpty else { return "      <\(name)/>\n" }
        return "      <\(name)>\(ProvisioningText.xmlEscaped(value))</\(name)>\n"
    }
}
