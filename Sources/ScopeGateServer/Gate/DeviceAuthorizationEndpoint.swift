import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ScopeGateCore
import Synchronization

/// The device authorization endpoint (RFC 8628), gated.
///
/// A device request whose permissions are all granted (or approved by policy) is forwarded to the IdP
/// and its answer passed on. Otherwise the IdP sees nothing: ScopeGate holds the request and answers
/// with its own `device_code` (the user code, a dot, and 128 random bits; only a digest is stored) and
/// `user_code`, whose verification page is ScopeGate's. Until approvers decide, the device's polling at the token endpoint is answered by
/// ScopeGate: `authorization_pending`, or `slow_down` when it polls faster than the interval (which then
/// grows by five seconds, §3.5); after a denial `access_denied`, after expiry `expired_token`. After an
/// approval, the next poll releases the held request to the IdP's device endpoint; the verification page
/// then shows the IdP's own user code and link, and further polls are passed to the IdP with its device
/// code in place of ScopeGate's.
struct DeviceAuthorizationEndpoint: Sendable {
    let service: GateService
    let proxy: UpstreamProxy
    /// The IdP's device authorization endpoint.
    let path: String
    let publicURL: URL
    let registry: DeviceRegistry
    /// Where malformed requests are recorded.
    let refusals: RefusalAudit
    /// Where the IdP's device codes are noted with what their requests asked for (see `IssuedCodes`).
    let codes: IssuedCodes
    let logger: Logger

    /// ScopeGate's verification page.
    static let pagePath = "/_scopegate/device"
    /// The polling interval ScopeGate asks for, in seconds (RFC 8628 §3.2 default).
    static let interval = 5
    /// How long after its decision, or after its first release, an approved device request may be
    /// released to the IdP: the same age limit as a browser's held request.
    static let releaseWindow = GateService.releaseWindow

    func respond(to request: Request, context: GateRequestContext) async -> Response {
        let (parameters, clientID): (FormParameters, String)
        switch await ClientForm.post(request, endpoint: "device authorization", refusals: refusals) {
        case .refused(let response): return response
        case .read(let form, let client): (parameters, clientID) = (form, client)
        }
        let scopes: ScopeSet
        do throws(GateError) {
            let requested = try RequestedScope(in: parameters)
            let others = ScopeSet(try Permissions.names(in: parameters))
            scopes = try requested.effective(defaults: service.policy.clients[clientID]?.defaultScopes).union(others)
        } catch {
            return OAuthError.response(.badRequest, error.code.rawValue, error.message)
        }
        // What is stored and later sent to the IdP: never the client's credentials.
        let stored = ClientForm.withoutCredentials(parameters, clientID: clientID)
        do {
            let userCode = try await unusedUserCode()
            let deviceCode = userCode + "." + RandomID.make(bytes: 16)
            switch try await service.admitDevice(
                clientID: clientID, scopes: scopes, encodedParameters: try FormParameters(stored).encoded,
                binder: Self.binder(deviceCode: deviceCode)!, source: proxy.clientAddress(request, context: context))
            {
            case .forward:
                return await forward(
                    parameters, authorization: .init(clientID: clientID, permissions: scopes), request: request, context: context)
            case .deny(let denied):
                return OAuthError.response(
                    .badRequest, "invalid_scope", "the organisation's policy does not allow: \(denied.tokens.joined(separator: " "))")
            case .held(let hold, let approval):
                _ = registry.pollTooSoon(hold.id, interval: Self.interval)  // the interval runs from now
                logger.info(
                    "device authorization request held",
                    metadata: ["sg.request.id": "\(approval.id)", "sg.client.id": "\(clientID)"])
                let page = DiscoveryRewriter.join(publicURL, Self.pagePath)
                let expiresIn = max(1, Int(approval.expiresAt.timeIntervalSince(service.now())))
                return Self.json(
                    .ok,
                    [
                        "device_code": deviceCode, "user_code": Self.display(userCode), "verification_uri": page,
                        "verification_uri_complete": page + "?user_code=" + Self.display(userCode), "expires_in": expiresIn,
                        "interval": Self.interval,
                    ])
            }
        } catch {
            return OAuthError.response(error)
        }
    }

    /// ScopeGate's verification page: `GET /_scopegate/device[?user_code=…]`.
    func page(_ request: Request, context: GateRequestContext) async -> Response {
        guard request.method == .get || request.method == .head else {
            var response = ErrorResponses.plain(.methodNotAllowed, "the verification page takes GET")
            response.headers[.allow] = "GET, HEAD"
            return response
        }
        let nonce = RandomID.make(bytes: 16)
        func render(_ content: DevicePage.Content, status: HTTPResponse.Status = .ok) -> Response {
            PageResponse.html(
                DevicePage(content: content, policy: service.policy, pagePath: Self.pagePath, nonce: nonce).render(),
                nonce: nonce, status: status)
        }
        let address = proxy.clientAddress(request, context: context)
        guard let query = try? FormParameters(parsing: Substring(request.uri.query ?? "")), let typed = query["user_code"] else {
            return render(.form(notice: nil))
        }
        if registry.lookupsBarred(for: address) {
            return render(.form(notice: "Too many codes that matched nothing; wait a minute."), status: .tooManyRequests)
        }
        var found: (Hold, ApprovalRequest)?
        if let code = Self.normalize(typed) {
            do {
                found = try await service.deviceHold(userCode: code)
            } catch {
                return PageResponse.html(
                    MessagePages.error(title: "Try again shortly", message: error.message, nonce: nonce), nonce: nonce,
                    status: .serviceUnavailable)
            }
        }
        guard let (hold, approval) = found else {
            let barred = registry.lookupFailed(from: address)
            return render(
                .form(notice: "No request waits with that code. Check the code on the device."),
                status: barred ? .tooManyRequests : .notFound)
        }
        return render(.hold(hold, approval, upstream: await registry.sharedUpstream(of: hold.id)))
    }

    /// A user code no device hold uses yet.
    private func unusedUserCode() async throws(GateError) -> String {
        for _ in 0..<8 {
            let code = Self.newUserCode()
            if try await service.deviceHold(userCode: code) == nil { return code }
        }
        throw GateError(.temporarilyUnavailable, "no free user code was found; try again")
    }

    /// Forwards a device request the gate admitted; the IdP's verification links are moved to
    /// ScopeGate's public URL when they point at the IdP it fronts.
    private func forward(
        _ parameters: FormParameters, authorization: IssuedCodes.Authorization, request: Request, context: GateRequestContext
    ) async -> Response {
        do {
            let answer = try await proxy.post(parameters, to: path, from: request, peer: proxy.peer(context), limit: 64 * 1024)
            guard answer.status == .ok, var object = (try? JSONSerialization.jsonObject(with: Data(buffer: answer.body))) as? [String: Any]
            else { return answer.response }
            if let deviceCode = object["device_code"] as? String { codes.record(Substring(deviceCode), authorization) }
            for field in ["verification_uri", "verification_uri_complete"] {
                if let text = object[field] as? String { object[field] = proxy.rewriter.rewrite(url: text) }
            }
            return Self.json(.ok, object)
        } catch {
            logger.warning("device authorization: the IdP failed", metadata: ["sg.upstream.error": "\(type(of: error))"])
            return OAuthError.response(.badGateway, "temporarily_unavailable", "the identity provider cannot be reached")
        }
    }

    // MARK: Polling at the token endpoint

    /// What the token endpoint does with a poll that carries ScopeGate's device code.
    enum PollOutcome {
        /// Answer the device with this.
        case respond(Response)
        /// Forward the token request with these parameters (the IdP's device code in place of ScopeGate's).
        case forward(FormParameters)
    }

    func poll(_ hold: Hold, _ approval: ApprovalRequest, parameters: FormParameters, clientID: String, request: Request,
        context: GateRequestContext) async -> PollOutcome
    {
        guard hold.clientID == clientID else {
            return .respond(OAuthError.response(.badRequest, "invalid_grant", "the device code was issued to another client"))
        }
        switch approval.state {
        case .pending:
            if registry.pollTooSoon(hold.id, interval: Self.interval) {
                return .respond(OAuthError.response(.badRequest, "slow_down", "polling too often; wait the interval, which grew by 5 seconds"))
            }
            return .respond(OAuthError.response(.badRequest, "authorization_pending", "waiting for the organisation's approvers"))
        case .denied:
            // Refused whether or not the refusal can be recorded: the outcome is closed either way.
            _ = try? await service.recordRejection(of: hold)
            return .respond(OAuthError.response(.badRequest, "access_denied", "the organisation's approvers denied this request"))
        case .expired:
            _ = try? await service.recordRejection(of: hold)
            return .respond(OAuthError.response(.badRequest, "expired_token", "nobody approved this request in time"))
        case .approved, .approvedOnce:
            if let upstream = await registry.sharedUpstream(of: hold.id) {
                let replaced = parameters.pairs.map { $0.name == "device_code" ? .init("device_code", upstream.deviceCode) : $0 }
                guard let form = try? FormParameters(replaced) else {
                    return .respond(OAuthError.response(.badRequest, "invalid_request", "the request cannot be read"))
                }
                return .forward(form)
            }
            // An approval is used within the release window, as a browser's is; released before, and the
            // IdP's device flow has run out (or was forgotten in a restart): released again only within
            // the window of that release, so that a device cannot renew it forever.
            let since = hold.consumedAt ?? approval.decision?.at ?? approval.createdAt
            if service.now().timeIntervalSince(since) > Self.releaseWindow.seconds {
                return .respond(OAuthError.response(.badRequest, "expired_token", "the approved request was not completed in time; start again"))
            }
            return .respond(await release(hold, approval, parameters: parameters, request: request, context: context))
        }
    }

    /// Sends the approved, held device request to the IdP, authenticated as the polling client is.
    private func release(
        _ hold: Hold, _ approval: ApprovalRequest, parameters: FormParameters, request: Request, context: GateRequestContext
    ) async -> Response {
        guard let held = try? FormParameters(parsing: Substring(hold.encodedParameters)) else {
            return OAuthError.response(.internalServerError, "server_error", "the held request cannot be read")
        }
        // A partial approval releases the request without the scopes it left out.
        var form: FormParameters
        do {
            form = try held.withholding(approval.withheldScopes, requested: hold.requestedScopes)
        } catch {
            _ = try? await service.recordRejection(of: hold)
            return OAuthError.response(.badRequest, "access_denied", error.message)
        }
        for name in ClientForm.clientAuthentication.sorted() {
            if let value = parameters[name] { try? form.append(name, value) }
        }
        // The release is recorded before the request goes to the IdP; if it cannot be, it does not go.
        do {
            try await service.recordContinuation(of: hold)
        } catch {
            return OAuthError.response(.serviceUnavailable, "temporarily_unavailable", error.message)
        }
        let answer: UpstreamProxy.Answer
        do {
            answer = try await proxy.post(form, to: path, from: request, peer: proxy.peer(context), limit: 64 * 1024)
        } catch {
            return OAuthError.response(.badGateway, "temporarily_unavailable", "the identity provider cannot be reached")
        }
        guard answer.status == .ok, let object = (try? JSONSerialization.jsonObject(with: Data(buffer: answer.body))) as? [String: Any],
            let deviceCode = object["device_code"] as? String, let userCode = object["user_code"] as? String,
            let uri = (object["verification_uri"] ?? object["verification_url"]) as? String
        else {
            logger.warning("device authorization: the IdP refused the released request", metadata: ["sg.status": "\(answer.status.code)"])
            return answer.response
        }
        let lifetime = (object["expires_in"] as? Int) ?? 600
        codes.record(
            Substring(deviceCode),
            .init(
                clientID: hold.clientID, permissions: hold.requestedScopes.subtracting(approval.withheldScopes),
                approvedOnce: approval.state == .approvedOnce ? approval.approvedScopes : ScopeSet([String]())))
        await registry.setUpstream(
            .init(
                deviceCode: deviceCode, userCode: userCode, verificationURI: proxy.rewriter.rewrite(url: uri),
                verificationURIComplete: (object["verification_uri_complete"] as? String).map(proxy.rewriter.rewrite(url:)),
                expires: .now + .seconds(lifetime)),
            for: hold.id)
        logger.info("device authorization request released to the IdP", metadata: ["sg.request.id": "\(hold.approvalRequestID)"])
        return OAuthError.response(
            .badRequest, "authorization_pending", "approved; the user now confirms at the identity provider (see the verification page)")
    }

    // MARK: User codes

    /// The hold binding of one of ScopeGate's device codes (`USERCODE.` and 32 hex digits), or `nil` when
    /// `deviceCode` is not shaped like one.
    static func binder(deviceCode: String) -> String? {
        let parts = deviceCode.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let userCode = normalize(String(parts[0])), userCode == parts[0], parts[1].utf8.count == 32,
            parts[1].utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else { return nil }
        return GateService.deviceBinder(userCode: userCode, digest: BrowserBinding.hash(deviceCode))
    }

    /// RFC 8628 §6.1: 20 consonants, no vowels (no words), eight characters: about 34.5 bits.
    static let userCodeAlphabet = Array("BCDFGHJKLMNPQRSTVWXZ")

    static func newUserCode() -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<8).map { _ in userCodeAlphabet[Int(generator.next(upperBound: UInt32(userCodeAlphabet.count)))] })
    }

    /// The user code as shown: `BCDF-GHJK`.
    static func display(_ code: String) -> String { String(code.prefix(4)) + "-" + String(code.dropFirst(4)) }

    /// A user code as typed: case, dashes and spaces do not matter; `nil` when it cannot be one.
    static func normalize(_ typed: String) -> String? {
        let letters = typed.uppercased().filter { $0 != "-" && $0 != " " }
        guard letters.count == 8, letters.allSatisfy(userCodeAlphabet.contains) else { return nil }
        return letters
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
