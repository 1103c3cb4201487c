import Foundation

/// The directory and the media ports the call scenarios use (issue 4): the subscription tests'
/// directory (`DirectoryFixture.subscriptionYAML`: Sam in group SALES, Gus in account `globex`)
/// with one trunk, `pstn`, in front.
///
/// The trunk's address is where a SIPp playing the carrier runs (`-i HOST -p PORT`). Over TCP a
/// trunk is matched by its host alone (any source port: `Trunk.matches`), so a TCP trunk on
/// 127.0.0.1 would make every phone's TCP INVITE the trunk's; the TCP trunk is on 127.0.0.2, a
/// second loopback address, and the phones stay on 127.0.0.1. Over UDP the port tells them apart.
enum CallFixture {
    static let domain = DirectoryFixture.domain
    static let alice = DirectoryFixture.alice
    static let bob = DirectoryFixture.bob
    static let joe = DirectoryFixture.joe
    static let leo = DirectoryFixture.leo
    static let sam = DirectoryFixture.sam
    static let gus = DirectoryFixture.gus

    /// The caller's offer, the callee's answer, a second callee's, the picker's, the trunk's:
    /// each party's `m=audio` port, so that the SDP a party ends with says whose it is.
    static let callerMediaPort = 6000
    static let calleeMediaPort = 6002
    static let secondCalleeMediaPort = 6003
    static let pickerMediaPort = 6004
    static let trunkMediaPort = 6006

    /// A number that is no line: from a line it goes out through the trunk.
    static let outsideNumber = "0800123456"
    /// Who calls in from the trunk: its From, as the callee must see it.
    static let outsideCaller = DirectoryFixture.Line(
        extensionNumber: "",
        number: "0800555123",
        name: "Outside",
        password: "unused"
    )

    /// Where the trunk of a test over `transport` lives (see the type's comment).
    static func trunkHost(over transport: Transport) -> String {
        transport == .tcp ? "127.0.0.2" : "127.0.0.1"
    }

    /// `DirectoryFixture.subscriptionYAML()` with `trunks:` naming `host:port` over `transport`.
    static func yaml(trunkHost: String, trunkPort: Int, over transport: Transport) -> String {
        """
        trunks:
          - name: pstn
            address: \(trunkHost):\(trunkPort)
            transport: \(transport.rawValue)

        """ + DirectoryFixture.subscriptionYAML()
    }
}
