import BusyLampCore
import Logging
import SIPTransportNIO
import ServiceLifecycle
import UnixSignals

/// `kill -HUP`: reads `tls_certificate` and `tls_private_key` again (INTERFACE.md), so that a
/// renewed certificate is presented without a restart. Connections accepted from then on get
/// the new certificate, established ones keep theirs; a file that cannot be used changes
/// nothing (the old certificate goes on being served) and is logged with its name.
struct TLSCertificateReloadService: Service {
    let certificate: SIPTLSCertificate
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                try certificate.reload()
                logger.notice(
                    "TLS certificate reloaded",
                    metadata: [LogKey.file: "\(certificate.certificateChainPath)"]
                )
            } catch {
                logger.error(
                    "TLS certificate not reloaded: the previous one is still served",
                    metadata: [
                        LogKey.file: "\(error.place ?? certificate.certificateChainPath)", LogKey.error: "\(error)",
                    ]
                )
            }
        }
    }
}
