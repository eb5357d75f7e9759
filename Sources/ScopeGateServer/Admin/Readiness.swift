import AsyncHTTPClient
import Foundation
import NIOCore
import ScopeGateCore
import Synchronization

/// What `/readyz` checks: ScopeGate can gate (its store takes writes), reach the IdP (its discovery
/// document answers), and sign the audit log (its key is loaded and still readable). A load balancer
/// sends sign-ins only to a replica that can do all three; nothing here needs a credential.
final class Readiness: Sendable {
    let store: any GateStore
    let client: HTTPClient
    /// What is fetched from the IdP: its discovery document, or, without one, its authorization endpoint.
    let upstreamURL: String
    /// The audit signing key's file, when the audit log is configured, and whether it was loaded.
    let auditKey: (file: URL, loaded: Bool)?
    /// The last answer of the IdP, kept a few seconds: probes come often, and the IdP is not theirs.
    private let upstream = Mutex<(at: ContinuousClock.Instant, ok: Bool)?>(nil)

    init(store: any GateStore, client: HTTPClient, upstreamURL: String, auditKey: (file: URL, loaded: Bool)?) {
        self.store = store
        self.client = client
        self.upstreamURL = upstreamURL
        self.auditKey = auditKey
    }

    /// Each check by name, `ok` or why not, and whether all passed.
    func check() async -> (ready: Bool, checks: [(String, String)]) {
        var checks: [(String, String)] = []
        do {
            try await store.checkWritable()
            checks.append(("store", "ok"))
        } catch {
            checks.append(("store", "not writable"))
        }
        checks.append(("upstream", await upstreamReachable() ? "ok" : "unreachable"))
        if let auditKey {
            let readable = FileManager.default.isReadableFile(atPath: auditKey.file.path)
            checks.append(("audit_key", auditKey.loaded && readable ? "ok" : "not loaded"))
        }
        return (checks.allSatisfy { $0.1 == "ok" }, checks)
    }

    private func upstreamReachable() async -> Bool {
        if let last = upstream.withLock({ $0 }), ContinuousClock.now - last.at < .seconds(5) { return last.ok }
        var request = HTTPClientRequest(url: upstreamURL)
        request.method = .GET
        var ok = false
        if let response = try? await client.execute(request, timeout: .seconds(3)) {
            ok = response.status.code < 500
            _ = try? await response.body.collect(upTo: 1 << 20)
        }
        upstream.withLock { $0 = (.now, ok) }
        return ok
    }
}
