import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ScopeGateCore

/// The interactivity endpoint Slack posts button clicks to (`POST`, form-encoded `payload`).
///
/// Only a request with a valid, fresh `v0` signature is read. A click is acted on once: its
/// `trigger_id` is recorded first, so a retry or replay of the same delivery changes nothing. The
/// clicking user must be an approver of the request's route, by Slack user id and team; anyone else
/// gets an ephemeral message and nothing changes. Slack is answered within its three seconds: the
/// work normally finishes well before, and if it does not, the answer is sent anyway and the work
/// goes on.
struct SlackInteractions: Sendable {
    static let path = "/_scopegate/slack/interactions"
    /// How long the answer waits for the decision before acknowledging anyway.
    static let acknowledgeWithin: Duration = .milliseconds(2500)

    /// A click, as far as ScopeGate reads it.
    struct Payload: Decodable {
        struct User: Decodable {
            var id: String
            var team_id: String?
        }
        struct Team: Decodable { var id: String? }
        struct Container: Decodable { var channel_id: String? }
        struct Channel: Decodable { var id: String }
        struct Action: Decodable {
            var action_id: String
            var value: String?
            var action_ts: String?
        }

        /// The values of the message's inputs when the button was clicked (the duration menu).
        struct State: Decodable {
            struct Element: Decodable {
                struct Option: Decodable { var value: String }
                var selected_option: Option?
                var selected_options: [Option]?
            }
            var values: [String: [String: Element]]
        }

        var type: String
        var state: State?
        var user: User?
        var team: Team?
        var trigger_id: String?
        var container: Container?
        var channel: Channel?
        var actions: [Action]?
    }

    typealias Outcome = InteractionOutcome

    /// The signature check of the HTTP endpoint; `nil` under Socket Mode, where the endpoint is off.
    let signature: SlackSignature?
    let service: GateService
    let outbox: any ChatOutboxStore
    let approvers: SlackApprovers
    let api: SlackAPI
    var routing: Routing { service.live.requiredRouting }
    let metrics: GateMetrics?
    let logger: Logger
    let now: @Sendable () -> Date
    /// ScopeGate's public URL, for links to the approval page.
    var publicURL: URL? = nil

    func respond(to request: Request) async -> Response {
        guard let signature else {
            return ErrorResponses.plain(.notFound, "Slack interactions arrive over Socket Mode, not at this path")
        }
        guard request.method == .post else {
            var response = ErrorResponses.plain(.methodNotAllowed, "Slack interactions are POSTed")
            response.headers[.allow] = "POST"
            return response
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: 256 * 1024)
        } catch {
            return ErrorResponses.plain(.contentTooLarge, "the interaction payload is too large")
        }
        let bytes = Array(buffer: body)
        do {
            try signature.verify(
                timestamp: request.headers[HTTPField.Name("X-Slack-Request-Timestamp")!],
                signature: request.headers[HTTPField.Name("X-Slack-Signature")!], body: bytes, now: now())
        } catch {
            logger.warning("refused a Slack interaction", metadata: ["sg.reason": "\(error)"])
            metrics?.chatInteraction("slack", "bad_signature")
            return ErrorResponses.plain(.unauthorized, "the request is not signed by Slack")
        }
        let payload: Payload
        do {
            let form = try FormParameters(parsing: Substring(String(decoding: bytes, as: UTF8.self)))
            guard let json = form["payload"] else { throw GateError(.invalidRequest, "no payload") }
            payload = try JSONDecoder().decode(Payload.self, from: Data(json.utf8))
        } catch {
            return ErrorResponses.plain(.badRequest, "the interaction payload cannot be read")
        }
        let work = Task { await handle(payload) }
        _ = await Self.first(work, within: Self.acknowledgeWithin)
        return Response(status: .ok, headers: [.contentLength: "0"])
    }

    /// The work's outcome, or `nil` when it takes longer than `limit` (it goes on regardless).
    private static func first(_ work: Task<Outcome, Never>, within limit: Duration) async -> Outcome? {
        await withTaskGroup(of: Outcome?.self) { group in
            group.addTask { await work.value }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// Acts on a verified click, and counts what became of it.
    @discardableResult
    func handle(_ payload: Payload) async -> Outcome {
        let outcome = await act(on: payload)
        metrics?.chatInteraction("slack", outcome.label)
        return outcome
    }

    private func act(on payload: Payload) async -> Outcome {
        guard payload.type == "block_actions", let actions = payload.actions, actions.count == 1,
            let action = SlackApprovalMessage.Action(rawValue: actions[0].action_id), let requestID = actions[0].value,
            let user = payload.user
        else {
            return .ignored("not a ScopeGate decision")
        }
        let team = payload.user?.team_id ?? payload.team?.id
        let channel = payload.container?.channel_id ?? payload.channel?.id
        let interactionID = payload.trigger_id ?? "\(user.id)/\(actions[0].action_ts ?? "")/\(requestID)"
        do {
            guard try await outbox.firstSeenInteraction(platform: SlackPlatform.name, id: interactionID, at: now()) else {
                logger.info("ignored a repeated Slack interaction", metadata: ["sg.request": "\(requestID)"])
                return .replay
            }
        } catch {
            await tell(user.id, in: channel, "ScopeGate could not record your click, so nothing changed. Please try again.")
            return .refused("store")
        }
        guard let request = try? await service.store.approvalRequest(id: requestID) else {
            await tell(user.id, in: channel, "ScopeGate knows no approval request \(requestID).")
            return .refused("unknown request")
        }
        let routes = routing.routes(for: request, policy: service.policy)
        let route = routes[0]
        switch await approvers.verdict(user: user.id, team: team, reaches: routes.map { $0.reach(on: SlackPlatform.name) }) {
        case .approver:
            break
        case .notAnApprover:
            logger.warning(
                "a Slack user who is not an approver clicked",
                metadata: ["sg.request": "\(requestID)", "sg.slack.user": "\(user.id)", "sg.route": "\(route.name)"])
            await tell(user.id, in: channel, "You are not an approver for this request, so nothing changed.")
            return .refused("not an approver")
        case .cannotCheck:
            await tell(
                user.id, in: channel,
                "ScopeGate could not read the approver groups from Slack, so nothing changed. Please try again shortly.")
            return .refused("cannot check approvers")
        }
        if service.policy.stepUp(of: request) != nil {
            let link = publicURL.map { " <\(ApprovalPage.url(requestID, publicURL: $0))|Decide on the approval page>." } ?? ""
            await tell(
                user.id, in: channel,
                "Nothing changed: requests of tier \(service.policy.tier(of: request)) are decided after a fresh sign-in at the identity provider.\(link)")
            return .refused("step-up")
        }
        let actor = "slack:\(team ?? "")/\(user.id)"
        do {
            let decided: ApprovalRequest
            switch action {
            case .approve:
                let chosen = payload.state?.values.values.compactMap { $0[SlackApprovalMessage.durationAction]?.selected_option?.value }.first
                decided = try await service.approve(
                    requestID, actor: actor, once: false, duration: chosen.flatMap(ScopeGateConfiguration.duration),
                    scopes: try payload.ticked(), identity: .person(verifiedEmail: await approvers.verifiedEmail(of: user.id), idpSubject: nil))
            case .approveOnce:
                decided = try await service.approve(
                    requestID, actor: actor, once: true, scopes: try payload.ticked(),
                    identity: .person(verifiedEmail: await approvers.verifiedEmail(of: user.id), idpSubject: nil))
            case .deny:
                decided = try await service.deny(
                    requestID, actor: actor, identity: .person(verifiedEmail: await approvers.verifiedEmail(of: user.id), idpSubject: nil))
            }
            if decided.state == .pending {
                let quorum = service.policy.quorum(of: decided)
                await tell(
                    user.id, in: channel,
                    "Your vote is counted. This request needs \(action == .deny ? quorum.deny : quorum.approve) approvers to agree; the message shows the votes so far.")
            }
            return .decided(decided.state)
        } catch where error.code == .forbidden || error.code == .invalidRequest {
            await tell(user.id, in: channel, "Nothing changed: \(error.message).")
            return .refused("not allowed by the tier")
        } catch where error.code == .alreadyVoted {
            await tell(user.id, in: channel, "You already voted on this request; it waits for another approver.")
            return .refused("already voted")
        } catch where error.code == .alreadyDecided {
            let state = (try? await service.store.approvalRequest(id: requestID))?.state.rawValue ?? "decided"
            await tell(user.id, in: channel, "This request was already \(state.replacingOccurrences(of: "_", with: " ")); the first decision stands.")
            return .refused("already decided")
        } catch {
            await tell(user.id, in: channel, "ScopeGate could not record your decision, so nothing changed. Please try again.")
            return .refused(error.code.rawValue)
        }
    }

    /// An ephemeral message to the clicking user; best effort, as these are transient by nature.
    private func tell(_ user: String, in channel: String?, _ text: String) async {
        guard let channel else { return }
        for attempt in 0..<2 {
            do {
                _ = try await api.call(
                    "chat.postEphemeral", json: ["channel": .string(channel), "user": .string(user), "text": .string(text)])
                return
            } catch {
                logger.warning("an ephemeral Slack message failed", metadata: ["sg.slack.error": "\(error.name)"])
                if attempt == 0 { try? await Task.sleep(for: .milliseconds(500)) }
            }
        }
    }
}

extension SlackInteractions.Payload {
    /// The scopes ticked in the message's checkboxes when Approve was clicked: `nil` where the message
    /// has none (every scope is approved); refused when none is ticked.
    func ticked() throws(GateError) -> ScopeSet? {
        guard let element = state?.values.values.lazy.compactMap({ $0[SlackApprovalMessage.scopesAction] }).first else { return nil }
        let values = (element.selected_options ?? []).map(\.value)
        guard !values.isEmpty else {
            throw GateError(.invalidRequest, "no scope is ticked; tick the scopes to approve, or deny the request")
        }
        return ScopeSet(values)
    }
}
