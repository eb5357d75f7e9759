import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ScopeGateAudit
import ScopeGateCore

/// The gated token endpoint (RFC 6749 §3.2): grants that ask for scopes are gated like the
/// authorization endpoint, and every token that leaves passes the second gate.
///
/// - `authorization_code`: the scopes were gated at the authorization endpoint; forwarded.
/// - `refresh_token`: forwarded; a `scope` asking for more is gated first.
/// - every other grant (`client_credentials`, `password`, token exchange, JWT bearer, …): the `scope`,
///   or the client's configured default scopes, gated; unapproved → `invalid_scope` at once and one
///   approval request opened; a retry after approval passes.
/// - Second gate: the `scope` of a successful token response must be within what the client may hold
///   now; otherwise the response is replaced by `invalid_scope`, and the token never reaches the client.
///
/// The request is parsed strictly (one value per parameter, form body only) and forwarded as
/// re-serialized; the client is identified by HTTP Basic, `client_id`, or a client assertion's `sub`,
/// and differing identities are refused.
struct TokenEndpoint: Sendable {
    let service: GateService
    let proxy: UpstreamProxy
    let path: String
    /// Where a withheld token is revoked (RFC 7009), when the IdP has a revocation endpoint.
    let revocationPath: String?
    /// Where a token whose permissions nothing else shows is introspected (RFC 7662), when the IdP has
    /// an introspection endpoint.
    let introspectionPath: String?
    /// The gated device authorization endpoint, which answers polls with the device codes it issued.
    let device: DeviceAuthorizationEndpoint?
    /// Where malformed requests are recorded.
    let refusals: RefusalAudit
    /// The authorization codes ScopeGate relayed, with what their requests asked for.
    let codes: IssuedCodes
    let logger: Logger

    static let maximumResponseSize = 1 << 20
    static let authorizationCodeGrant = "authorization_code"
    static let refreshTokenGrant = "refresh_token"
    /// RFC 8628 §3.4: the device flow's token request; its scopes were gated at the device endpoint.
    static let deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"

    func respond(to request: Request, context: GateRequestContext) async -> Response {
        var (parameters, clientID): (FormParameters, String)
        switch await ClientForm.post(request, endpoint: "token", refusals: refusals) {
        case .refused(let response): return response
        case .read(let form, let client): (parameters, clientID) = (form, client)
        }
        guard let grantType = parameters["grant_type"], !grantType.isEmpty else {
            await refusals.record(endpoint: "token", code: "invalid_request", reason: "grant_type is missing")
            return OAuthError.response(.badRequest, "invalid_request", "grant_type is missing")
        }
        if grantType == Self.deviceCodeGrant, device == nil {
            // The device code came from a device endpoint ScopeGate does not know, so could not gate.
            return OAuthError.response(
                .badRequest, "unsupported_grant_type",
                "ScopeGate does not know the identity provider's device authorization endpoint (upstream.device_authorization_endpoint)")
        }
        if grantType == Self.deviceCodeGrant, let device, let code = parameters["device_code"],
            let binder = DeviceAuthorizationEndpoint.binder(deviceCode: code)
        {
            // A device code shaped like ScopeGate's: ScopeGate answers until the hold is released. One it
            // never issued is refused here (the IdP's own device codes do not look like ScopeGate's).
            do {
                guard let (hold, approval) = try await service.deviceHold(binder: binder) else {
                    return OAuthError.response(.badRequest, "invalid_grant", "ScopeGate issued no such device code")
                }
                switch await device.poll(hold, approval, parameters: parameters, clientID: clientID, request: request, context: context) {
                case .respond(let response): return response
                case .forward(let translated): parameters = translated
                }
            } catch {
                return OAuthError.response(.serviceUnavailable, "temporarily_unavailable", error.message)
            }
        }
        let requested: RequestedScope
        do {
            requested = try RequestedScope(in: parameters)
        } catch {
            return OAuthError.response(.badRequest, "invalid_scope", error.message)
        }
        // Resources, audiences and authorization details asked for here are permissions too.
        let others: ScopeSet
        do {
            others = ScopeSet(try Permissions.names(in: parameters))
        } catch {
            return OAuthError.response(.badRequest, error.code.rawValue, error.message)
        }
        let continuesGrant = grantType == Self.authorizationCodeGrant || grantType == Self.deviceCodeGrant
            || (grantType == Self.refreshTokenGrant && requested.isAbsent)
        // The authorization (or device request) a code answered, when ScopeGate relayed it. The device
        // code is the IdP's here (ScopeGate's own was translated above).
        var flow: IssuedCodes.Authorization?
        if grantType == Self.authorizationCodeGrant || grantType == Self.deviceCodeGrant {
            let code = parameters[grantType == Self.authorizationCodeGrant ? "code" : "device_code"]
            if let code { flow = await codes.sharedAuthorization(of: code).flatMap { $0.clientID == clientID ? $0 : nil } }
        }
        if continuesGrant, !others.isEmpty {
            // These grants continue an authorization gated before: what they name must be approved already.
            do {
                let beyond = try await service.scopesBeyondApproval(
                    others, clientID: clientID, approvedOnce: flow?.approvedOnce ?? ScopeSet([String]()))
                if !beyond.isEmpty {
                    return OAuthError.response(
                        .badRequest, GateError.Code.invalidTarget.rawValue,
                        "not approved for this client: \(beyond.tokens.joined(separator: " "))")
                }
            } catch {
                return OAuthError.response(.serviceUnavailable, "temporarily_unavailable", error.message)
            }
        }
        if !continuesGrant {
            let scopes: ScopeSet
            do {
                scopes = try requested.effective(defaults: service.policy.clients[clientID]?.defaultScopes).union(others)
            } catch {
                return OAuthError.response(.badRequest, "invalid_scope", error.message + " at ScopeGate")
            }
            do {
                switch try await service.admitBackChannel(
                    clientID: clientID, scopes: scopes, grantType: grantType, source: proxy.clientAddress(request, context: context))
                {
                case .forward:
                    break
                case .deny(let denied):
                    return OAuthError.response(
                        .badRequest, "invalid_scope", "the organisation's policy does not allow: \(denied.tokens.joined(separator: " "))")
                case .pending(let approval):
                    logger.info(
                        "token request refused pending approval",
                        metadata: ["sg.request.id": "\(approval.id)", "sg.client.id": "\(clientID)"])
                    return OAuthError.response(
                        .badRequest, "invalid_scope",
                        "awaiting approval of \(approval.scopes.tokens.joined(separator: " ")) (request \(approval.id)); retry once it is approved")
                }
            } catch {
                return OAuthError.response(error)
            }
        }
        // What a token response without `scope` grants (RFC 6749 §5.1: the scope requested). For a code,
        // that is the authorization request's, as ScopeGate admitted it (never the client's word here);
        // otherwise whichever value the IdP read is within the union (with the defaults where it may
        // have read none).
        let asRequested: ScopeSet?
        if grantType == Self.authorizationCodeGrant || grantType == Self.deviceCodeGrant {
            asRequested = flow?.permissions
        } else {
            asRequested = requested.isAbsent ? nil : try? requested.effective(defaults: service.policy.clients[clientID]?.defaultScopes)
        }
        return await forward(
            request, parameters: parameters, clientID: clientID, requested: asRequested,
            approvedOnce: flow?.approvedOnce ?? ScopeSet([String]()), context: context)
    }

    // MARK: Forwarding and the second gate

    private func forward(
        _ request: Request, parameters: FormParameters, clientID: String, requested: ScopeSet?, approvedOnce: ScopeSet,
        context: GateRequestContext
    ) async -> Response {
        let peer = proxy.peer(context)
        let answer: UpstreamProxy.Answer
        do {
            answer = try await proxy.post(parameters, to: path, from: request, peer: peer, limit: Self.maximumResponseSize)
        } catch {
            logger.warning("token endpoint: the IdP failed", metadata: ["sg.upstream.error": "\(type(of: error))"])
            return OAuthError.response(.badGateway, "temporarily_unavailable", "the identity provider cannot be reached")
        }
        // Every success, and any other answer that carries a token, passes the second gate: a token must
        // not leave because the IdP chose an unusual status.
        // Read strictly: with `scope` twice, the gate and the client could each take a different one.
        // What a lenient parser still reads as an object is kept only to find tokens to withhold and revoke.
        let strict = StrictJSON.parse(answer.body.readableBytesView)
        let lenient = strict == nil ? (try? JSONSerialization.jsonObject(with: Data(buffer: answer.body))) as? [String: Any] : nil
        let carriesToken = Self.tokenFields.contains { strict?[$0] != nil || lenient?[$0] != nil }
        if (200..<300).contains(answer.status.code) || carriesToken {
            var requested = requested
            if requested == nil, let strict, strict["scope"] == nil, let token = strict["access_token"]?.stringValue,
                Self.accessTokenClaims(token).flatMap(Self.scopeClaim) == nil
            {
                // Nothing else says what the token carries: the IdP's own introspection does.
                requested = await introspectedScope(token, as: request, parameters: parameters, peer: peer)
            }
            if let refusal = await secondGate(strict, clientID: clientID, requested: requested, approvedOnce: approvedOnce) {
                logger.error(
                    "the IdP issued a token beyond what is approved; it was withheld",
                    metadata: ["sg.client.id": "\(clientID)", "sg.reason": "\(refusal)"])
                let tokens = Self.tokenFields.compactMap { field in
                    (strict?[field]?.stringValue ?? lenient?[field] as? String).map { (field, $0) }
                }
                await revoke(tokens, as: request, parameters: parameters, peer: peer)
                return OAuthError.response(.badRequest, "invalid_scope", refusal)
            }
        }
        return answer.response
    }

    /// The members of a token response that carry a token.
    static let tokenFields = ["access_token", "refresh_token", "id_token"]

    /// The scope the IdP's introspection endpoint (RFC 7662) reports for an active `token`, asked as the
    /// client authenticated in its token request; `nil` when there is no such endpoint, or its answer is
    /// not an active token with a readable scope.
    private func introspectedScope(
        _ token: String, as request: Request, parameters: FormParameters, peer: ForwardingHeaders.Peer
    ) async -> ScopeSet? {
        guard let introspectionPath,
            let form = try? FormParameters([("token", token), ("token_type_hint", "access_token")] + Self.credentials(parameters)),
            let answer = try? await proxy.post(form, to: introspectionPath, from: request, peer: peer, limit: 64 * 1024),
            answer.status == .ok, let object = StrictJSON.parse(answer.body.readableBytesView),
            case .bool(true)? = object["active"], let scope = object["scope"]?.stringValue
        else { return nil }
        return try? ScopeSet(parsing: scope)
    }

    /// The client credentials of a token request's form, to authenticate as that client again.
    static func credentials(_ parameters: FormParameters) -> [(name: String, value: String)] {
        ["client_id", "client_secret", "client_assertion", "client_assertion_type"].compactMap { name in
            parameters[name].map { (name, $0) }
        }
    }

    /// Revokes the tokens of a withheld response at the IdP (RFC 7009), authenticating as the client
    /// did in its token request. Best effort: the client never receives the tokens either way.
    private func revoke(
        _ tokens: [(field: String, token: String)], as request: Request, parameters: FormParameters, peer: ForwardingHeaders.Peer
    ) async {
        guard let revocationPath else { return }
        let credentials = Self.credentials(parameters)
        // The refresh token first (revoking it may revoke its access tokens too, RFC 7009 §2.1); an ID
        // token is not revocable.
        for hint in ["refresh_token", "access_token"] {
            guard let token = tokens.first(where: { $0.field == hint })?.token else { continue }
            guard let form = try? FormParameters([("token", token), ("token_type_hint", hint)] + credentials) else { continue }
            let status = try? await proxy.post(form, to: revocationPath, from: request, peer: peer, limit: 64 * 1024).status
            if status != .ok {
                logger.error("revoking a withheld token failed", metadata: ["sg.status": "\(status.map { "\($0.code)" } ?? "none")"])
            }
        }
    }

    /// Why a successful token response (`object`, `nil` when it is not strict JSON) may not leave, or
    /// `nil` when it may.
    private func secondGate(_ object: StrictJSON?, clientID: String, requested: ScopeSet?, approvedOnce: ScopeSet) async
        -> String?
    {
        guard let object, case .object = object else {
            return "the IdP's token response is not a JSON object, or names a member twice"
        }
        var issued: ScopeSet
        let claims = Self.accessTokenClaims(object["access_token"]?.stringValue)
        if let scope = object["scope"] {
            guard let text = scope.stringValue, let parsed = try? ScopeSet(parsing: text) else {
                return "the IdP's token response has an unreadable scope"
            }
            issued = parsed
        } else if let claimed = claims.flatMap(Self.scopeClaim) {
            // A JWT access token says itself what it carries.
            guard let claimed else { return "the access token's scope claim cannot be read" }
            issued = claimed
        } else if let requested {
            // RFC 6749 §5.1: an omitted scope is the one requested.
            issued = requested
        } else {
            return "the IdP's token response does not say which scopes it grants"
        }
        // What the token itself shows counts too: its own scope claim, and authorization details (RFC
        // 9396 §7) in the response or the token.
        if let claims, let claimed = Self.scopeClaim(claims) {
            guard let claimed else { return "the access token's scope claim cannot be read" }
            issued = issued.union(claimed)
        }
        for details in [object["authorization_details"], claims?["authorization_details"]].compactMap({ $0 }) {
            guard let types = try? Permissions.authorizationDetails(details) else {
                return "the IdP's authorization_details cannot be read"
            }
            issued = issued.union(ScopeSet(types))
        }
        do {
            let beyond = try await service.scopesBeyondApproval(issued, clientID: clientID, approvedOnce: approvedOnce)
            return beyond.isEmpty ? nil : "the token would carry scopes nobody approved: \(beyond.tokens.joined(separator: " "))"
        } catch {
            return "ScopeGate cannot check the token's scopes right now"
        }
    }

    /// The claims of an access token that is a JWT (RFC 9068), read strictly; `nil` for an opaque
    /// token (or one whose payload is not a strict JSON object: then it says nothing ScopeGate reads).
    static func accessTokenClaims(_ token: String?) -> StrictJSON? {
        guard let token else { return nil }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = Base64URL.decode(parts[1]), let claims = StrictJSON.parse(data), case .object = claims
        else { return nil }
        return claims
    }

    /// The scopes a JWT access token's claims name (`scope`, a space-separated string, RFC 9068 §2.2.3;
    /// or `scp`, an array, as Entra ID and Okta write it): `nil` when it names none, `.some(nil)` when it
    /// names them unreadably.
    static func scopeClaim(_ claims: StrictJSON) -> ScopeSet?? {
        var scopes = ScopeSet([String]())
        var named = false
        if let scope = claims["scope"] {
            named = true
            guard let text = scope.stringValue, let parsed = try? ScopeSet(parsing: text) else { return .some(nil) }
            scopes = scopes.union(parsed)
        }
        if let scp = claims["scp"] {
            named = true
            switch scp {
            case .string(let text):
                guard let parsed = try? ScopeSet(parsing: text) else { return .some(nil) }
                scopes = scopes.union(parsed)
            case .array(let values):
                let texts = values.compactMap(\.stringValue)
                guard texts.count == values.count, texts.allSatisfy({ (try? ScopeSet(parsing: $0))?.tokens.count == 1 }) else {
                    return .some(nil)
                }
                scopes = scopes.union(ScopeSet(texts))
            default:
                return .some(nil)
            }
        }
        return named ? .some(scopes) : nil
    }

}
