import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ScopeGateCore

/// The messaging endpoint the Bot Connector posts activities to (`POST`, JSON, bearer JWT).
///
/// Only an activity whose token passes `BotConnectorTokenValidator` is read; everything else is
/// answered 401 and changes nothing. An `adaptiveCard/action` invoke from a card's button is acted on
/// once (its activity id is recorded first, so a retry or replay has no second effect), and only when
/// the clicking user is an approver of the request's route in Teams, by Microsoft Entra object id and
/// in the configured tenant. The invoke is answered with the refreshed card, or with an error the
/// clicking user sees while the card stays as it was.
struct TeamsActivities: Sendable {
    static let path = "/_scopegate/teams/messages"

    /// An activity, as far as ScopeGate reads it.
    struct Activity: Decodable {
        struct Account: Decodable {
            var id: String?
            var aadObjectId: String?
            var name: String?
        }
        struct Conversation: Decodable {
            var id: String?
            var tenantId: String?
        }
        struct ChannelData: Decodable {
            struct Tenant: Decodable { var id: String? }
            var tenant: Tenant?
        }
        struct Value: Decodable {
            struct Action: Decodable {
                struct Data: Decodable {
                    var request: String?
                    var duration: String?
                    var scopes: String?

                    /// The scopes ticked in the card's choice set: `nil` where the card has none
                    /// (every scope is approved); refused when none is ticked.
                    func ticked() throws(GateError) -> ScopeSet? {
                        guard let scopes else { return nil }
                        let values = scopes.split(separator: ",").map(String.init)
                        guard !values.isEmpty else {
                            throw GateError(.invalidRequest, "no scope is ticked; tick the scopes to approve, or deny the request")
                        }
                        return ScopeSet(values)
                    }
                }
                var type: String?
                var verb: String?
                var data: Data?
            }
            var action: Action?
        }

        var type: String
        var id: String?
        var name: String?
        var channelId: String?
        var serviceUrl: String?
        var from: Account?
        var conversation: Conversation?
        var channelData: ChannelData?
        var value: Value?
    }

    typealias Outcome = InteractionOutcome

    let validator: BotConnectorTokenValidator
    let tenantID: String
    let service: GateService
    let outbox: any ChatOutboxStore
    var routing: Routing { service.live.requiredRouting }
    var confirmTiers: Set<String> { service.live.confirmTiers }
    let metrics: GateMetrics?
    let logger: Logger
    let now: @Sendable () -> Date
    /// ScopeGate's public URL, for links to the approval page.
    var publicURL: URL? = nil
    /// The Bot Connector, to read an approver's directory email address (separation of duties).
    var connector: BotConnector? = nil

    func respond(to request: Request) async -> Response {
        guard request.method == .post else {
            var response = ErrorResponses.plain(.methodNotAllowed, "the Bot Connector POSTs activities")
            response.headers[.allow] = "POST"
            return response
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: 256 * 1024)
        } catch {
            return ErrorResponses.plain(.contentTooLarge, "the activity is too large")
        }
        // The activity is parsed before its token is checked only for the two fields the check
        // compares (`serviceUrl`, `channelId`); nothing in it is acted on before the check passes.
        let activity = try? JSONDecoder().decode(Activity.self, from: Data(buffer: body))
        do {
            try await validator.validate(
                authorization: request.headers[.authorization], serviceURL: activity?.serviceUrl,
                channelID: activity?.channelId, now: now())
        } catch {
            logger.warning("refused a Teams activity", metadata: ["sg.reason": "\(error)"])
            metrics?.chatInteraction("teams", "bad_token")
            return ErrorResponses.plain(.unauthorized, "the request does not carry a valid Bot Connector token")
        }
        guard let activity else { return ErrorResponses.plain(.badRequest, "the activity cannot be read") }
        guard activity.type == "invoke", activity.name == "adaptiveCard/action" else {
            // Messages, installs and conversation updates: acknowledged, nothing to do.
            return Response(status: .accepted, headers: [.contentLength: "0"])
        }
        let (outcome, answer) = await handle(activity)
        metrics?.chatInteraction("teams", outcome.label)
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        let bytes = answer.encoded()
        headers[.contentLength] = String(bytes.count)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(data: bytes)))
    }

    /// Acts on a verified invoke; returns what became of it and the invoke response.
    func handle(_ activity: Activity) async -> (Outcome, JSONValue) {
        guard let action = activity.value?.action, action.type == "Action.Execute",
            let verb = action.verb.flatMap(TeamsApprovalCard.Verb.init(rawValue:)), let requestID = action.data?.request,
            let activityID = activity.id
        else {
            return (.ignored("not a ScopeGate decision"), Self.error(400, "BadRequest", "This is not a ScopeGate decision."))
        }
        let tenants = [activity.conversation?.tenantId, activity.channelData?.tenant?.id].compactMap { $0?.lowercased() }
        guard !tenants.isEmpty, tenants.allSatisfy({ $0 == tenantID }), let user = activity.from?.aadObjectId?.lowercased()
        else {
            logger.warning("a Teams click from another tenant or without a user", metadata: ["sg.request": "\(requestID)"])
            return (.refused("not an approver"), Self.error(403, "Forbidden", "You are not an approver for this request, so nothing changed."))
        }
        do {
            guard try await outbox.firstSeenInteraction(platform: TeamsPlatform.name, id: activityID, at: now()) else {
                logger.info("ignored a repeated Teams activity", metadata: ["sg.request": "\(requestID)"])
                return (.replay, await currentCard(requestID) ?? Self.error(409, "Conflict", "This click was already handled."))
            }
        } catch {
            return (.refused("store"), Self.error(500, "InternalError", "ScopeGate could not record your click, so nothing changed. Please try again."))
        }
        guard let request = try? await service.store.approvalRequest(id: requestID) else {
            return (.refused("unknown request"), Self.error(404, "NotFound", "ScopeGate knows no approval request \(requestID)."))
        }
        let routes = routing.routes(for: request, policy: service.policy)
        let route = routes[0]
        guard routes.contains(where: { $0.reach(on: TeamsPlatform.name)?.approverUsers.contains(user) == true }) else {
            logger.warning(
                "a Teams user who is not an approver clicked",
                metadata: ["sg.request": "\(requestID)", "sg.teams.user": "\(user)", "sg.route": "\(route.name)"])
            return (.refused("not an approver"), Self.error(403, "Forbidden", "You are not an approver for this request, so nothing changed."))
        }
        if service.policy.stepUp(of: request) != nil {
            let link = publicURL.map { ": " + ApprovalPage.url(requestID, publicURL: $0) } ?? ""
            return (
                .refused("step-up"),
                Self.error(
                    403, "Forbidden",
                    "Nothing changed: requests of tier \(service.policy.tier(of: request)) are decided on ScopeGate's approval page after a fresh sign-in\(link)")
            )
        }
        let actor = "teams:\(tenantID)/\(user)"
        // Who the approver is, for separation of duties and for counting a person once among several
        // approvers: their directory address, read only where either applies.
        var identity = ApproverIdentity.person(verifiedEmail: nil, idpSubject: nil)
        let quorum = service.policy.quorum(of: request)
        if (verb != .deny && service.policy.identifyRequesters) || quorum.approve > 1 || quorum.deny > 1, let connector,
            let conversation = activity.conversation?.id
        {
            identity = .person(verifiedEmail: await connector.email(of: user, in: conversation), idpSubject: nil)
        }
        do {
            let decided: ApprovalRequest
            switch verb {
            case .approve:
                decided = try await service.approve(
                    requestID, actor: actor, once: false, duration: action.data?.duration.flatMap(ScopeGateConfiguration.duration),
                    scopes: try action.data?.ticked(), identity: identity)
            case .approveOnce:
                decided = try await service.approve(
                    requestID, actor: actor, once: true, scopes: try action.data?.ticked(), identity: identity)
            case .deny: decided = try await service.deny(requestID, actor: actor, identity: identity)
            }
            return (.decided(decided.state), await card(for: decided, route: route))
        } catch where error.code == .forbidden || error.code == .invalidRequest {
            return (.refused("not allowed by the tier"), Self.error(403, "Forbidden", "Nothing changed: \(error.message)."))
        } catch where error.code == .alreadyVoted {
            return (.refused("already voted"), Self.error(409, "Conflict", "You already voted on this request; it waits for another approver."))
        } catch where error.code == .alreadyDecided {
            // The card the user clicked was stale: show them how it was decided.
            return (.refused("already decided"), await currentCard(requestID) ?? Self.error(409, "Conflict", "This request was already decided."))
        } catch {
            return (.refused(error.code.rawValue), Self.error(500, "InternalError", "ScopeGate could not record your decision, so nothing changed. Please try again."))
        }
    }

    private func currentCard(_ requestID: String) async -> JSONValue? {
        guard let request = try? await service.store.approvalRequest(id: requestID) else { return nil }
        return await card(for: request, route: routing.route(for: request, policy: service.policy))
    }

    /// The invoke response carrying the request's card as it stands now.
    private func card(for request: ApprovalRequest, route: Route) async -> JSONValue {
        let holds = (try? await service.store.holds(approvalRequestID: request.id)) ?? []
        let content = ApprovalMessageContent(
            request: request, policy: service.policy,
            justifications: holds.sorted { $0.createdAt > $1.createdAt }.compactMap {
                $0.justification?.isEmpty == false ? $0.justification : nil
            },
            routeName: route.name, confirmTiers: confirmTiers, waiting: holds.filter { $0.consumedAt == nil }.count,
            votes: (try? await service.votes(on: request.id)) ?? [], quorum: service.policy.quorum(of: request),
            publicURL: publicURL, requesters: holds.compactMap(\.requester),
            clientStanding: await service.clientStanding(of: request.clientID))
        return ["statusCode": .number(200), "type": "application/vnd.microsoft.card.adaptive", "value": TeamsApprovalCard(content).card]
    }

    /// An invoke response Teams shows the clicking user as an error; the card stays as it was.
    static func error(_ status: Int, _ code: String, _ message: String) -> JSONValue {
        ["statusCode": .number(Double(status)), "type": "application/vnd.microsoft.error", "value": ["code": .string(code), "message": .string(message)]]
    }
}
