import Foundation
import Hummingbird
import ScopeGateCore

/// Sends an OAuth error back to the client, the way the client asked for responses: to a redirect URI
/// registered for that client only (DESIGN invariant 6), in the query, the fragment or a `form_post`.
/// When no registered redirect URI applies, the browser gets an error page instead.
struct ClientRedirect {
    /// The policy in force, for the clients' registered redirect URIs.
    let live: LivePolicy
    var policy: Policy { live.policy }
    /// The issuer to send as `iss` (RFC 9207), when the IdP advertises support.
    let issuer: String?

    /// The registered redirect URI this request's errors may go to, if any.
    func registeredRedirectURI(for request: AuthorizationRequest) -> String? {
        guard let client = policy.clients[request.clientID] else { return nil }
        if let asked = request.redirectURI {
            return client.redirectURIs.contains(asked) ? asked : nil
        }
        return client.redirectURIs.count == 1 ? client.redirectURIs[0] : nil
    }

    /// The error response for `request`.
    func error(_ code: GateError.Code, description: String, for request: AuthorizationRequest) -> Response {
        guard let redirectURI = registeredRedirectURI(for: request) else {
            return ErrorResponses.page(
                GateError(code, description + " (the app's redirect address is not registered with ScopeGate, so you were not sent back to it)"))
        }
        var fields: [(String, String)] = [("error", code.rawValue), ("error_description", description)]
        if let state = request.state { fields.append(("state", state)) }
        if let issuer { fields.append(("iss", issuer)) }
        let mode = request.responseMode ?? (["code", "none"].contains(request.responseType) ? .query : .fragment)
        switch mode {
        case .query:
            let separator = redirectURI.contains("?") ? "&" : "?"
            return PageResponse.redirect(redirectURI + separator + encode(fields))
        case .fragment:
            return PageResponse.redirect(redirectURI + "#" + encode(fields))
        case .formPost:
            let nonce = RandomID.make(bytes: 16)
            let html = MessagePages.autoPost(
                title: "Returning to the app", message: description, action: redirectURI, fields: fields, nonce: nonce)
            let origin = URL(string: redirectURI).flatMap(DiscoveryRewriter.origin(of:))
            return PageResponse.html(html, nonce: nonce, formActions: origin.map { [$0] } ?? [])
        }
    }

    private func encode(_ fields: [(String, String)]) -> String {
        fields.map { FormParameters.encode($0.0) + "=" + FormParameters.encode($0.1) }.joined(separator: "&")
    }
}
