import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ScopeGateCore

/// ScopeGate's approval page (`/_scopegate/approvals/{id}`): one approval request, for people who
/// decide outside chat (the link on a Teams Workflows card). `GET` changes nothing: without a session
/// it offers sign-in at the IdP; with one it shows the request and, to an approver of its route's
/// approval page, the decisions. A decision is a `POST` from this page: same origin, the session's
/// CSRF token for this request, and the signed-in person named among the route's page approvers.
struct ApprovalPage: Sendable {
    static let prefix = "/_scopegate/approvals/"
    static func path(_ requestID: String) -> String { prefix + requestID }

    /// The page's address for people: `publicURL` (without a trailing slash) and the path.
    static func url(_ requestID: String, publicURL: URL) -> String {
        var base = publicURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        return base + path(requestID)
    }

    let service: GateService
    let signIn: ApproverSignIn
    var routing: Routing { service.live.requiredRouting }
    let publicOrigin: String
    /// Keys the CSRF tokens of this process's sessions.
    let csrfKey: SymmetricKey
    let logger: Logger

    init(service: GateService, signIn: ApproverSignIn, publicOrigin: String, logger: Logger) {
        self.service = service
        self.signIn = signIn
        self.publicOrigin = publicOrigin
        self.csrfKey = SymmetricKey(size: .bits256)
        self.logger = logger
    }

    func respond(to request: Request, path: Substring) async -> Response {
        let id = String(path.dropFirst(Self.prefix.count))
        guard id.hasPrefix("ar_"), id.utf8.count <= 64, id.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || isAlphanumeric($0) }) else {
            return ErrorResponses.page(GateError(.notFound, "There is no such approval request."))
        }
        switch request.method {
        case .get, .head: return await page(id, request: request, notice: nil)
        case .post: return await decide(id, request: request)
        default:
            var response = ErrorResponses.plain(.methodNotAllowed, "the approval page takes GET and POST")
            response.headers[.allow] = "GET, HEAD, POST"
            return response
        }
    }

    private func isAlphanumeric(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
    }

    /// The CSRF token of a session for one request.
    func csrfToken(session: String, request id: String) -> String {
        Data(HMAC<SHA256>.authenticationCode(for: Data("\(session)\n\(id)".utf8), using: csrfKey)).map { String(format: "%02x", $0) }.joined()
    }

    private func isApprover(_ approver: Approver, of request: ApprovalRequest) -> Bool {
        routing.routes(for: request, policy: service.policy).contains { route in
            route.reach(on: ChatReach.approvalPage)?.approverUsers.contains { approver.isNamed(by: $0) } == true
        }
    }

    private func page(_ id: String, request: Request, notice: String?, status: HTTPResponse.Status = .ok) async -> Response {
        let approval: ApprovalRequest?
        do {
            approval = try await service.store.approvalRequest(id: id)
        } catch {
            return ErrorResponses.page(GateError(.temporarilyUnavailable, "ScopeGate cannot read its store right now."))
        }
        guard let approval else { return ErrorResponses.page(GateError(.notFound, "There is no such approval request.")) }
        let nonce = RandomID.make(bytes: 16)
        let signedIn = await signIn.approver(in: request)
        let name = service.policy.displayName(of: approval.clientID)
        var body = "<h1>\(HTML.escape(approval.headline))</h1>"
        body += "<p><strong>\(HTML.escape(name))</strong> <span class=\"muted\">(client <code>\(HTML.escape(approval.clientID))</code>"
        if let owner = service.policy.clients[approval.clientID]?.owner { body += ", owned by \(HTML.escape(owner))" }
        body += ")</span> asks for:</p><ul class=\"scopes\" aria-label=\"Requested permissions\">"
        for scope in approval.scopes.tokens { body += item(scope, approval, granted: false) }
        for scope in approval.alreadyGranted.tokens { body += item(scope, approval, granted: true) }
        body += "</ul>"
        let holds = (try? await service.store.holds(approvalRequestID: id)) ?? []
        if let reason = holds.sorted(by: { $0.createdAt > $1.createdAt }).compactMap({ $0.justification }).first(where: { !$0.isEmpty }) {
            body += "<p><strong>Why, in the requester's words:</strong></p><p class=\"status\">\(HTML.escape(reason))</p>"
        }
        let content = ApprovalMessageContent(
            request: approval, policy: service.policy, justifications: [], routeName: "", confirmTiers: [], waiting: 0,
            votes: (try? await service.votes(on: id)) ?? [], quorum: service.policy.quorum(of: approval),
            requesters: holds.compactMap(\.requester), clientStanding: await service.clientStanding(of: approval.clientID))
        if let standing = content.standingText { body += "<p class=\"muted\">App: \(HTML.escape(standing))</p>" }
        if let requester = content.requesterText { body += "<p>Requester: <strong>\(HTML.escape(requester))</strong></p>" }
        if let tally = content.tally(naming: ChatText.actor) { body += "<p class=\"status\">Votes: \(HTML.escape(tally))</p>" }
        body += "<p class=\"muted\">Request <code>\(HTML.escape(id))</code>, route \(HTML.escape(routing.route(for: approval, policy: service.policy).name)).</p>"
        if let notice { body += "<p role=\"alert\" class=\"status\">\(HTML.escape(notice))</p>" }
        if approval.state != .pending {
            body += "<p class=\"status\" role=\"status\">\(HTML.escape(outcome(approval)))</p>"
        } else if let (session, approver) = signedIn {
            if isApprover(approver, of: approval), let stepUp = service.policy.stepUp(of: approval),
                !stepUp.admits(authTime: approver.authTime, acr: approver.acr, at: service.now())
            {
                body += """
                    <p>Signed in as <strong>\(HTML.escape(approver.label))</strong>.</p>
                    <p class="status">\(HTML.escape(Self.stepUpNotice(stepUp, tier: service.policy.tier(of: approval))))</p>
                    <p><a class="button" href="\(HTML.escape(Self.stepUpStart(id, stepUp)))">Sign in again</a></p>
                    """
            } else if isApprover(approver, of: approval) {
                let token = csrfToken(session: session, request: id)
                let allowed = service.policy.allowedApprovals(of: approval)
                body += """
                    <p>Signed in as <strong>\(HTML.escape(approver.label))</strong>.</p>
                    <form method="post" action="\(HTML.escape(Self.path(id)))">
                    <input type="hidden" name="csrf" value="\(token)">
                    \(scopeChoices(approval))
                    \(durationMenu(approval))
                    \(allowed.standing ? "<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>" : "")
                    \(allowed.once ? "<button type=\"submit\" name=\"decision\" value=\"approve_once\">Approve once</button>" : "")
                    <button type="submit" name="decision" value="deny">Deny</button>
                    </form>
                    """
            } else {
                body += "<p class=\"status\">Signed in as <strong>\(HTML.escape(approver.label))</strong>, who is not an approver for this request.</p>"
            }
        } else {
            // For a step-up tier the first sign-in is already the fresh one it needs.
            let start = service.policy.stepUp(of: approval).map { Self.stepUpStart(id, $0) }
                ?? ApproverSignIn.startPath + "?return=" + FormParameters.encode(Self.path(id))
            body += "<p>Sign in to decide.</p><p><a class=\"button\" href=\"\(HTML.escape(start))\">Sign in</a></p>"
        }
        return PageResponse.html(HTML.page(title: "\(approval.headline) — \(name)", nonce: nonce, body: body), nonce: nonce, status: status)
    }

    /// What a step-up tier asks of an approver whose sign-in is too old (or not at the class it names).
    static func stepUpNotice(_ stepUp: StepUp, tier: String) -> String {
        "Requests of tier \(tier) are decided only after a recent sign-in at the identity provider (at most \(ScopeGateConfiguration.text(stepUp.maxAge)) old"
            + (stepUp.acr.isEmpty ? "" : ", at " + stepUp.acr.joined(separator: " or ")) + "). Sign in again to decide."
    }

    /// The sign-in that satisfies a step-up: the IdP is asked to authenticate again, within `max_age`.
    static func stepUpStart(_ id: String, _ stepUp: StepUp) -> String {
        var query: [(String, String)] = [("return", path(id)), ("max_age", String(stepUp.maxAge.components.seconds))]
        if !stepUp.acr.isEmpty { query.append(("acr_values", stepUp.acr.joined(separator: " "))) }
        return ApproverSignIn.startPath + "?" + FormParameters.encode(pairs: query)
    }

    /// A checkbox per scope, all ticked, where the request can be approved in part: an approval grants
    /// only the ticked ones. (Each is its own field, `scope_N`, as a form may not repeat a name.)
    private func scopeChoices(_ approval: ApprovalRequest) -> String {
        guard approval.isNarrowable else { return "" }
        var html = "<fieldset><legend>Scopes to approve</legend><input type=\"hidden\" name=\"partial\" value=\"1\">"
        for (index, scope) in approval.scopes.tokens.enumerated() {
            html += "<label><input type=\"checkbox\" name=\"scope_\(index)\" value=\"\(HTML.escape(scope))\" checked> <code>\(HTML.escape(scope))</code></label><br>"
        }
        return html + "</fieldset>"
    }

    /// The scopes ticked in a posted form: `nil` where it offered no choice; refused when none is.
    static func ticked(_ form: FormParameters) throws(GateError) -> ScopeSet? {
        guard form["partial"] == "1" else { return nil }
        let values = form.pairs.filter { $0.name.hasPrefix("scope_") }.map(\.value)
        guard !values.isEmpty else {
            throw GateError(.invalidRequest, "no scope is ticked; tick the scopes to approve, or deny the request")
        }
        return ScopeSet(values)
    }

    /// The durations the tier offers for a standing grant, the shortest chosen.
    private func durationMenu(_ approval: ApprovalRequest) -> String {
        let durations = service.policy.grantDurations(of: approval)
        guard !durations.isEmpty, service.policy.allowedApprovals(of: approval).standing else { return "" }
        let options = durations.map { "<option value=\"\(ScopeGateConfiguration.text($0))\">\(ScopeGateConfiguration.text($0))</option>" }
        return "<label for=\"duration\">Approve grants for</label><select id=\"duration\" name=\"duration\">\(options.joined())</select>"
    }

    private func item(_ scope: String, _ approval: ApprovalRequest, granted: Bool) -> String {
        let rule = service.policy.rule(for: scope, clientID: approval.clientID)
        return """
            <li><span class="tier tier-\(HTML.escape(rule.tier))">\(HTML.escape(rule.tier))</span><code>\(HTML.escape(scope))</code> \
            <span class="muted">(\(granted ? "already granted" : "new"))</span>\(rule.description.map { "<br>\(HTML.escape($0))" } ?? "")</li>
            """
    }


    private func outcome(_ approval: ApprovalRequest) -> String {
        guard let decision = approval.decision else { return approval.headline }
        let when = ChatText.date(decision.at)
        switch decision.outcome {
        case .expired: return "Expired unanswered at \(when)."
        default:
            let part = decision.scopes.map { " Approved only \($0); left out: \(approval.withheldScopes)." } ?? ""
            return "\(approval.headline) by \(ChatText.actor(decision.actor)) at \(when).\(part)"
        }
    }

    private func decide(_ id: String, request: Request) async -> Response {
        // A form posted from another site carries another Origin (or, from old browsers, none with a
        // foreign Referer); either way, nothing is decided.
        if let origin = request.headers[.origin], origin != publicOrigin {
            return ErrorResponses.page(GateError(.accessDenied, "This form was not sent from ScopeGate's approval page."))
        }
        guard let (session, approver) = await signIn.approver(in: request) else {
            return await page(id, request: request, notice: "Your sign-in has ended; sign in again to decide.", status: .unauthorized)
        }
        var copy = request
        guard let buffer = try? await copy.collectBody(upTo: 4096),
            let form = try? FormParameters(parsing: Substring(String(buffer: buffer)))
        else { return ErrorResponses.page(GateError(.invalidRequest, "The form cannot be read.")) }
        // Compared as SHA-256 digests, which compare in constant time.
        guard let token = form["csrf"],
            SHA256.hash(data: Data(token.utf8)) == SHA256.hash(data: Data(csrfToken(session: session, request: id).utf8))
        else {
            return ErrorResponses.page(GateError(.accessDenied, "This form does not belong to your sign-in; reload the page and decide again."))
        }
        guard let approval = try? await service.store.approvalRequest(id: id) else {
            return ErrorResponses.page(GateError(.notFound, "There is no such approval request."))
        }
        guard isApprover(approver, of: approval) else {
            logger.warning("a signed-in person who is not an approver tried to decide", metadata: ["sg.request": "\(id)", "sg.approver": "\(approver.actor)"])
            return await page(id, request: request, notice: "You are not an approver for this request, so nothing changed.", status: .forbidden)
        }
        if let stepUp = service.policy.stepUp(of: approval), !stepUp.admits(authTime: approver.authTime, acr: approver.acr, at: service.now()) {
            logger.info("a decision waits for a fresh sign-in", metadata: ["sg.request": "\(id)", "sg.approver": "\(approver.actor)"])
            return await page(id, request: request, notice: "Nothing changed. " + Self.stepUpNotice(stepUp, tier: service.policy.tier(of: approval)), status: .forbidden)
        }
        // A step-up decision says, in the audit log, when the approver last authenticated.
        let reason = service.policy.stepUp(of: approval) == nil ? nil : approver.authTime.map {
            "after a sign-in at the identity provider at \(ChatText.date($0))" + (approver.acr.map { " (acr \($0))" } ?? "")
        }
        do {
            switch form["decision"] {
            case "approve":
                _ = try await service.approve(
                    id, actor: approver.actor, once: false, reason: reason,
                    duration: form["duration"].flatMap(ScopeGateConfiguration.duration), scopes: try Self.ticked(form),
                    identity: approver.identity)
            case "approve_once":
                _ = try await service.approve(
                    id, actor: approver.actor, once: true, reason: reason, scopes: try Self.ticked(form), identity: approver.identity)
            case "deny": _ = try await service.deny(id, actor: approver.actor, identity: approver.identity)
            default: return ErrorResponses.page(GateError(.invalidRequest, "Choose Approve, Approve once or Deny."))
            }
        } catch where error.code == .forbidden || error.code == .invalidRequest {
            return await page(id, request: request, notice: "Nothing changed: \(error.message).", status: .forbidden)
        } catch where error.code == .alreadyVoted {
            return await page(id, request: request, notice: "You already voted on this request; it waits for another approver.", status: .conflict)
        } catch where error.code == .alreadyDecided {
            return await page(id, request: request, notice: "This request was already decided; the first decision stands.")
        } catch {
            return await page(id, request: request, notice: "ScopeGate could not record your decision, so nothing changed. Please try again.", status: .serviceUnavailable)
        }
        return PageResponse.redirect(Self.path(id))
    }
}
