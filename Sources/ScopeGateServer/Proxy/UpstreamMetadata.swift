import AsyncHTTPClient
import Foundation
import NIOCore
import ScopeGateCore

/// What ScopeGate learned about the IdP at start-up: where its endpoints are and what it supports.
struct UpstreamMetadata: Sendable {
    /// The IdP's issuer, when it has a discovery document.
    var issuer: String?
    /// The path of the authorization endpoint.
    var authorizationPath: String
    /// The path of the token endpoint (discovery or `upstream.token_endpoint`); ScopeGate does not start
    /// without one.
    var tokenPath: String
    /// The path of the revocation endpoint (RFC 7009), when discovery names one ScopeGate fronts.
    var revocationPath: String?
    /// The path of the introspection endpoint (RFC 7662), when discovery names one ScopeGate fronts.
    var introspectionPath: String? = nil
    /// The path of the pushed authorization request endpoint (RFC 9126), when discovery names one.
    var pushedAuthorizationPath: String?
    /// The path of the device authorization endpoint (RFC 8628), when discovery names one.
    var deviceAuthorizationPath: String?
    /// Advertised endpoints that carry permissions and that ScopeGate refuses (by discovery name).
    var blockedPaths: [String: String] = [:]

    /// Endpoints that carry permissions and that ScopeGate does not gate.
    static let unhandledEndpoints = ["backchannel_authentication_endpoint", "registration_endpoint"]
    /// Endpoints ScopeGate gates; an `mtls_endpoint_aliases` entry for one at another path is refused.
    static let gatedEndpoints = [
        "authorization_endpoint", "token_endpoint", "pushed_authorization_request_endpoint", "device_authorization_endpoint",
    ]
    /// The paths at which the discovery document is served (rewritten) to clients.
    var discoveryPaths: [String]
    /// Whether the IdP returns `iss` in authorization responses (RFC 9207).
    var issParameterSupported: Bool

    /// The standard discovery locations, in the order they are tried.
    static let standardDiscoveryPaths = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]

    /// Reads the IdP's metadata; the explicit configuration wins over what discovery says.
    static func discover(configuration: ScopeGateConfiguration, client: HTTPClient) async throws(GateError)
        -> UpstreamMetadata
    {
        let candidates = configuration.discoveryPath.map { [$0] } ?? standardDiscoveryPaths
        var document: [String: Any]?
        var foundAt: String?
        for path in candidates {
            if let found = await fetchJSON(configuration.upstreamURL, path: path, client: client) {
                document = found
                foundAt = path
                break
            }
        }
        var knownTokenPath = configuration.tokenEndpointPath
        if knownTokenPath == nil, let document {
            knownTokenPath = try endpointPath(document, "token_endpoint", configuration: configuration)
        }
        guard let tokenPath = knownTokenPath else {
            throw GateError(
                .invalidConfiguration,
                "ScopeGate knows no token endpoint (discovery names none): set upstream.token_endpoint; every token the IdP issues must pass the second gate there"
            )
        }
        let blocked = try document.map { (document) throws(GateError) in try blockedEndpoints(document, configuration) } ?? [:]
        let revocationPath = document.flatMap { try? endpointPath($0, "revocation_endpoint", configuration: configuration) }
        let introspectionPath = document.flatMap { try? endpointPath($0, "introspection_endpoint", configuration: configuration) }
        var pushedPath: String?
        var devicePath = configuration.deviceAuthorizationEndpointPath
        if let document {
            pushedPath = try endpointPath(document, "pushed_authorization_request_endpoint", configuration: configuration)
            if devicePath == nil {
                devicePath = try endpointPath(document, "device_authorization_endpoint", configuration: configuration)
            }
        }
        if let explicit = configuration.authorizationEndpointPath {
            return UpstreamMetadata(
                issuer: document?["issuer"] as? String, authorizationPath: explicit, tokenPath: tokenPath,
                revocationPath: revocationPath, introspectionPath: introspectionPath, pushedAuthorizationPath: pushedPath,
                deviceAuthorizationPath: devicePath,
                blockedPaths: blocked,
                discoveryPaths: foundAt.map { [$0] } ?? [],
                issParameterSupported: document?["authorization_response_iss_parameter_supported"] as? Bool ?? false)
        }
        guard let document, let foundAt else {
            throw GateError(
                .invalidConfiguration,
                "no discovery document at \(candidates.joined(separator: " or ")) on upstream.url; set upstream.discovery_path or upstream.authorization_endpoint"
            )
        }
        guard let endpoint = document["authorization_endpoint"] as? String, let url = URL(string: endpoint),
            !url.path.isEmpty
        else {
            throw GateError(
                .invalidConfiguration,
                "the discovery document names no authorization_endpoint; set upstream.authorization_endpoint")
        }
        let origin = DiscoveryRewriter.origin(of: url)
        let known = [configuration.upstreamURL, configuration.publicURL].map(DiscoveryRewriter.origin(of:))
        guard known.contains(origin) else {
            throw GateError(
                .invalidConfiguration,
                "the IdP's authorization_endpoint is on \(origin ?? "another host"), which ScopeGate does not front; requests there could not be gated"
            )
        }
        return UpstreamMetadata(
            issuer: document["issuer"] as? String, authorizationPath: url.path(percentEncoded: true), tokenPath: tokenPath,
            revocationPath: revocationPath, introspectionPath: introspectionPath, pushedAuthorizationPath: pushedPath,
            deviceAuthorizationPath: devicePath,
                blockedPaths: blocked,
            discoveryPaths: [foundAt],
            issParameterSupported: document["authorization_response_iss_parameter_supported"] as? Bool ?? false)
    }

    /// The permission-carrying endpoints ScopeGate does not gate, by path (their `mtls_endpoint_aliases`
    /// too). Refuses to start when there are any and the configuration does not say to block them.
    private static func blockedEndpoints(_ document: [String: Any], _ configuration: ScopeGateConfiguration)
        throws(GateError) -> [String: String]
    {
        let aliases = document["mtls_endpoint_aliases"] as? [String: Any] ?? [:]
        var blocked: [String: String] = [:]
        for name in unhandledEndpoints {
            for source in [document, aliases] {
                if let path = try endpointPath(source, name, configuration: configuration) { blocked[path] = name }
            }
        }
        // An alias of a gated endpoint at another path would be a second, ungated door to it.
        for name in gatedEndpoints {
            if let alias = try endpointPath(aliases, name, configuration: configuration),
                alias != (try endpointPath(document, name, configuration: configuration))
            {
                blocked[alias] = "mtls_endpoint_aliases.\(name)"
            }
        }
        guard blocked.isEmpty || configuration.blockUnhandledEndpoints else {
            throw GateError(
                .invalidConfiguration,
                "the IdP advertises \(Set(blocked.values).sorted().joined(separator: ", ")), which carry permissions ScopeGate does not gate yet; set upstream.block_unhandled_endpoints: true to refuse them, or turn them off at the IdP"
            )
        }
        return blocked
    }

    /// The path of an endpoint the document names, refusing one on an origin ScopeGate does not front.
    private static func endpointPath(_ document: [String: Any], _ name: String, configuration: ScopeGateConfiguration)
        throws(GateError) -> String?
    {
        guard let text = document[name] as? String else { return nil }
        guard let url = URL(string: text), !url.path.isEmpty else {
            throw GateError(.invalidConfiguration, "the discovery document's \(name) cannot be read")
        }
        let known = [configuration.upstreamURL, configuration.publicURL].map(DiscoveryRewriter.origin(of:))
        guard known.contains(DiscoveryRewriter.origin(of: url)) else {
            throw GateError(
                .invalidConfiguration,
                "the IdP's \(name) is on another origin, which ScopeGate does not front; requests there could not be gated")
        }
        return url.path(percentEncoded: true)
    }

    private static func fetchJSON(_ base: URL, path: String, client: HTTPClient) async -> [String: Any]? {
        var request = HTTPClientRequest(url: DiscoveryRewriter.join(base, path))
        request.headers.add(name: "Accept", value: "application/json")
        guard let response = try? await client.execute(request, timeout: .seconds(10)), response.status == .ok,
            let body = try? await response.body.collect(upTo: 1 << 20)
        else {
            return nil
        }
        return (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any]
    }
}
