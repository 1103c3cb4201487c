/// Yealink T2/T4/T5 `.cfg` settings: one DSS key of type BLF per colleague, as the 2talk seed
/// sets up by hand (Type BLF, Value = the full number, Extension = the directed pickup code).
///
/// Parameter names and values from:
/// - Yealink's Administrator Guide for SIP-T2/T4/T5 IP phones, "BLF Key Configuration"
///   (`linekey.X.type=16`, `linekey.X.line`, `linekey.X.value`, `linekey.X.label`; "Enter the
///   directed call pickup code in the Extension field") and "BLF/BLF List Subscription"
///   (`account.X.blf.subscribe_period`, 30 to 2147483647; `account.X.blf.subscribe_event`,
///   0 = dialog): easymanua.ls/yealink/t5-series/manual/730711?p=349 and Yealink's "BLF issue"
///   note (scribd.com/document/713131545/BLF-issue).
/// - FusionPBX's Yealink templates, github.com/fusionpbx/fusionpbx
///   `resources/templates/provision/yealink/t46s/{$mac}.cfg`: the file header, the "16-BLF" key
///   type, `linekey.X.pickup_value` (what newer firmware reads for a BLF key's pickup code, where
///   older firmware reads `linekey.X.extension`), `account.X.dialoginfo_callpickup`,
///   `account.X.direct_pickup_code` / `group_pickup_code`, and
///   `expansion_module.X.key.Y.*` ("X ranges from 1 to 16, Y ranges from 1 to 40").
/// - The same repository's common file `resources/templates/provision/yealink/t46s/y000000000066.cfg`
///   for `features.pickup.direct_pickup_code` / `_enable` and `group_pickup_code` / `_enable`.
enum YealinkProvisioning {
    /// Yealink: the header "can not be edited or deleted, and must be placed in the first line".
    static let fileHeader = "#!version:1.0.0.1"
    /// DSS key type 16 is BLF ("16-BLF" in the type list).
    static let blfKeyType = 16
    /// The line's own account on the phone; BLF keys subscribe through it.
    static let accountIndex = 1
    /// Line key 1 stays the line itself (type 15, Line), so that calls keep a key to appear on.
    static let firstLineKey = 2
    /// The most line keys any T4/T5 model offers with page switching (T46/T54: 27; the others
    /// fewer): keys beyond a model's count are ignored by the phone, so this only decides when
    /// we start using expansion modules instead.
    static let lastLineKey = 27
    static let expansionModules = 1...6
    static let keysPerExpansionModule = 40

    enum Position: Hashable {
        case lineKey(Int)
        case expansionModuleKey(module: Int, key: Int)

        var prefix: String {
            switch self {
            case .lineKey(let index): return "linekey.\(index)"
            case .expansionModuleKey(let module, let key): return "expansion_module.\(module).key.\(key)"
            }
        }
    }

    static let positions: [Position] =
        (firstLineKey...lastLineKey).map(Position.lineKey)
        + expansionModules.flatMap { module in
            (1...keysPerExpansionModule).map { Position.expansionModuleKey(module: module, key: $0) }
        }

    static func document(for context: ProvisioningContext) -> ProvisioningDocument {
        let account = "account.\(accountIndex)"
        let directed = ProvisioningText.singleLine(context.pickup.directed)
        let group = ProvisioningText.singleLine(context.pickup.group)
        var lines: [String] = [
            fileHeader,
            "## BusyLamp BLF keys for \(context.lineLabel) (extension \(ProvisioningText.singleLine(context.line.extensionNumber))).",
            "## Generated from the directory: change the directory, not this file.",
            "",
            "## How the BLF keys of account \(accountIndex) subscribe (dialog event) and pick up.",
            "\(account).blf.subscribe_period = \(context.subscriptionSeconds)",
            "\(account).blf.subscribe_event = 0",
            // 0: a press on a ringing key dials the pickup code and the number (the seeds' way),
            // which works whatever the NOTIFY carried; 1 would send INVITE/Replaces instead.
            "\(account).dialoginfo_callpickup = 0",
            "\(account).direct_pickup_code = \(directed)",
            "\(account).group_pickup_code = \(group)",
            "features.pickup.direct_pickup_enable = 1",
            "features.pickup.direct_pickup_code = \(directed)",
            "features.pickup.group_pickup_enable = 1",
            "features.pickup.group_pickup_code = \(group)",
        ]

        let layout = KeyLayout(context.keys, positions: positions)
        for (position, key) in layout.placed {
            let prefix = position.prefix
            lines += [
                "",
                "## \(key.label) (extension \(ProvisioningText.singleLine(key.extensionNumber)))",
                "\(prefix).type = \(blfKeyType)",
                "\(prefix).line = \(accountIndex)",
                "\(prefix).value = \(key.number)",
                "\(prefix).extension = \(directed)",
                "\(prefix).pickup_value = \(directed)",
                "\(prefix).label = \(key.label)",
            ]
        }
        if !layout.unplaced.isEmpty {
            lines += [
                "", "## \(layout.unplaced.count) more colleagues did not fit on line keys and expansion modules.",
            ]
        }

        return ProvisioningDocument(
            contentType: ProvisioningContentType.plainText,
            fileName: context.fileName(.yealink, extension: "cfg"),
            body: lines.joined(separator: "\n") + "\n"
        )
    }
}
