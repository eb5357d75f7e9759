import Crypto
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// A tiny OAuth 2.0 / OIDC provider for `scopegate demo`: authorization code with PKCE (S256), one
/// user (alice) who is always signed in, and opaque access tokens. It trusts nothing it is not told
/// and it is never linked into `scopegate serve`.
public struct DemoIdentityProvider: Sendable {
    /// The issuer: ScopeGate's public URL, because ScopeGate takes over the IdP's hostname.
    public let issuer: String
    /// Counts the authorization requests that reached the IdP (the demo shows it).
    public let received = NIOLockedValueBox<[String]>([])
    private let codes = NIOLockedValueBox<[String: IssuedCode]>([:])

    struct IssuedCode {
        var clientID: String
        var redirectURI: String
        var scope: String
        var challenge: String
    }

    /// Creates the provider.
    public init(issuer: String) { self.issuer = issuer }

    /// The IdP's routes.
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("/.well-known/openid-configuration") { _, _ in
            let document: [String: Any] = [
                "issuer": issuer, "authorization_endpoint": issuer + "/authorize", "token_endpoint": issuer + "/token",
                "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": ["authorization_code"], "authorization_response_iss_parameter_supported": true,
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["none"],
            ]
            let data = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("/authorize") { request, _ in authorize(request) }
        router.post("/token") { request, context in try await token(request, context: context) }
        return router
    }

    private func authorize(_ request: Request) -> Response {
        let query = request.uri.queryParameters
        let scope = query["scope"].map(String.init) ?? ""
        received.withLockedValue { $0.append(scope) }
        guard let clientID = query["client_id"].map(String.init), let redirect = query["redirect_uri"].map(String.init),
            query["response_type"] == "code", let challenge = query["code_challenge"].map(String.init),
            query["code_challenge_method"] == "S256"
        else {
            return Response(status: .badRequest, body: .init(byteBuffer: ByteBuffer(string: "demo IdP: bad authorization request\n")))
        }
        let code = UUID().uuidString
        codes.withLockedValue {
            $0[code] = IssuedCode(clientID: clientID, redirectURI: redirect, scope: scope, challenge: challenge)
        }
        var location = redirect + "?code=\(code)&iss=\(issuer.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
        if let state = query["state"] {
            location += "&state=" + (String(state).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
        }
        return Response.redirect(to: location, type: .found)
    }

    private func token(_ request: Request, context: BasicRequestContext) async throws -> Response {
        var copy = request
        let body = String(buffer: try await copy.collectBody(upTo: 16 * 1024))
        var form: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            if parts.count == 2 { form[parts[0]] = parts[1] }
        }
        let issued = codes.withLockedValue { codes in form["code"].flatMap { codes.removeValue(forKey: $0) } }
        guard form["grant_type"] == "authorization_code", let issued, issued.clientID == form["client_id"],
            issued.redirectURI == form["redirect_uri"], let verifier = form["code_verifier"],
            Self.challenge(for: verifier) == issued.challenge
        else {
            return Response(
                status: .badRequest, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: "{\"error\":\"invalid_grant\"}")))
        }
        let json = try JSONSerialization.data(withJSONObject: [
            "access_token": UUID().uuidString, "token_type": "Bearer", "expires_in": 3600, "scope": issued.scope,
        ])
        return Response(
            status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }

    /// The S256 PKCE challenge of a verifier (RFC 7636 §4.2).
    static func challenge(for verifier: String) -> String {
        Data(SHA256.hash(data: Data(verifier.utf8))).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
