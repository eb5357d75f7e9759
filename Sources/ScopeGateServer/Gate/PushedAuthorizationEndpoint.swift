import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import ScopeGateCore

/// The pushed authorization request endpoint (RFC 9126): the pushed request is gated like an
/// authorization request, but answered at once (back channel): unapproved → `invalid_scope` and one
/// approval request opened; approved → forwarded, and the `request_uri` the IdP issues is bound to the
/// client, so that the authorization endpoint admits it for that client only.
struct PushedAuthorizationEndpoint: Sendable {
    let service: GateService
    let proxy: UpstreamProxy
    let path: String
    let issued: PushedRequests
    /// Where malformed requests are recorded.
    let refusals: RefusalAudit
    let logger: Logger

    func respond(to request: Request, context: GateRequestContext) async -> Response {
        let (parameters, clientID): (FormParameters, String)
        switch await ClientForm.post(request, endpoint: "pushed authorization request", refusals: refusals) {
        case .refused(let response): return response
        case .read(let form, let client): (parameters, clientID) = (form, client)
        }
        let parsed: AuthorizationRequest
        do {
            let pairs = ClientForm.withoutCredentials(parameters, clientID: clientID)
            parsed = try AuthorizationRequest(method: .post, parameters: try FormParameters(pairs))
            let scopes = try service.policy.effectiveScopes(of: parsed)
            switch try await service.admitBackChannel(
                clientID: clientID, scopes: scopes, grantType: "pushed_authorization_request",
                source: proxy.clientAddress(request, context: context))
            {
            case .forward:
                break
            case .deny(let denied):
                return OAuthError.response(
                    .badRequest, "invalid_scope", "the organisation's policy does not allow: \(denied.tokens.joined(separator: " "))")
            case .pending(let approval):
                return OAuthError.response(
                    .badRequest, "invalid_scope",
                    "awaiting approval of \(approval.scopes.tokens.joined(separator: " ")) (request \(approval.id)); push the request again once it is approved")
            }
        } catch {
            return OAuthError.response(error)
        }
        return await forward(request, parameters: parameters, clientID: clientID, context: context)
    }

    private func forward(_ request: Request, parameters: FormParameters, clientID: String, context: GateRequestContext) async
        -> Response
    {
        do {
            let answer = try await proxy.post(parameters, to: path, from: request, peer: proxy.peer(context), limit: 64 * 1024)
            if answer.status == .created || answer.status == .ok,
                let object = (try? JSONSerialization.jsonObject(with: Data(buffer: answer.body))) as? [String: Any],
                let uri = object["request_uri"] as? String
            {
                let lifetime = (object["expires_in"] as? Int).map { Duration.seconds($0) } ?? .seconds(60)
                let pushed = (try? FormParameters(ClientForm.withoutCredentials(parameters, clientID: clientID))) ?? parameters
                await issued.record(uri, clientID: clientID, parameters: pushed, lifetime: lifetime)
            }
            return answer.response
        } catch {
            logger.warning("pushed authorization request: the IdP failed", metadata: ["sg.upstream.error": "\(type(of: error))"])
            return OAuthError.response(.badGateway, "temporarily_unavailable", "the identity provider cannot be reached")
        }
    }
}
