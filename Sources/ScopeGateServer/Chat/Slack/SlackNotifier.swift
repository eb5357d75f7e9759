import Foundation
import Logging
import ScopeGateCore
import ServiceLifecycle

/// Posts approval requests to Slack and keeps the messages up to date, through the persistent outbox.
///
/// Each pass: open messages for pending requests that have none (on the route's channel, and approvers'
/// direct messages where the route asks), then post or update every due message. A failure is recorded
/// with the message and retried with exponential backoff; HTTP 429 pauses every call for `Retry-After`;
/// a permanent error stops that message and is logged and shown by `scopegate requests show`. Nothing
/// here can decide a request. Messages are worked one at a time, so a retry never races the attempt
/// before it; after a restart the outbox resumes where it stood.
final class SlackNotifier: Service, GateObserver {
    static let platform = "slack"

    let outbox: any ChatOutboxStore
    let store: any GateStore
    let api: SlackAPI
    let routing: Routing
    let policy: Policy
    let confirmTiers: Set<String>
    let metrics: GateMetrics?
    let interval: Duration
    let logger: Logger
    let now: @Sendable () -> Date
    private let wakeStream: AsyncStream<Void>
    private let wakeContinuation: AsyncStream<Void>.Continuation

    init(
        outbox: any ChatOutboxStore, store: any GateStore, api: SlackAPI, routing: Routing, policy: Policy,
        confirmTiers: Set<String>, metrics: GateMetrics? = nil, interval: Duration = .milliseconds(250), logger: Logger,
        now: @escaping @Sendable () -> Date
    ) {
        self.outbox = outbox
        self.store = store
        self.api = api
        self.routing = routing
        self.policy = policy
        self.confirmTiers = confirmTiers
        self.metrics = metrics
        self.interval = interval
        self.logger = logger
        self.now = now
        (wakeStream, wakeContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: GateObserver: wake the loop at once instead of at its next tick.

    func approvalRequestOpened(_ request: ApprovalRequest, by hold: Hold) async { wake() }
    func approvalRequestDecided(_ request: ApprovalRequest) async { wake() }

    /// Asks for a pass now (a justification was added, a decision made elsewhere).
    func wake() { wakeContinuation.yield() }

    func run() async throws {
        let ticks = Task { [wakeContinuation, interval] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                wakeContinuation.yield()
            }
        }
        defer { ticks.cancel() }
        await cancelWhenGracefulShutdown { [self] in
            var pausedUntil = Date.distantPast
            for await _ in wakeStream {
                if Task.isCancelled { break }
                guard now() >= pausedUntil else { continue }
                if let pause = await pass() { pausedUntil = now().addingTimeInterval(pause.seconds) }
            }
        }
    }

    /// One pass over the outbox; returns how long to pause all calls after a 429.
    func pass() async -> Duration? {
        do {
            for request in try await outbox.requestsAwaitingMessage(platform: Self.platform) {
                let route = routing.route(for: request, policy: policy)
                if try await outbox.addChatMessages(
                    approvalRequestID: request.id, platform: Self.platform, channels: route.destinations, at: now())
                {
                    logger.info(
                        "approval request routed to Slack",
                        metadata: ["sg.request": "\(request.id)", "sg.route": "\(route.name)"])
                }
            }
            let due = try await outbox.dueChatMessages(platform: Self.platform, at: now(), limit: 50)
            metrics?.slackOutboxDue(due.count)
            for message in due {
                if let pause = try await deliver(message) { return pause }
            }
        } catch {
            logger.error("the Slack outbox cannot be read or written", metadata: ["sg.error": "\(type(of: error))"])
        }
        return nil
    }

    /// Posts or updates one message with the content of its request as it stands now.
    private func deliver(_ message: ChatMessage) async throws -> Duration? {
        guard let request = try await store.approvalRequest(id: message.approvalRequestID) else { return nil }
        let holds = try await store.holds(approvalRequestID: request.id)
        let justifications = holds
            .sorted { $0.createdAt > $1.createdAt }
            .compactMap { $0.justification?.isEmpty == false ? $0.justification : nil }
        let route = routing.route(for: request, policy: policy)
        let body = SlackApprovalMessage(
            request: request, policy: policy, justifications: justifications, routeName: route.name,
            confirmTiers: confirmTiers, waiting: holds.filter { $0.consumedAt == nil }.count
        ).body
        let revision = message.revision
        do {
            if let ts = message.messageID {
                _ = try await api.call(
                    "chat.update",
                    json: [
                        "channel": .string(message.postedChannel ?? message.channel), "ts": .string(ts),
                        "text": .string(body.text), "blocks": body.blocks,
                    ])
                try await outbox.chatMessageDelivered(
                    message, messageID: ts, postedChannel: message.postedChannel ?? message.channel, revision: revision,
                    at: now())
            } else {
                let answer = try await api.call(
                    "chat.postMessage",
                    json: [
                        "channel": .string(message.channel), "text": .string(body.text), "blocks": body.blocks,
                        "unfurl_links": false, "unfurl_media": false,
                    ])
                guard let ts = answer.ts else { throw SlackAPI.Failure.transient("no_ts_in_answer") }
                try await outbox.chatMessageDelivered(
                    message, messageID: ts, postedChannel: answer.channel ?? message.channel, revision: revision, at: now())
                logger.info(
                    "approval request posted to Slack",
                    metadata: ["sg.request": "\(request.id)", "sg.channel": "\(message.channel)"])
            }
            return nil
        } catch let failure as SlackAPI.Failure {
            return try await record(failure, on: message)
        }
    }

    private func record(_ failure: SlackAPI.Failure, on message: ChatMessage) async throws -> Duration? {
        let metadata: Logger.Metadata = [
            "sg.request": "\(message.approvalRequestID)", "sg.channel": "\(message.channel)",
            "sg.slack.error": "\(failure.name)", "sg.attempts": "\(message.attempts + 1)",
        ]
        switch failure {
        case .permanent(let error):
            logger.error("Slack refused the approval message; it will not be retried", metadata: metadata)
            metrics?.slackMessageFailedPermanently()
            try await outbox.chatMessageFailed(message, error: error, permanent: true, retryAt: now(), at: now())
            return nil
        case .rateLimited(let after):
            logger.warning("Slack rate limit; pausing Slack calls", metadata: metadata)
            try await outbox.chatMessageFailed(
                message, error: failure.name, permanent: false, retryAt: now().addingTimeInterval(after.seconds), at: now())
            return after
        case .transient(let error):
            logger.warning("Slack call failed; will retry", metadata: metadata)
            try await outbox.chatMessageFailed(
                message, error: error, permanent: false,
                retryAt: now().addingTimeInterval(Self.backoff(attempt: message.attempts + 1)), at: now())
            return nil
        }
    }

    /// Seconds before attempt `attempt + 1`: 1, 2, 4, … up to five minutes, with up to 20 % jitter.
    static func backoff(attempt: Int) -> TimeInterval {
        let base = min(pow(2, Double(max(0, attempt - 1))), 300)
        return base * Double.random(in: 1...1.2)
    }
}
