import AsyncHTTPClient
import ScopeGateCore

extension UpstreamMetadata {
    /// What ScopeGate does with each of the IdP's endpoints, one line each (`gated`, `refused`,
    /// `served`, `exposed`), for `scopegate config check --online` and the start-up log.
    func report(configuration: ScopeGateConfiguration) -> [String] {
        var lines = ["gated    authorization_endpoint \(authorizationPath) (held, refused or forwarded as parsed)"]
        lines.append("gated    token_endpoint \(tokenPath) (grants that carry scope; every token through the second gate)")
        if let pushedAuthorizationPath {
            lines.append("gated    pushed_authorization_request_endpoint \(pushedAuthorizationPath)")
        }
        if let deviceAuthorizationPath {
            lines.append("gated    device_authorization_endpoint \(deviceAuthorizationPath)")
        }
        for (path, name) in blockedPaths.sorted(by: { $0.key < $1.key }) {
            lines.append("refused  \(name) \(path) (403: carries permissions ScopeGate does not gate)")
        }
        if let revocationPath {
            lines.append("used     revocation_endpoint \(revocationPath) (withheld tokens are revoked there)")
        }
        for path in discoveryPaths {
            lines.append("served   discovery \(path) (rewritten to \(configuration.publicURL.absoluteString))")
        }
        if let exposed = configuration.exposedPaths {
            lines.append("exposed  \(exposed.joined(separator: ", ")) (every other path of the IdP is a 404)")
        } else {
            lines.append("exposed  every other path of the IdP (upstream.expose is not set)")
        }
        return lines
    }
}

extension ScopeGateApplication {
    /// Reads the IdP's discovery document as `scopegate serve` does at start-up and says what ScopeGate
    /// would do with each endpoint; throws what would stop the start.
    public static func upstreamReport(configuration: ScopeGateConfiguration) async throws(GateError) -> [String] {
        let client = makeHTTPClient(configuration: configuration)
        let result: Result<UpstreamMetadata, GateError>
        do {
            result = .success(try await UpstreamMetadata.discover(configuration: configuration, client: client))
        } catch {
            result = .failure(error)
        }
        try? await client.shutdown()
        return try result.get().report(configuration: configuration)
    }
}
