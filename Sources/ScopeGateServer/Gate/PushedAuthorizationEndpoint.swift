import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import ScopeGateCore

/// The `request_uri` values the IdP issued for pushed requests that passed the gate, bound to their
/// client, until they expire (at most ten minutes). Kept in memory: after a restart, a pending
/// `request_uri` is refused (fail closed) and the client pushes again.
final class PushedRequests: Sendable {
    private let issued = Mutex<[String: (clientID: String, parameters: FormParameters, expires: ContinuousClock.Instant)]>([:])

    /// Records `uri`, issued by the IdP for the pushed request `parameters` of `clientID`.
    func record(_ uri: String, clientID: String, parameters: FormParameters, lifetime: Duration) {
        let now = ContinuousClock.now
        issued.withLock { issued in
            issued = issued.filter { $0.value.expires > now }
            issued[uri] = (clientID, parameters, now + min(lifetime, .seconds(600)))
        }
    }

    /// The pushed request behind `uri`, when `uri` was issued through ScopeGate for `clientID`, has not
    /// expired, and every other parameter sent with it (`outer`, without `request_uri`) repeats the
    /// pushed request's value. RFC 9126 needs only `client_id`, but some IdPs (idpyoidc) want
    /// `response_type` and the rest again: a copy of what was gated reads the same whichever of the two
    /// the IdP takes.
    func admitted(_ uri: String, clientID: String, outer: [FormParameters.Pair] = []) -> FormParameters? {
        issued.withLock { issued in
            guard let entry = issued[uri], entry.clientID == clientID, entry.expires > .now else { return nil }
            let copies = outer.allSatisfy { pair in
                let pushed = entry.parameters.values(pair.name)
                return pair.name == "client_id" || (!pushed.isEmpty && pushed.allSatisfy { $0 == pair.value })
            }
            return copies ? entry.parameters : nil
        }
    }
}

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
                return TokenEndpoint.error(
                    .badRequest, "invalid_scope", "the organisation's policy does not allow: \(denied.tokens.joined(separator: " "))")
            case .pending(let approval):
                return TokenEndpoint.error(
                    .badRequest, "invalid_scope",
                    "awaiting approval of \(approval.scopes.tokens.joined(separator: " ")) (request \(approval.id)); push the request again once it is approved")
            }
        } catch {
            return TokenEndpoint.error(error)
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
                issued.record(uri, clientID: clientID, parameters: pushed, lifetime: lifetime)
            }
            return answer.response
        } catch {
            logger.warning("pushed authorization request: the IdP failed", metadata: ["sg.upstream.error": "\(type(of: error))"])
            return TokenEndpoint.error(.badGateway, "temporarily_unavailable", "the identity provider cannot be reached")
        }
    }
}

/// A client's form post to a back-channel endpoint: parsed strictly, the client identified once.
enum ClientForm {
    /// Client authentication parameters, which are not part of the request itself.
    static let clientAuthentication: Set<String> = ["client_secret", "client_assertion", "client_assertion_type"]

    /// A back-channel `POST`, read; or the RFC 6749 §5.2 answer that refuses it.
    enum Post {
        case read(FormParameters, clientID: String)
        case refused(Response)
    }

    /// Reads a `POST` to the endpoint named `endpoint` (`token`, …: in the `405` answer to other methods
    /// and in the audit entry); a malformed one is recorded in `refusals`.
    static func post(_ request: Request, endpoint: String, refusals: RefusalAudit) async -> Post {
        guard request.method == .post else {
            var response = TokenEndpoint.error(.methodNotAllowed, "invalid_request", "the \(endpoint) endpoint takes POST only")
            response.headers[.allow] = "POST"
            return .refused(response)
        }
        do {
            let (parameters, clientID) = try await read(request)
            return .read(parameters, clientID: clientID)
        } catch let refusal as TokenEndpoint.Refusal {
            await refusals.record(endpoint: endpoint, code: refusal.code, reason: refusal.message)
            return .refused(TokenEndpoint.error(refusal.status, refusal.code, refusal.message))
        } catch {
            return .refused(TokenEndpoint.error(.badRequest, "invalid_request", "the request cannot be read"))
        }
    }

    /// The parameters without client credentials, naming the client: what is forwarded or stored as
    /// the request itself.
    static func withoutCredentials(_ parameters: FormParameters, clientID: String) -> [FormParameters.Pair] {
        var pairs = parameters.pairs.filter { !clientAuthentication.contains($0.name) }
        if !pairs.contains(where: { $0.name == "client_id" }) { pairs.append(.init("client_id", clientID)) }
        return pairs
    }

    static func read(_ request: Request) async throws -> (FormParameters, String) {
        guard (request.uri.query ?? "").isEmpty else {
            throw TokenEndpoint.Refusal(message: "parameters belong in the form body, not the query")
        }
        let contentType = request.headers[.contentType]?.split(separator: ";").first?
            .trimmingCharacters(in: .whitespaces).lowercased()
        guard contentType == "application/x-www-form-urlencoded" else {
            throw TokenEndpoint.Refusal(message: "the request must be application/x-www-form-urlencoded")
        }
        var copy = request
        let body: ByteBuffer
        do {
            body = try await copy.collectBody(upTo: TokenEndpoint.maximumBodySize)
        } catch {
            throw TokenEndpoint.Refusal(status: .contentTooLarge, message: "the form body is larger than \(TokenEndpoint.maximumBodySize) bytes")
        }
        let parameters: FormParameters
        do {
            parameters = try FormParameters(parsing: Substring(String(buffer: body)))
        } catch {
            throw TokenEndpoint.Refusal(message: error.message)
        }
        var identities = Set<String>()
        if let basic = try TokenEndpoint.basicClientID(request.headers[values: .authorization]) { identities.insert(basic) }
        if let bodyID = parameters["client_id"] { identities.insert(bodyID) }
        if let assertion = parameters["client_assertion"] {
            guard let subject = TokenEndpoint.assertionSubject(assertion) else {
                throw TokenEndpoint.Refusal(status: .unauthorized, code: "invalid_client", message: "the client assertion cannot be read")
            }
            identities.insert(subject)
        }
        guard identities.allSatisfy(ClientID.isValid) else {
            throw TokenEndpoint.Refusal(
                status: .unauthorized, code: "invalid_client", message: "a client_id must be printable ASCII (RFC 6749, appendix A.1)")
        }
        guard identities.count == 1, let clientID = identities.first, !clientID.isEmpty else {
            throw TokenEndpoint.Refusal(
                status: .unauthorized, code: "invalid_client",
                message: identities.isEmpty ? "the client is not identified" : "the request names more than one client")
        }
        return (parameters, clientID)
    }
}
