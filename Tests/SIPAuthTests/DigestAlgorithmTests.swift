import Testing

@testable import SIPAuth

/// The worked examples printed in the RFCs, reproduced exactly.
@Suite(.timeLimit(.minutes(1))) struct DigestAlgorithmTests {
    /// RFC 7616 §3.9.1: user "Mufasa", password "Circle of Life" (lower-case "of", erratum 4495),
    /// realm "http-auth@example.org", GET /dir/index.html, qop=auth, nc=00000001.
    static let rfc7616Nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    static let rfc7616CNonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"

    @Test(arguments: [
        (DigestAlgorithm.md5, "8ca523f5e9506fed4657c9700eebdbec"),
        (DigestAlgorithm.sha256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ])
    func rfc7616WorkedExample(algorithm: DigestAlgorithm, printedResponse: String) {
        let ha1 = algorithm.ha1(username: "Mufasa", realm: "http-auth@example.org", password: "Circle of Life")
        let response = algorithm.response(
            ha1: ha1,
            nonce: Self.rfc7616Nonce,
            method: "GET",
            digestURI: "/dir/index.html",
            qop: .init(nonceCount: "00000001", cnonce: Self.rfc7616CNonce)
        )
        #expect(response == printedResponse)
        #expect(response.count == algorithm.hexLength)
    }

    /// The RFC 7616 §3.9.1 Authorization header as printed, parsed, then checked against the
    /// response it carries.
    @Test(arguments: [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ])
    func rfc7616AuthorizationHeaderAsPrinted(algorithmName: String, printedResponse: String) throws {
        let header = """
            Digest username="Mufasa",
                realm="http-auth@example.org",
                uri="/dir/index.html",
                algorithm=\(algorithmName),
                nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                nc=00000001,
                cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                qop=auth,
                response="\(printedResponse)",
                opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
            """
        let credentials = try DigestCredentials(parsing: header)
        #expect(credentials.algorithm.rawValue == algorithmName)
        #expect(credentials.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        let ha1 = credentials.algorithm.ha1(
            username: credentials.username,
            realm: credentials.realm,
            password: "Circle of Life"
        )
        let recomputed = credentials.algorithm.response(
            ha1: ha1,
            nonce: credentials.nonce,
            method: "GET",
            digestURI: credentials.uri,
            qop: .init(nonceCount: try #require(credentials.nonceCountText), cnonce: try #require(credentials.cnonce))
        )
        #expect(recomputed == credentials.response)
    }

    /// RFC 2617 §3.5: password "Circle Of Life", realm "testrealm@host.com", qop=auth.
    @Test func rfc2617Example() {
        let ha1 = DigestAlgorithm.md5.ha1(username: "Mufasa", realm: "testrealm@host.com", password: "Circle Of Life")
        let response = DigestAlgorithm.md5.response(
            ha1: ha1,
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method: "GET",
            digestURI: "/dir/index.html",
            qop: .init(nonceCount: "00000001", cnonce: "0a4f113b")
        )
        #expect(response == "6629fae49393a05397450978507c4ef1")
    }

    /// RFC 2069 §2.4 (no qop): the printed response is that of password "CircleOfLife" (the
    /// text says "Circle Of Life"; the widely reproduced digest matches the unspaced one).
    @Test func rfc2069ExampleWithoutQOP() {
        let ha1 = DigestAlgorithm.md5.ha1(username: "Mufasa", realm: "testrealm@host.com", password: "CircleOfLife")
        let response = DigestAlgorithm.md5.response(
            ha1: ha1,
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method: "GET",
            digestURI: "/dir/index.html",
            qop: nil
        )
        #expect(response == "1949323746fe6a43ef61f9606e7febea")
    }

    @Test(arguments: [("MD5", DigestAlgorithm.md5), ("md5", .md5), ("SHA-256", .sha256), ("sha-256", .sha256)])
    func algorithmNamesAreCaseInsensitive(name: String, algorithm: DigestAlgorithm) {
        #expect(DigestAlgorithm(parameterValue: name) == algorithm)
    }

    @Test(arguments: ["SHA-512-256", "MD5-sess", "SHA-256-sess", "", "SHA256", "AKAv1-MD5"])
    func unsupportedAlgorithmNames(name: String) {
        #expect(DigestAlgorithm(parameterValue: name) == nil)
    }

    @Test func constantTimeEqualityComparesWholeValues() {
        #expect(constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!constantTimeEqual(Array("abc".utf8), Array("abcd".utf8)))
        #expect(constantTimeEqual([UInt8](), [UInt8]()))
    }
}
