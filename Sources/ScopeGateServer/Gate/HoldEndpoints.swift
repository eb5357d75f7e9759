import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ScopeGateCore

/// The waiting page and its helpers under `/_scopegate/holds/<id>`: the page itself, the live status
/// (long-poll), and the justification form. Each answers only the browser the hold is bound to.
struct HoldEndpoints: Sendable {
    let service: GateService
    let hub: DecisionHub
    let binding: BrowserBinding
    let redirect: ClientRedirect
    let authorizationPath: String
    let publicOrigin: String
    /// Where approval requests go, to tell the requester who was asked; `nil` without chat routes.
    var routing: Routing? { service.live.routing }
    /// How long one status request waits for a decision before answering "pending".
    var longPollTimeout: Duration = .seconds(25)

    static let prefix = "/_scopegate/holds/"

    static func pagePath(_ holdID: String) -> String { prefix + holdID }

    func respond(to request: Request, path: Substring, context: GateRequestContext) async -> Response {
        let parts = path.dropFirst(Self.prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        guard let holdID = parts.first, holdID.utf8.count == 32, holdID.utf8.allSatisfy({ isHex($0) }), parts.count <= 2
        else {
            return ErrorResponses.page(GateError(.notFound, "There is no such waiting page."))
        }
        guard let binder = binding.value(in: request) else {
            return ErrorResponses.page(Self.notThisBrowser)
        }
        let hash = BrowserBinding.hash(binder)
        switch (request.method, parts.count == 2 ? parts[1] : nil) {
        case (.get, nil), (.head, nil):
            return await page(String(holdID), binderHash: hash, notice: nil)
        case (.get, "status"):
            return await status(String(holdID), binderHash: hash)
        case (.post, "justification"):
            return await justify(request, holdID: String(holdID), binderHash: hash)
        case (_, nil), (_, "status"), (_, "justification"):
            var response = ErrorResponses.plain(.methodNotAllowed, "method not allowed")
            response.headers[.allow] = parts.count == 2 && parts[1] == "justification" ? "POST" : "GET, HEAD"
            return response
        default:
            return ErrorResponses.page(GateError(.notFound, "There is no such waiting page."))
        }
    }

    static let notThisBrowser = GateError(
        .notFound, "This waiting page belongs to another browser, or it has ended. Start the sign-in again from the app.")

    private func page(_ holdID: String, binderHash: String, notice: String?) async -> Response {
        let hold: Hold
        let approval: ApprovalRequest
        do {
            (hold, approval) = try await service.status(ofHold: holdID, binderHash: binderHash)
        } catch {
            return ErrorResponses.page(error.code == .notFound ? Self.notThisBrowser : error)
        }
        let parsed: AuthorizationRequest
        do {
            parsed = try hold.request()
        } catch {
            return ErrorResponses.page(error)
        }
        switch approval.state {
        case .pending:
            // Requesters are identified first: off to sign in at the IdP, back here afterwards.
            if service.policy.identifyRequesters, hold.requester == nil {
                return PageResponse.redirect(ApproverSignIn.startPath + "?return=" + FormParameters.encode(Self.pagePath(holdID)))
            }
            let nonce = RandomID.make(bytes: 16)
            let votes = (try? await service.votes(on: approval.id)) ?? []
            let html = WaitingPage(
                hold: hold, request: approval, policy: service.policy, pageURL: Self.pagePath(holdID),
                statusURL: Self.pagePath(holdID) + "/status", justificationURL: Self.pagePath(holdID) + "/justification",
                nonce: nonce, notice: notice, asked: WaitingPage.asked(approval, policy: service.policy, routing: routing, votes: votes)
            ).render()
            return PageResponse.html(html, nonce: nonce)
        case .approved, .approvedOnce:
            let decidedAt = approval.decision?.at ?? approval.createdAt
            if service.now().timeIntervalSince(decidedAt) > GateService.releaseWindow.seconds {
                return ErrorResponses.page(
                    GateError(.alreadyDecided, "This request was approved a while ago and can no longer continue. Start the sign-in again from the app."),
                    title: "Approval no longer usable")
            }
            // A partial approval releases the request without the scopes it left out; one that cannot
            // be narrowed so goes back to the app refused rather than asking again.
            let released: FormParameters
            do {
                released = try parsed.parameters.withholding(approval.withheldScopes, requested: hold.requestedScopes)
            } catch {
                guard await recordRejection(hold) else { return ErrorResponses.page(Self.cannotRecord) }
                return redirect.error(.accessDenied, description: error.message, for: parsed)
            }
            // The release is recorded (once) before the browser is sent on; if it cannot be, it is not sent.
            do {
                try await service.recordContinuation(of: hold)
            } catch {
                return ErrorResponses.page(Self.cannotRecord)
            }
            return proceed(parsed, with: released)
        case .denied:
            guard await recordRejection(hold) else { return ErrorResponses.page(Self.cannotRecord) }
            let reason = approval.decision?.reason.map { ": \($0)" } ?? ""
            return redirect.error(.accessDenied, description: "An approver denied this request\(reason)", for: parsed)
        case .expired:
            guard await recordRejection(hold) else { return ErrorResponses.page(Self.cannotRecord) }
            return redirect.error(
                .accessDenied, description: "Nobody approved this request in time; it has expired", for: parsed)
        }
    }

    static let cannotRecord = GateError(
        .temporarilyUnavailable, "ScopeGate cannot record the outcome right now. Reload this page in a moment.")

    /// Records, once, that the hold went back to the app refused; false when that cannot be recorded.
    private func recordRejection(_ hold: Hold) async -> Bool {
        do {
            try await service.recordRejection(of: hold)
            return true
        } catch {
            return false
        }
    }

    /// Sends the browser on with its original request (`released`: its parameters, narrowed by a partial
    /// approval), which the gate will now admit.
    private func proceed(_ parsed: AuthorizationRequest, with released: FormParameters) -> Response {
        switch parsed.method {
        case .get:
            return PageResponse.redirect(publicOrigin + authorizationPath + "?" + released.encoded)
        case .post:
            let nonce = RandomID.make(bytes: 16)
            let html = MessagePages.autoPost(
                title: "Approved", message: "Your request was approved. Continuing to sign in…",
                action: publicOrigin + authorizationPath, fields: released.pairs.map { ($0.name, $0.value) },
                nonce: nonce)
            let destinations = redirect.registeredRedirectURI(for: parsed).flatMap(URL.init(string:))
                .flatMap(DiscoveryRewriter.origin(of:))
            return PageResponse.html(html, nonce: nonce, formActions: destinations.map { [$0] } ?? [])
        }
    }

    private func status(_ holdID: String, binderHash: String) async -> Response {
        do {
            var (hold, approval) = try await service.status(ofHold: holdID, binderHash: binderHash)
            if approval.state == .pending {
                let version = await hub.version(of: approval.id)
                (hold, approval) = try await service.status(ofHold: holdID, binderHash: binderHash)
                if approval.state == .pending {
                    await hub.waitForChange(of: approval.id, after: version, timeout: longPollTimeout)
                    (hold, approval) = try await service.status(ofHold: holdID, binderHash: binderHash)
                }
            }
            _ = hold
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[.cacheControl] = "no-store"
            return Response(
                status: .ok, headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: "{\"state\":\"\(approval.state.rawValue)\"}")))
        } catch {
            return ErrorResponses.json(error.code == .notFound ? Self.notThisBrowser : error)
        }
    }

    private func justify(_ request: Request, holdID: String, binderHash: String) async -> Response {
        if let origin = request.headers[.origin], origin != publicOrigin {
            return ErrorResponses.page(GateError(.forbidden, "The justification must be sent from the waiting page."))
        }
        var copy = request
        let text: String
        do {
            let body = try await copy.collectBody(upTo: 16 * 1024)
            let form = try FormParameters(parsing: Substring(String(buffer: body)))
            text = form["justification"] ?? ""
        } catch {
            return ErrorResponses.page(GateError(.invalidRequest, "The justification could not be read."))
        }
        do {
            try await service.justify(holdID: holdID, binderHash: binderHash, text: text)
        } catch {
            if error.code == .alreadyDecided { return PageResponse.redirect(Self.pagePath(holdID)) }
            return await page(holdID, binderHash: binderHash, notice: error.message)
        }
        return PageResponse.redirect(Self.pagePath(holdID))
    }

    private func isHex(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }
}
