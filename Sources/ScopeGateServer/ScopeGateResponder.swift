import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ScopeGateCore

/// What the gate decided about a request it answers itself.
enum GateAnswer: Sendable {
    /// Answer the client with this response.
    case respond(Response)
    /// Forward to the IdP: the request target and, when ScopeGate re-serialized it, the whole body.
    /// The method and headers are the client's, rewritten as for any forwarded request.
    case forward(UpstreamForward)
}

/// A request the gate admitted, as it goes to the IdP.
struct UpstreamForward: Sendable {
    var target: String
    var body: ByteBuffer?
    /// For an admitted authorization request: what it asked for, noted with the code the IdP answers
    /// with (see `IssuedCodes`).
    var authorization: AdmittedAuthorization? = nil
}

/// Answers the requests ScopeGate handles itself: the gated authorization endpoint, discovery, and
/// ScopeGate's own pages. The public listener sends everything else to the IdP without calling it.
/// A class: every gated request goes through it, and copying its many fields per request showed.
final class ScopeGateResponder: Sendable {
    let pathGuard: PathGuard
    let authorization: AuthorizationEndpoint
    let holds: HoldEndpoints
    let discovery: DiscoveryEndpoint
    /// The pushed authorization request endpoint, when the IdP has one.
    let pushed: PushedAuthorizationEndpoint?
    /// The token endpoint.
    let token: TokenEndpoint
    /// The device authorization endpoint and ScopeGate's verification page, when the IdP has one.
    let device: DeviceAuthorizationEndpoint?
    /// Slack's interactivity endpoint, when Slack approvals are configured.
    let slack: SlackInteractions?
    /// The Bot Connector's messaging endpoint, when Teams approvals are configured.
    let teams: TeamsActivities?
    /// The approval page and the approvers' sign-in, when a route has an approval page.
    let approvals: ApprovalPage?
    /// The audit log's public keys, when the audit log is configured.
    let auditJWKS: AuditJWKSEndpoint?

    init(
        pathGuard: PathGuard, authorization: AuthorizationEndpoint, holds: HoldEndpoints, discovery: DiscoveryEndpoint,
        pushed: PushedAuthorizationEndpoint?, token: TokenEndpoint, device: DeviceAuthorizationEndpoint?,
        slack: SlackInteractions?, teams: TeamsActivities?, approvals: ApprovalPage?, auditJWKS: AuditJWKSEndpoint?
    ) {
        self.pathGuard = pathGuard
        self.authorization = authorization
        self.holds = holds
        self.discovery = discovery
        self.pushed = pushed
        self.token = token
        self.device = device
        self.slack = slack
        self.teams = teams
        self.approvals = approvals
        self.auditJWKS = auditJWKS
    }

    /// Paths ScopeGate serves itself and never forwards.
    static let ownPrefix = "/_scopegate/"

    /// Where the connection handler routed a request it hands over: the head is classified once, on
    /// the event loop, and the classification travels with it (no second pass over the path here).
    enum Destination: Sendable, Equatable {
        /// A path under `ownPrefix`: one of ScopeGate's own pages and endpoints.
        case own
        /// An endpoint of the IdP that ScopeGate gates.
        case gated(GatedEndpoint)
    }

    func answer(_ request: Request, context: GateRequestContext, destination: Destination) async -> GateAnswer {
        switch destination {
        case .own: return .respond(await answerOwn(request, context: context))
        case .gated(let endpoint): return await answer(request, context: context, endpoint: endpoint)
        }
    }

    /// ScopeGate's own pages and endpoints, under `ownPrefix`.
    private func answerOwn(_ request: Request, context: GateRequestContext) async -> Response {
        let path = Substring(request.uri.path)
        // Prefixes compared by bytes, as the connection handler routes (`hasPrefix` compares characters).
        if path.utf8.starts(with: HoldEndpoints.prefix.utf8) {
            return await holds.respond(to: request, path: path, context: context)
        }
        if path == SlackInteractions.path, let slack {
            return await slack.respond(to: request)
        }
        if path == TeamsActivities.path, let teams {
            return await teams.respond(to: request)
        }
        if let approvals {
            if path.utf8.starts(with: ApprovalPage.prefix.utf8) {
                return await approvals.respond(to: request, path: path)
            }
            if path == ApproverSignIn.startPath { return await approvals.signIn.start(request) }
            if path == ApproverSignIn.callbackPath { return await approvals.signIn.callback(request) }
        }
        if path == AuditJWKSEndpoint.path, let auditJWKS {
            return auditJWKS.respond(to: request)
        }
        if path == DeviceAuthorizationEndpoint.pagePath, let device {
            return await device.page(request, context: context)
        }
        return ErrorResponses.plain(.notFound, "ScopeGate serves nothing at this path")
    }

    /// A gated endpoint of the IdP, as the connection handler classified its path.
    private func answer(_ request: Request, context: GateRequestContext, endpoint: GatedEndpoint) async -> GateAnswer {
        switch endpoint {
        case .authorization:
            guard [.get, .head, .post].contains(request.method) else {
                var response = ErrorResponses.plain(.methodNotAllowed, "the authorization endpoint takes GET and POST")
                response.headers[.allow] = "GET, HEAD, POST"
                return .respond(response)
            }
            return await authorization.respond(to: request, context: context)
        case .discovery:
            return .respond(await discovery.respond(to: request, context: context))
        case .blocked:
            return .respond(
                OAuthError.response(
                    .forbidden, "access_denied",
                    "this endpoint carries permissions that ScopeGate does not gate, so it is not available through ScopeGate"))
        case .pushedAuthorization:
            guard let pushed else { return .respond(ErrorResponses.plain(.notFound, "no pushed authorization endpoint")) }
            return .respond(await pushed.respond(to: request, context: context))
        case .deviceAuthorization:
            guard let device else { return .respond(ErrorResponses.plain(.notFound, "no device authorization endpoint")) }
            return .respond(await device.respond(to: request, context: context))
        case .token:
            return .respond(await token.respond(to: request, context: context))
        }
    }
}

/// Serves the IdP's discovery document with every endpoint moved to ScopeGate's public URL.
struct DiscoveryEndpoint: Sendable {
    let proxy: UpstreamProxy

    func respond(to request: Request, context: GateRequestContext) async -> Response {
        guard request.method == .get || request.method == .head else {
            var response = ErrorResponses.plain(.methodNotAllowed, "discovery takes GET")
            response.headers[.allow] = "GET, HEAD"
            return response
        }
        switch await proxy.fetch(request, pathAndQuery: request.uri.string, peer: proxy.peer(context), limit: 1 << 20) {
        case .failed(let response):
            return response
        case .document(let status, let headers, let body):
            var fields = headers
            guard status == .ok else {
                fields[.contentLength] = String(body.readableBytes)
                return Response(status: status, headers: fields, body: .init(byteBuffer: body))
            }
            guard let rewritten = proxy.rewriter.rewrite(Data(buffer: body)) else {
                return ErrorResponses.plain(.badGateway, "the identity provider's discovery document is not JSON")
            }
            fields[.contentLength] = String(rewritten.count)
            fields[.contentType] = "application/json"
            fields[.init("ETag")!] = nil
            return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: rewritten)))
        }
    }
}
