import NIOConcurrencyHelpers
import NIOSSL

/// The certificate chain and private key that every `tls:` listener presents (RFC 3261 §26.2:
/// a SIP server over TLS authenticates itself with a certificate), read from PEM files.
///
/// A value always holds a usable server context: making one reads and checks both files, and
/// ``reload()`` replaces the context only when the files read again make a good one. Copies
/// share the context (every shard's transport is given a copy of one configuration), so one
/// reload reaches every listener. Connections take the context current when they are accepted:
/// a reload changes what new connections see and leaves established ones as they are.
public struct SIPTLSCertificate: Sendable {
    public let certificateChainPath: String
    public let privateKeyPath: String
    /// Read at every accept, written at a reload (SIGHUP): a lock, never on the message path.
    private let current: NIOLockedValueBox<NIOSSLContext>

    /// Reads both files; throws a ``SIPTLSError`` naming the file that cannot be used.
    public init(certificateChainPath: String, privateKeyPath: String) throws(SIPTLSError) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
        self.current = NIOLockedValueBox(
            try Self.makeServerContext(certificateChainPath: certificateChainPath, privateKeyPath: privateKeyPath)
        )
    }

    /// Reads the files again and makes the context that connections accepted from now on use.
    /// On an error the previous context stays in use (a half-written file must not take TLS
    /// down) and the error says which file is wrong.
    public func reload() throws(SIPTLSError) {
        let context = try Self.makeServerContext(
            certificateChainPath: certificateChainPath,
            privateKeyPath: privateKeyPath
        )
        current.withLockedValue { $0 = context }
    }

    /// The context for a connection being accepted now.
    var serverContext: NIOSSLContext { current.withLockedValue { $0 } }

    /// The oldest protocol version a peer may use. TLS 1.0 and 1.1 are deprecated (RFC 8996:
    /// "TLS 1.0 MUST NOT be used", the same for 1.1); every SIP phone sold this decade speaks 1.2.
    static let minimumTLSVersion: TLSVersion = .tlsv12

    private static func makeServerContext(
        certificateChainPath: String,
        privateKeyPath: String
    ) throws(SIPTLSError) -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateChainPath)
        } catch {
            throw SIPTLSError(code: .unreadableCertificateChain, place: certificateChainPath, underlying: "\(error)")
        }
        // A file with no PEM certificate in it parses as an empty chain: nothing to present.
        guard !chain.isEmpty else {
            throw SIPTLSError(
                code: .unreadableCertificateChain,
                place: certificateChainPath,
                underlying: "no certificate"
            )
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: privateKeyPath, format: .pem)
        } catch {
            throw SIPTLSError(code: .unreadablePrivateKey, place: privateKeyPath, underlying: "\(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = minimumTLSVersion
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            // BoringSSL refuses a key that is not the certificate's (KEY_VALUES_MISMATCH).
            throw SIPTLSError(code: .keyDoesNotMatchCertificate, place: privateKeyPath, underlying: "\(error)")
        }
    }
}

/// Why a TLS listener cannot start or its certificate cannot be (re)loaded.
public struct SIPTLSError: Error, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// A `tls:` listener was asked for without a certificate and key.
        case notConfigured = "not_configured"
        case unreadableCertificateChain = "unreadable_certificate_chain"
        case unreadablePrivateKey = "unreadable_private_key"
        case keyDoesNotMatchCertificate = "key_does_not_match_certificate"
    }

    public var code: Code
    /// The file at fault, or the listener that has no certificate.
    public var place: String?
    /// What the TLS library said.
    public var underlying: String?

    public var description: String {
        let what: String
        switch code {
        case .notConfigured: what = "a TLS listener needs a certificate chain and a private key (PEM files)"
        case .unreadableCertificateChain: what = "cannot read a PEM certificate chain"
        case .unreadablePrivateKey: what = "cannot read a PEM private key"
        case .keyDoesNotMatchCertificate: what = "the private key does not fit the certificate"
        }
        let place = self.place.map { "\($0): " } ?? ""
        return place + what + (underlying.map { " (\($0))" } ?? "")
    }
}
