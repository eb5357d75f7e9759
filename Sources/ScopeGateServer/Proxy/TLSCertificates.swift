import Logging
import NIOSSL
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The public listener's certificate and key, reloadable: each new connection takes the context in
/// force when it arrives, so a reload never drops a connection; those open keep the old one.
final class TLSCertificates: Sendable {
    let files: ScopeGateConfiguration.TLSFiles
    /// Whether HTTP/2 is offered (ALPN `h2` before `http/1.1`).
    let http2: Bool
    private let context: Mutex<NIOSSLContext>

    /// Loads the certificate chain and key that `files` name.
    init(_ files: ScopeGateConfiguration.TLSFiles, http2: Bool = false) throws {
        self.files = files
        self.http2 = http2
        self.context = Mutex(try Self.load(files, http2: http2))
    }

    /// The context new connections use.
    var current: NIOSSLContext { context.withLock { $0 } }

    /// Loads the files again; when they cannot be read (a renewal half written), the certificate in
    /// force stays and the error is thrown.
    func reload() throws {
        let fresh = try Self.load(files, http2: http2)
        context.withLock { $0 = fresh }
    }

    private static func load(_ files: ScopeGateConfiguration.TLSFiles, http2: Bool) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(files.certificatePath).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: files.keyPath, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.applicationProtocols = http2 ? ["h2", "http/1.1"] : ["http/1.1"]
        return try NIOSSLContext(configuration: configuration)
    }
}

/// Reloads the TLS certificate and key on SIGHUP (as certificate renewal tools signal servers). Always
/// running, so that a SIGHUP never stops ScopeGate, also without TLS.
struct ReloadOnHangup: Service {
    let certificates: TLSCertificates?
    /// Reloads the policy from the configuration file, when ScopeGate was started from one.
    var reloadPolicy: (@Sendable () async -> Void)? = nil
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        try await cancelWhenGracefulShutdown {
            for await _ in signals {
                await reloadPolicy?()
                guard let certificates else {
                    if reloadPolicy == nil {
                        logger.notice("SIGHUP received: nothing to reload (no TLS certificate or configuration file)")
                    }
                    continue
                }
                do {
                    try certificates.reload()
                    logger.notice("TLS certificate reloaded", metadata: ["sg.tls.certificate": "\(certificates.files.certificatePath)"])
                } catch {
                    logger.error(
                        "TLS certificate not reloaded; the one in force stays",
                        metadata: ["sg.tls.certificate": "\(certificates.files.certificatePath)", "sg.error": "\(type(of: error))"])
                }
            }
        }
    }
}
