import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ScopeGateCore

/// The bot's access token for the Bot Connector, from the Microsoft identity platform by the client
/// credentials grant (`scope=https://api.botframework.com/.default`), cached until five minutes before
/// it expires and dropped when the Connector refuses it.
actor BotConnectorToken {
    let client: HTTPClient
    let tokenURL: URL
    let appID: String
    let appPassword: String
    let now: @Sendable () -> Date
    private var cached: (token: String, expires: Date)?

    init(client: HTTPClient, tokenURL: URL, appID: String, appPassword: String, now: @escaping @Sendable () -> Date = { Date() }) {
        self.client = client
        self.tokenURL = tokenURL
        self.appID = appID
        self.appPassword = appPassword
        self.now = now
    }

    private struct Answer: Decodable {
        var access_token: String?
        var expires_in: Double?
        var error: String?
    }

    /// A valid token, fetched when there is none.
    func token() async throws(ChatDeliveryFailure) -> String {
        if let cached, cached.expires > now() { return cached.token }
        var request = HTTPClientRequest(url: tokenURL.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        let form = [
            ("grant_type", "client_credentials"), ("client_id", appID), ("client_secret", appPassword),
            ("scope", "https://api.botframework.com/.default"),
        ]
        request.body = .bytes(ByteBuffer(string: FormParameters.encode(pairs: form)))
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await client.execute(request, timeout: .seconds(10))
            body = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw .transient("token: network: \(type(of: error))")
        }
        if response.status == .tooManyRequests {
            throw .rateLimited(retryAfter: .seconds(BotConnector.retryAfter(response.headers)))
        }
        let answer = try? JSONDecoder().decode(Answer.self, from: Data(buffer: body))
        guard response.status == .ok, let token = answer?.access_token, !token.isEmpty else {
            // A wrong secret or app id stays wrong until the operator fixes it; the message is retried
            // with backoff rather than dropped, so fixing the secret and restarting delivers it.
            throw .transient("token: \(answer?.error ?? "http_\(response.status.code)")")
        }
        let lifetime = max(60, (answer?.expires_in ?? 3600) - 300)
        cached = (token, now().addingTimeInterval(lifetime))
        return token
    }

    /// Forgets the token (the Connector answered 401).
    func invalidate() { cached = nil }
}

/// Calls to the Bot Connector REST API (`{serviceUrl}/v3/conversations…`), with its errors sorted into
/// what a retry can fix and what it cannot.
struct BotConnector: Sendable {
    let client: HTTPClient
    /// The service URL, without the trailing slash.
    let serviceURL: String
    let token: BotConnectorToken
    let metrics: GateMetrics?

    init(client: HTTPClient, serviceURL: URL, token: BotConnectorToken, metrics: GateMetrics?) {
        self.client = client
        var base = serviceURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        self.serviceURL = base
        self.token = token
        self.metrics = metrics
    }

    /// What ScopeGate reads from the Connector's answers.
    struct Answer: Decodable {
        /// The conversation created (`POST /v3/conversations`).
        var id: String?
        /// The first activity's id in it.
        var activityId: String?
        /// A member's addresses (`GET /v3/conversations/{id}/members/{member}`): Microsoft Entra ID's,
        /// which the directory verified.
        var email: String?
        var userPrincipalName: String?
        var aadObjectId: String?
    }

    /// The directory email address of a member of a conversation (its `email`, else its user principal
    /// name), checked to be the member asked about; `nil` when Teams does not say.
    func email(of member: String, in conversation: String) async -> String? {
        let path = "/v3/conversations/\(FormParameters.encode(conversation))/members/\(FormParameters.encode(member))"
        guard let answer = try? await send(.GET, path, body: nil, name: "conversations.members.get"),
            answer.aadObjectId?.lowercased() == member.lowercased()
        else { return nil }
        return (answer.email ?? answer.userPrincipalName).flatMap { $0.contains("@") ? $0.lowercased() : nil }
    }

    /// Seconds from `Retry-After` (delta seconds), 1…3600, 30 when absent or unreadable.
    static func retryAfter(_ headers: HTTPHeaders) -> Int {
        max(1, min(headers.first(name: "Retry-After").flatMap { Int($0) } ?? 30, 3600))
    }

    /// Sends `body` with `method` to `path` under the service URL, counting how it ended.
    func send(_ method: HTTPMethod, _ path: String, body: JSONValue?, name: String) async throws(ChatDeliveryFailure) -> Answer {
        do {
            let answer = try await exchange(method, path, body: body)
            metrics?.chatCall("teams", name, outcome: "ok")
            return answer
        } catch {
            switch error {
            case .rateLimited: metrics?.chatCall("teams", name, outcome: "rate_limited")
            case .permanent: metrics?.chatCall("teams", name, outcome: "permanent")
            case .transient: metrics?.chatCall("teams", name, outcome: "transient")
            }
            throw error
        }
    }

    private func exchange(_ method: HTTPMethod, _ path: String, body: JSONValue?) async throws(ChatDeliveryFailure) -> Answer {
        var request = HTTPClientRequest(url: serviceURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(try await token.token())")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
            request.body = .bytes(ByteBuffer(data: body.encoded()))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await client.execute(request, timeout: .seconds(15))
            bytes = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw .transient("network: \(type(of: error))")
        }
        switch response.status.code {
        case 200...299:
            return (try? JSONDecoder().decode(Answer.self, from: Data(buffer: bytes))) ?? Answer()
        case 429:
            throw .rateLimited(retryAfter: .seconds(Self.retryAfter(response.headers)))
        case 401:
            await token.invalidate()
            throw .transient("http_401")
        case 400, 403, 404, 405, 413:
            // The bot is not in the team, the channel is gone, or the card is refused: retrying the same
            // call cannot succeed.
            throw .permanent("http_\(response.status.code)")
        default:
            throw .transient("http_\(response.status.code)")
        }
    }
}

/// Microsoft Teams as the outbox delivers to it. Through the bot: a new conversation (thread) in the
/// route's channel holding the card, or a new activity in the route's group chat, then the card
/// replaced in place by updating that activity.
/// Through a Workflows webhook (for teams that cannot register a bot): the card, whose action opens
/// ScopeGate's approval page, posted to the route's webhook; a webhook cannot edit what it posted, so
/// the decision is posted after it as a card of its own, and updates while the request is pending
/// (waiting counts, a justification) are not posted.
struct TeamsPlatform: ChatPlatform {
    static let name = "teams"
    var name: String { Self.name }

    let connector: BotConnector?
    let tenantID: String?
    /// Workflows webhook URLs by route name.
    let webhooks: [String: URL]
    /// ScopeGate's public URL, for the approval page's links.
    let publicURL: URL
    let client: HTTPClient
    let metrics: GateMetrics?

    func post(_ content: ApprovalMessageContent, to channel: String) async throws(ChatDeliveryFailure)
        -> (messageID: String, channel: String)
    {
        if channel.hasPrefix(ChatReach.workflowPrefix) {
            try await postToWorkflow(TeamsApprovalCard(content).workflowActivity(approvalURL: approvalURL(content)), channel: channel)
            return ("workflow:\(content.request.id)", channel)
        }
        guard let connector, let tenantID else { throw .permanent("no_bot_configured") }
        if channel.hasSuffix("@thread.v2") {
            // A group chat: the card goes into the chat itself, as a new activity.
            let answer = try await connector.send(
                .POST, "/v3/conversations/\(FormParameters.encode(channel))/activities",
                body: TeamsApprovalCard(content).activity(id: nil), name: "activities.send")
            guard let activity = answer.id else { throw .transient("no_activity_in_answer") }
            return (activity, channel)
        }
        let body: JSONValue = [
            "isGroup": true,
            "channelData": ["channel": ["id": .string(channel)], "tenant": ["id": .string(tenantID)]],
            "tenantId": .string(tenantID),
            "activity": TeamsApprovalCard(content).activity(id: nil),
        ]
        let answer = try await connector.send(.POST, "/v3/conversations", body: body, name: "conversations.create")
        guard let conversation = answer.id, let activity = answer.activityId else {
            throw .transient("no_activity_in_answer")
        }
        return (activity, conversation)
    }

    func update(messageID: String, in channel: String, with content: ApprovalMessageContent) async throws(ChatDeliveryFailure) {
        if channel.hasPrefix(ChatReach.workflowPrefix) {
            guard content.request.state != .pending else { return }
            try await postToWorkflow(TeamsApprovalCard(content).workflowActivity(approvalURL: approvalURL(content)), channel: channel)
            return
        }
        guard let connector else { throw .permanent("no_bot_configured") }
        _ = try await connector.send(
            .PUT, "/v3/conversations/\(FormParameters.encode(channel))/activities/\(FormParameters.encode(messageID))",
            body: TeamsApprovalCard(content).activity(id: messageID), name: "activities.update")
    }

    func remind(messageID: String, in channel: String, with content: ApprovalMessageContent) async throws(ChatDeliveryFailure) {
        let text: JSONValue = [
            "type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "version": "1.4",
            "body": [["type": "RichTextBlock", "inlines": [TeamsApprovalCard.run(content.reminder)]]],
        ]
        let activity: JSONValue = [
            "type": "message", "summary": .string(content.reminder),
            "attachments": [["contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": .null, "content": text]],
        ]
        if channel.hasPrefix(ChatReach.workflowPrefix) {
            try await postToWorkflow(activity, channel: channel)
            return
        }
        guard let connector else { throw .permanent("no_bot_configured") }
        // The conversation of a channel post is its thread: the reminder is a reply there.
        _ = try await connector.send(
            .POST, "/v3/conversations/\(FormParameters.encode(channel))/activities", body: activity, name: "activities.send")
    }

    /// Teams reaches a person only in a conversation the bot was installed in for them: requesters are
    /// told on their waiting page instead.
    var reachesPeopleByEmail: Bool { false }
    func member(byEmail email: String) async throws(ChatDeliveryFailure) -> String? { nil }

    func notify(_ text: String, to channel: String) async throws(ChatDeliveryFailure) {
        guard let connector, let tenantID else { throw .permanent("no_bot_configured") }
        let card: JSONValue = [
            "type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "version": "1.4",
            "body": [["type": "RichTextBlock", "inlines": [TeamsApprovalCard.run(text)]]],
        ]
        let activity: JSONValue = [
            "type": "message", "summary": .string(ChatText.clipped(text, to: 200)),
            "attachments": [["contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": .null, "content": card]],
        ]
        if channel.hasSuffix("@thread.v2") {
            _ = try await connector.send(
                .POST, "/v3/conversations/\(FormParameters.encode(channel))/activities", body: activity, name: "activities.send")
            return
        }
        let body: JSONValue = [
            "isGroup": true,
            "channelData": ["channel": ["id": .string(channel)], "tenant": ["id": .string(tenantID)]],
            "tenantId": .string(tenantID), "activity": activity,
        ]
        _ = try await connector.send(.POST, "/v3/conversations", body: body, name: "conversations.create")
    }

    private func approvalURL(_ content: ApprovalMessageContent) -> String {
        ApprovalPage.url(content.request.id, publicURL: publicURL)
    }

    /// Posts to the route's Workflows webhook, whose answer (202) carries no message id.
    private func postToWorkflow(_ activity: JSONValue, channel: String) async throws(ChatDeliveryFailure) {
        let route = String(channel.dropFirst(ChatReach.workflowPrefix.count))
        guard let url = webhooks[route] else { throw .permanent("no_webhook_for_route") }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        request.body = .bytes(ByteBuffer(data: activity.encoded()))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(15))
            _ = try await response.body.collect(upTo: 1 << 16)
        } catch {
            metrics?.chatCall("teams", "workflow.post", outcome: "transient")
            throw .transient("network: \(type(of: error))")
        }
        switch response.status.code {
        case 200...299:
            metrics?.chatCall("teams", "workflow.post", outcome: "ok")
        case 429:
            metrics?.chatCall("teams", "workflow.post", outcome: "rate_limited")
            throw .rateLimited(retryAfter: .seconds(BotConnector.retryAfter(response.headers)))
        case 400, 401, 403, 404, 410:
            // The workflow was turned off or deleted, or its URL is wrong: retrying cannot help.
            metrics?.chatCall("teams", "workflow.post", outcome: "permanent")
            throw .permanent("workflow_http_\(response.status.code)")
        default:
            metrics?.chatCall("teams", "workflow.post", outcome: "transient")
            throw .transient("workflow_http_\(response.status.code)")
        }
    }
}
