import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ScopeGateCore

/// The gated authorization endpoint: parse once, strictly; evaluate; forward what is approved exactly
/// as parsed, hold what needs a decision, refuse the rest.
/// A class: every gated request reaches it, and copying its fields per request showed in profiles.
final class AuthorizationEndpoint: Sendable {
    let service: GateService
    let snapshot: GrantSnapshot
    let binding: BrowserBinding
    let redirect: ClientRedirect
    let path: String
    /// `path`'s bytes, for the comparison every request at the endpoint makes.
    private let pathBytes: [UInt8]
    /// `request_uri` values issued for pushed requests that passed the gate.
    let pushed: PushedRequests
    /// Where malformed requests are recorded.
    let refusals: RefusalAudit
    /// Peers whose `X-Forwarded-For` names the client's address (for the limits on new holds).
    let trustedProxies: Set<String>
    let logger: Logger

    init(
        service: GateService, snapshot: GrantSnapshot, binding: BrowserBinding, redirect: ClientRedirect, path: String,
        pushed: PushedRequests, refusals: RefusalAudit, trustedProxies: Set<String>, logger: Logger
    ) {
        self.trustedProxies = trustedProxies
        self.service = service
        self.snapshot = snapshot
        self.binding = binding
        self.redirect = redirect
        self.path = path
        self.pathBytes = Array(path.utf8)
        self.pushed = pushed
        self.refusals = refusals
        self.logger = logger
    }

    /// The largest form body read at the authorization endpoint.
    static let maximumBodySize = 32 * 1024

    func respond(to request: Request, context: GateRequestContext) async -> GateAnswer {
        if request.method == .get || request.method == .head, let query = request.uri.query, query.contains("request_uri"),
            let form = try? FormParameters(parsing: Substring(query)), form.contains("request_uri")
        {
            return await pushedRequest(form)
        }
        let parsed: AuthorizationRequest
        do {
            parsed = try await parse(request)
        } catch {
            logger.notice("authorization request refused", metadata: ["sg.reason": "\(error.code.rawValue)"])
            // Recorded (within the audit's budget for refusals), never forwarded.
            await refusals.record(endpoint: "authorization", code: error.code.rawValue, reason: error.message)
            return .respond(ErrorResponses.page(error, title: "This sign-in request is malformed"))
        }
        let (binder, setCookie) = binding.valueOrNew(in: request)
        let admission: GateService.Admission
        do {
            admission = try await service.admit(
                parsed, binderHash: BrowserBinding.hash(binder),
                source: UpstreamProxy.clientAddress(
                    peer: context.peerAddress, forwardedFor: request.headers[values: .xForwardedFor], trustedProxies: trustedProxies))
        } catch {
            if error.code == .temporarilyUnavailable || error.code == .slowDown { return .respond(ErrorResponses.page(error)) }
            return .respond(redirect.error(error.code, description: error.message, for: parsed))
        }
        switch admission {
        case .forward:
            return .forward(forward(parsed))
        case .forwardOnce(let approvedOnce, let holdID):
            return .forward(forward(parsed, approvedOnce: approvedOnce, holdID: holdID))
        case .deny(let scopes):
            return .respond(
                redirect.error(
                    .accessDenied, description: "The organisation's policy does not allow: \(scopes.parameterValue)",
                    for: parsed))
        case .held(let hold, let approval):
            logger.info(
                "authorization request held",
                metadata: ["sg.request.id": "\(approval.id)", "sg.client.id": "\(parsed.clientID)"])
            var headers = HTTPFields()
            if let setCookie { headers[.setCookie] = setCookie }
            return .respond(PageResponse.redirect(HoldEndpoints.pagePath(hold.id), headers: headers))
        }
    }

    /// An authorization request by reference to a pushed request (RFC 9126 §4): only `client_id` and
    /// a `request_uri` the IdP issued through ScopeGate for that client are admitted, forwarded as they are.
    private func pushedRequest(_ form: FormParameters) async -> GateAnswer {
        if form.contains("request") {
            return .respond(
                ErrorResponses.page(
                    GateError(.invalidRequest, "request and request_uri cannot be used together"),
                    title: "This sign-in request is malformed"))
        }
        guard let clientID = form["client_id"], let uri = form["request_uri"], form.values("request_uri").count == 1,
            let request = await pushed.sharedAdmitted(uri, clientID: clientID, outer: form.pairs.filter { $0.known != .requestURI })
        else {
            return .respond(
                ErrorResponses.page(
                    GateError(
                        .requestURINotSupported,
                        "request_uri is accepted only with client_id (and, at most, copies of the pushed request's own parameters), for a request pushed through ScopeGate by that client and not expired"),
                    title: "This sign-in request is malformed"))
        }
        let permissions = (try? AuthorizationRequest(method: .post, parameters: request)).flatMap {
            try? service.policy.effectiveScopes(of: $0)
        }
        return .forward(
            UpstreamForward(
                target: path + "?" + form.encoded, body: nil,
                authorization: permissions.map { AdmittedAuthorization(.init(clientID: clientID, permissions: $0)) }))
    }

    /// Admits a `GET` (its request target given) whose scopes are all granted or approved by policy,
    /// from the grant snapshot, without waiting for anything. Returns `nil` for every other case (a
    /// parse error, a scope that needs a decision or is denied, a stale snapshot): those take the full path.
    func admitWithoutWaiting(target: RequestTarget) -> UpstreamForward? {
        guard let query = target.query else { return nil }
        // The common shape, read in place: forwarded (as it came, or with `%20` for `+`) when its scopes
        // are all allowed, left to the full path otherwise (a decision to wait for, or a stale snapshot).
        if isExactPath(target.path), let plain = PlainAuthorizationQuery(query) {
            guard service.admitsAtOnce(plain, snapshot: snapshot) else { return nil }
            return UpstreamForward(
                target: plain.isCanonical ? target.text : path + "?" + plain.serialized, body: nil,
                authorization: AdmittedAuthorization(plain: plain))
        }
        guard let parsed = try? AuthorizationRequest(method: .get, query: query),
            let scopes = service.admitsAtOnce(parsed, snapshot: snapshot)
        else { return nil }
        // Canonical parameters re-serialize to the query as it came: the target is then forwarded as it
        // is (when its path is the endpoint's exact spelling), without building it again.
        if parsed.parameters.isCanonical, isExactPath(target.path) {
            return UpstreamForward(target: target.text, body: nil, authorization: AdmittedAuthorization(.init(clientID: parsed.clientID, permissions: scopes)))
        }
        return forward(parsed)
    }

    /// Whether `candidate` is the endpoint's path, byte for byte (a generic `elementsEqual` over the
    /// two UTF-8 views showed in profiles of the gated path).
    private func isExactPath(_ candidate: Substring) -> Bool {
        var candidate = candidate
        return candidate.withUTF8 { bytes in
            bytes.count == pathBytes.count
                && (bytes.isEmpty || pathBytes.withUnsafeBufferPointer { memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 })
        }
    }

    /// An admitted request as it goes to the IdP: re-serialized from what was parsed, the query as the
    /// query and a form body as the body (an IdP's consent form posts back to the URL it was shown on,
    /// and the IdP may read either part: the gate read both).
    func forward(_ parsed: AuthorizationRequest, approvedOnce: ScopeSet = ScopeSet([String]()), holdID: String? = nil)
        -> UpstreamForward
    {
        let target = parsed.query.pairs.isEmpty ? path : parsed.query.appendingEncoded(to: path + "?")
        let permissions = try? service.policy.effectiveScopes(of: parsed)
        return UpstreamForward(
            target: target, body: parsed.body.map { ByteBuffer(string: $0.encoded) },
            authorization: permissions.map {
                AdmittedAuthorization(
                    .init(
                        clientID: parsed.clientID, permissions: $0, approvedOnce: approvedOnce, onceHoldID: holdID,
                        redirectURI: parsed.redirectURI))
            })
    }

    private func parse(_ request: Request) async throws(GateError) -> AuthorizationRequest {
        let query = Substring(request.uri.query ?? "")
        switch request.method {
        case .get, .head:
            guard request.headers[.contentLength].map({ $0 == "0" }) ?? true, request.headers[.transferEncoding] == nil
            else {
                throw GateError(.invalidRequest, "a GET authorization request must not have a body")
            }
            return try AuthorizationRequest(method: .get, query: query)
        case .post:
            // The form is read as UTF-8 and forwarded as plain `application/x-www-form-urlencoded`: a
            // charset the client chose (Django honours `utf-7`) would have the IdP read other bytes.
            let parts = (request.headers[.contentType] ?? "").split(separator: ";").map {
                $0.trimmingCharacters(in: .whitespaces).lowercased()
            }
            guard parts.first == "application/x-www-form-urlencoded",
                parts.dropFirst().allSatisfy({ $0 == "charset=utf-8" || $0 == "charset=\"utf-8\"" })
            else {
                throw GateError(
                    .invalidRequest, "a POST authorization request must be application/x-www-form-urlencoded, in UTF-8")
            }
            var copy = request
            let body: ByteBuffer
            do {
                body = try await copy.collectBody(upTo: Self.maximumBodySize)
            } catch {
                throw GateError(.invalidRequest, "the form body is larger than \(Self.maximumBodySize) bytes")
            }
            return try AuthorizationRequest(method: .post, query: query, body: Substring(String(buffer: body)))
        default:
            throw GateError(.invalidRequest, "the authorization endpoint takes GET and POST only")
        }
    }
}
