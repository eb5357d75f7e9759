import AsyncHTTPClient
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ScopeGateCore

/// Someone who signed in at the upstream IdP through ScopeGate, as the ID token names them.
struct Approver: Sendable, Equatable {
    /// The IdP's subject (`sub`).
    var subject: String
    /// The email address, when the IdP gave one.
    var email: String?
    /// Whether the IdP says the email address is verified (`email_verified`).
    var emailVerified: Bool
    /// A display name (`name`, else `preferred_username`).
    var name: String?
    /// When the sign-in happened.
    var signedInAt: Date
    /// When the IdP last authenticated this person (`auth_time`), when its ID token says.
    var authTime: Date? = nil
    /// The authentication context class the IdP reports (`acr`).
    var acr: String? = nil
    /// The groups the IdP lists (`sign_in.groups_claim`).
    var groups: [String] = []

    /// Who this is for separation of duties: the verified email address and the IdP's subject.
    var identity: ApproverIdentity { .person(verifiedEmail: emailVerified ? email : nil, idpSubject: subject) }

    /// This person as the requester of a held request.
    var requester: Requester {
        Requester(subject: subject, email: email, emailVerified: emailVerified, name: name, groups: groups)
    }

    /// Whether an approvers list entry names this person: an entry with `@` is a verified email
    /// address (compared without case), any other entry a subject (compared exactly).
    func isNamed(by entry: String) -> Bool {
        if entry.contains("@") { return emailVerified && email?.lowercased() == entry.lowercased() }
        return subject == entry
    }

    /// How the audit log and the messages name this person's decisions.
    var actor: String { "page:" + (emailVerified ? (email ?? subject) : subject) }

    /// How pages show this person.
    var label: String { requester.label }
}

/// Sign-ins in progress and the sessions they opened, in this process's memory: a restart asks
/// approvers to sign in again, nothing more.
actor ApproverSessions {
    struct Pending {
        var nonce: String
        var verifier: String
        var returnTo: String
        var binderHash: String
        var created: Date
    }

    private var pending: [String: Pending] = [:]
    private var sessions: [String: (approver: Approver, expires: Date)] = [:]
    let sessionLifetime: TimeInterval = 8 * 3600
    let pendingLifetime: TimeInterval = 600

    func begin(state: String, _ value: Pending) {
        let now = Date()
        if pending.count > 10_000 { pending = pending.filter { now.timeIntervalSince($0.value.created) < pendingLifetime } }
        pending[state] = value
    }

    /// The sign-in a callback's `state` belongs to, once: a state is never accepted twice.
    func finish(state: String) -> Pending? {
        guard let value = pending.removeValue(forKey: state), Date().timeIntervalSince(value.created) < pendingLifetime else {
            return nil
        }
        return value
    }

    func open(_ approver: Approver) -> String {
        let now = Date()
        if sessions.count > 10_000 { sessions = sessions.filter { $0.value.expires > now } }
        let id = RandomID.make(bytes: 32)
        sessions[id] = (approver, now.addingTimeInterval(sessionLifetime))
        return id
    }

    func approver(session id: String) -> Approver? {
        guard let session = sessions[id] else { return nil }
        guard session.expires > Date() else {
            sessions[id] = nil
            return nil
        }
        return session.approver
    }
}

/// ScopeGate as an OpenID Connect client of the upstream IdP (authorization code with PKCE, a
/// confidential client), so that people can decide on ScopeGate's approval page as who the IdP says
/// they are. The browser goes to the IdP through ScopeGate's public URL like any other client's
/// (ScopeGate's own scopes must be approved by policy); the code is exchanged on the back channel. The
/// ID token comes straight from the IdP's token endpoint over that channel, so its claims are checked
/// (issuer, audience, nonce, expiry) without its signature, as OpenID Connect Core §3.1.3.7 allows.
struct ApproverSignIn: Sendable {
    static let startPath = "/_scopegate/sign-in"
    static let callbackPath = "/_scopegate/sign-in/callback"

    let settings: ScopeGateConfiguration.SignInSettings
    let publicURL: URL
    let authorizationPath: String
    let tokenPath: String
    let issuer: String?
    let proxy: UpstreamProxy
    let sessions: ApproverSessions
    let logger: Logger
    /// The waiting pages' browser binding, and the gate: a sign-in that returns to a waiting page names
    /// the requester of its hold.
    var binding: BrowserBinding? = nil
    var service: GateService? = nil

    var secure: Bool { BrowserBinding.isSecure(publicURL) }
    var sessionCookie: String { BrowserBinding.cookieName("sg_approver", secure: secure) }
    var bindingCookie: String { BrowserBinding.cookieName("sg_signin", secure: secure) }

    var base: String {
        var base = publicURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        return base
    }

    /// The approver the request's session cookie names, if any.
    func approver(in request: Request) async -> (id: String, approver: Approver)? {
        guard let id = request.cookies[sessionCookie]?.value, id.utf8.count == 64 else { return nil }
        return await sessions.approver(session: id).map { (id, $0) }
    }

    func cookie(_ name: String, _ value: String, maxAge: Int) -> String {
        BrowserBinding.setCookie(name, value, maxAge: maxAge, secure: secure)
    }

    /// `GET /_scopegate/sign-in?return=…`: off to the IdP. Only ScopeGate's own pages are returned to.
    func start(_ request: Request) async -> Response {
        guard request.method == .get else { return ErrorResponses.plain(.methodNotAllowed, "sign-in starts with GET") }
        let returnTo = request.uri.queryParameters.get("return") ?? "/"
        // A step-up asks the IdP to authenticate again (`prompt=login`, and `max_age` for IdPs that read
        // it) and, where the tier names classes, for one of them; the page checks the ID token's
        // `auth_time` and `acr` whatever the IdP did with the request.
        let maxAge = request.uri.queryParameters.get("max_age").flatMap { Int($0) }.flatMap { (0...86400).contains($0) ? $0 : nil }
        let acr = request.uri.queryParameters.get("acr_values").flatMap { value in
            value.split(separator: " ").allSatisfy({ $0.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f } })
                && value.utf8.count <= 512 ? value : nil
        }
        guard returnTo.hasPrefix(ApprovalPage.prefix) || (service?.policy.identifyRequesters == true && returnTo.hasPrefix(HoldEndpoints.prefix)),
            !returnTo.contains("//"), !returnTo.contains("\\"),
            returnTo.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f })
        else {
            return ErrorResponses.page(GateError(.invalidRequest, "Sign-in returns only to ScopeGate's approval pages."))
        }
        let state = RandomID.make(bytes: 24)
        let nonce = RandomID.make(bytes: 24)
        let verifier = RandomID.make(bytes: 32)
        let binder = RandomID.make(bytes: 32)
        await sessions.begin(
            state: state,
            .init(nonce: nonce, verifier: verifier, returnTo: returnTo, binderHash: BrowserBinding.hash(binder), created: Date()))
        let challenge = Base64URL.encode(SHA256.hash(data: Data(verifier.utf8)))
        let query: [(String, String)] = [
            ("response_type", "code"), ("client_id", settings.clientID), ("redirect_uri", base + Self.callbackPath),
            ("scope", settings.scopes.tokens.joined(separator: " ")), ("state", state), ("nonce", nonce),
            ("code_challenge", challenge), ("code_challenge_method", "S256"),
        ] + (maxAge.map { [("max_age", String($0)), ("prompt", "login")] } ?? []) + (acr.map { [("acr_values", $0)] } ?? [])
        let location = base + authorizationPath + "?" + FormParameters.encode(pairs: query)
        return PageResponse.redirect(location, headers: [.setCookie: cookie(bindingCookie, binder, maxAge: 600)])
    }

    /// `GET /_scopegate/sign-in/callback?code=…&state=…`: the code exchanged, the session opened.
    func callback(_ request: Request) async -> Response {
        let query = request.uri.queryParameters
        guard let state = query.get("state"), let binder = request.cookies[bindingCookie]?.value,
            let pending = await sessions.finish(state: state), pending.binderHash == BrowserBinding.hash(binder)
        else {
            return ErrorResponses.page(GateError(.invalidRequest, "This sign-in was not started in this browser, or it expired. Start again from the approval page."))
        }
        if let error = query.get("error") {
            logger.info("approver sign-in refused by the IdP", metadata: ["sg.error": "\(error.prefix(64))"])
            return ErrorResponses.page(GateError(.accessDenied, "The identity provider did not sign you in (\(error.prefix(64)))."))
        }
        guard let code = query.get("code") else {
            return ErrorResponses.page(GateError(.invalidRequest, "The identity provider sent no code."))
        }
        let approver: Approver
        do {
            approver = try await exchange(code: code, verifier: pending.verifier, nonce: pending.nonce)
        } catch {
            logger.warning("approver sign-in failed", metadata: ["sg.reason": "\(error.message)"])
            return ErrorResponses.page(GateError(.accessDenied, "ScopeGate could not complete your sign-in: \(error.message)"))
        }
        if pending.returnTo.hasPrefix(HoldEndpoints.prefix) {
            return await identify(approver.requester, holdPage: pending.returnTo, request: request)
        }
        let session = await sessions.open(approver)
        logger.info("approver signed in", metadata: ["sg.approver": "\(approver.actor)"])
        var headers = HTTPFields()
        headers.append(.init(name: .setCookie, value: cookie(sessionCookie, session, maxAge: 8 * 3600)))
        headers.append(.init(name: .setCookie, value: cookie(bindingCookie, "", maxAge: 0)))
        return PageResponse.redirect(pending.returnTo, headers: headers)
    }

    /// A requester signed in from their waiting page: recorded on the hold this browser owns, and back
    /// to the page. Nobody gets an approver's session from it.
    private func identify(_ requester: Requester, holdPage: String, request: Request) async -> Response {
        let holdID = String(holdPage.dropFirst(HoldEndpoints.prefix.count))
        guard let service, let binder = binding?.value(in: request) else {
            return ErrorResponses.page(HoldEndpoints.notThisBrowser)
        }
        do {
            try await service.identify(holdID: holdID, binderHash: BrowserBinding.hash(binder), as: requester)
        } catch where error.code == .alreadyDecided {
            // Decided meanwhile: the page moves on.
        } catch {
            return ErrorResponses.page(error)
        }
        return PageResponse.redirect(holdPage, headers: [.setCookie: cookie(bindingCookie, "", maxAge: 0)])
    }

    private struct TokenAnswer: Decodable {
        var id_token: String?
        var error: String?
    }

    private struct IDToken: Decodable {
        var iss: String?
        var aud: JWTAudience?
        var exp: Double?
        var nonce: String?
        var sub: String?
        var email: String?
        var email_verified: Bool?
        var name: String?
        var preferred_username: String?
        var auth_time: Double?
        var acr: String?
    }

    private func exchange(code: String, verifier: String, nonce: String) async throws(GateError) -> Approver {
        let form: [(String, String)] = [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", base + Self.callbackPath),
            ("code_verifier", verifier),
        ]
        let credentials = Data("\(FormParameters.encode(settings.clientID)):\(FormParameters.encode(settings.clientSecret))".utf8).base64EncodedString()
        let answer: (status: UInt, body: ByteBuffer)
        do {
            answer = try await proxy.postOwn(
                FormParameters.encode(pairs: form), to: tokenPath,
                authorization: "Basic " + credentials)
        } catch {
            throw GateError(.temporarilyUnavailable, "the identity provider could not be reached")
        }
        guard let token = try? JSONDecoder().decode(TokenAnswer.self, from: Data(buffer: answer.body)) else {
            throw GateError(.accessDenied, "the identity provider's answer cannot be read")
        }
        guard answer.status == 200, let idToken = token.id_token else {
            throw GateError(.accessDenied, "the identity provider refused the code (\(token.error ?? "HTTP \(answer.status)"))")
        }
        guard let parts = JWTParts(Substring(idToken)), let claims = try? JSONDecoder().decode(IDToken.self, from: parts.claims)
        else { throw GateError(.accessDenied, "the ID token cannot be read") }
        // Groups, under whatever claim the IdP uses: a list of strings, anything else is none.
        let object = (try? JSONSerialization.jsonObject(with: parts.claims)) as? [String: Any]
        let groups = (object?[settings.groupsClaim] as? [Any])?.compactMap { $0 as? String }.prefix(50).map { String($0.prefix(200)) } ?? []
        // The IdP names itself by the host it is asked as: its own (as ScopeGate read its discovery
        // document) or ScopeGate's public one (as it answered this exchange).
        if let issuer {
            guard let claimed = claims.iss, claimed == issuer || claimed == proxy.rewriter.rewrite(url: issuer) else {
                throw GateError(.accessDenied, "the ID token has another issuer")
            }
        }
        guard let audience = claims.aud?.values, audience.contains(settings.clientID) else {
            throw GateError(.accessDenied, "the ID token is for another client")
        }
        guard claims.nonce == nonce else { throw GateError(.accessDenied, "the ID token's nonce does not match") }
        guard let exp = claims.exp, exp + 60 > Date().timeIntervalSince1970 else { throw GateError(.accessDenied, "the ID token expired") }
        guard let subject = claims.sub, !subject.isEmpty else { throw GateError(.accessDenied, "the ID token names nobody") }
        return Approver(
            subject: subject, email: claims.email, emailVerified: claims.email_verified == true,
            name: claims.name ?? claims.preferred_username, signedInAt: Date(),
            authTime: claims.auth_time.map(Date.init(timeIntervalSince1970:)), acr: claims.acr, groups: groups)
    }
}
