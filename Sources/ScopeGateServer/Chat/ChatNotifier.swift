import Foundation
import Logging
import ScopeGateCore
import ServiceLifecycle

/// Posts approval requests to one chat platform and keeps the messages up to date, through the
/// persistent outbox; one notifier runs per configured platform, each with its own pace and pauses.
///
/// Each pass: open messages for pending requests that have none (on the route's channel on this
/// platform, and approvers' direct messages where the route asks), then post or update every due
/// message. A decision, an expiry or a new justification bumps the message's revision in the store, so
/// every message is brought up to date whichever platform or command decided. A failure is recorded
/// with the message and retried with exponential backoff; HTTP 429 pauses every call for `Retry-After`;
/// a permanent error stops that message and is logged and shown by `scopegate requests show`. Nothing
/// here can decide a request. Messages are worked one at a time, so a retry never races the attempt
/// before it; after a restart the outbox resumes where it stood.
final class ChatNotifier: Service, GateObserver {

    let outbox: any ChatOutboxStore
    let store: any GateStore
    let platform: any ChatPlatform
    /// The policy and routes in force (a reload replaces them).
    let live: LivePolicy
    var routing: Routing { live.requiredRouting }
    var policy: Policy { live.policy }
    var confirmTiers: Set<String> { live.confirmTiers }
    let publicURL: URL?
    /// Notices to apps' owners, where the configuration asks for them.
    let chatNotices: ChatNotices?
    let metrics: GateMetrics?
    let interval: Duration
    let logger: Logger
    let now: @Sendable () -> Date
    private let wakeStream: AsyncStream<Void>
    private let wakeContinuation: AsyncStream<Void>.Continuation

    convenience init(
        outbox: any ChatOutboxStore, store: any GateStore, platform: any ChatPlatform, routing: Routing, policy: Policy,
        confirmTiers: Set<String>, publicURL: URL? = nil, chatNotices: ChatNotices? = nil, metrics: GateMetrics? = nil, interval: Duration = .milliseconds(250), logger: Logger,
        now: @escaping @Sendable () -> Date
    ) {
        self.init(
            outbox: outbox, store: store, platform: platform,
            live: LivePolicy(policy: policy, routing: routing, confirmTiers: confirmTiers), publicURL: publicURL,
            chatNotices: chatNotices, metrics: metrics, interval: interval, logger: logger, now: now)
    }

    init(
        outbox: any ChatOutboxStore, store: any GateStore, platform: any ChatPlatform, live: LivePolicy,
        publicURL: URL? = nil, chatNotices: ChatNotices? = nil, metrics: GateMetrics? = nil, interval: Duration = .milliseconds(250), logger: Logger,
        now: @escaping @Sendable () -> Date
    ) {
        self.outbox = outbox
        self.store = store
        self.platform = platform
        self.live = live
        self.publicURL = publicURL
        self.chatNotices = chatNotices
        self.metrics = metrics
        self.interval = interval
        self.logger = logger
        self.now = now
        (wakeStream, wakeContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: GateObserver: wake the loop at once instead of at its next tick.

    func approvalRequestOpened(_ request: ApprovalRequest, by hold: Hold) async { wake() }
    func approvalRequestDecided(_ request: ApprovalRequest) async { wake() }
    func approvalRequestUpdated(_ request: ApprovalRequest) async { wake() }

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
            for request in try await outbox.requestsAwaitingMessage(platform: platform.name) {
                let route = routing.route(for: request, policy: policy)
                // A route without a reach on this platform posts nothing here (its approvers are
                // elsewhere); the request is looked at again on the next pass, which costs a route lookup.
                guard let channels = route.reach(on: platform.name)?.destinations else { continue }
                if try await outbox.addChatMessages(
                    approvalRequestID: request.id, platform: platform.name, channels: channels, at: now())
                {
                    logger.info(
                        "approval request routed",
                        metadata: [
                            "sg.request": "\(request.id)", "sg.route": "\(route.name)", "sg.chat": "\(platform.name)",
                            "sg.messages": "\(channels.count)",
                        ])
                }
            }
            let due = try await outbox.dueChatMessages(platform: platform.name, at: now(), limit: 50)
            metrics?.chatOutboxDue(platform.name, due.count)
            for message in due {
                if let pause = try await deliver(message) { return pause }
            }
            if let chatNotices, let pause = await chatNotices.pass(on: platform) { return pause }
        } catch {
            logger.error(
                "the chat outbox cannot be read or written",
                metadata: ["sg.chat": "\(platform.name)", "sg.error": "\(type(of: error))"])
        }
        return nil
    }

    /// Reminds the approvers of `request` on this platform, next to each message already posted; best
    /// effort (a reminder that fails is logged, the request itself waits on regardless).
    func remind(_ request: ApprovalRequest) async {
        guard let messages = try? await outbox.chatMessages(approvalRequestID: request.id) else { return }
        let route = routing.route(for: request, policy: policy)
        for message in messages where message.platform == platform.name {
            guard let messageID = message.messageID else { continue }
            let content = ApprovalMessageContent(
                request: request, policy: policy, justifications: [], routeName: route.name, confirmTiers: confirmTiers,
                waiting: 0, publicURL: publicURL)
            do {
                try await platform.remind(messageID: messageID, in: message.postedChannel ?? message.channel, with: content)
            } catch {
                logger.warning(
                    "a reminder could not be sent",
                    metadata: ["sg.request": "\(request.id)", "sg.chat": "\(platform.name)", "sg.chat.error": "\(error.name)"])
            }
        }
    }

    /// How the request's client stands, for approvers: its first request is read only when the
    /// configuration gives no registration date.
    private func standing(of clientID: String) async throws -> ClientStanding {
        let policy = self.policy
        let first = policy.clients[clientID]?.registeredAt == nil ? try await store.firstRequestDate(clientID: clientID) : nil
        return policy.standing(of: clientID, firstRequest: first)
    }

    /// Posts or updates one message with the content of its request as it stands now.
    private func deliver(_ message: ChatMessage) async throws -> Duration? {
        guard let request = try await store.approvalRequest(id: message.approvalRequestID) else { return nil }
        let holds = try await store.holds(approvalRequestID: request.id)
        let justifications = holds
            .sorted { $0.createdAt > $1.createdAt }
            .compactMap { $0.justification?.isEmpty == false ? $0.justification : nil }
        let route = routing.route(for: request, policy: policy)
        let content = ApprovalMessageContent(
            request: request, policy: policy, justifications: justifications, routeName: route.name,
            confirmTiers: confirmTiers, waiting: holds.filter { $0.consumedAt == nil }.count,
            votes: try await store.votes(approvalRequestID: request.id), quorum: policy.quorum(of: request), publicURL: publicURL,
            requesters: holds.compactMap(\.requester), clientStanding: try await standing(of: request.clientID))
        let revision = message.revision
        do {
            if let messageID = message.messageID {
                let channel = message.postedChannel ?? message.channel
                try await platform.update(messageID: messageID, in: channel, with: content)
                try await outbox.chatMessageDelivered(
                    message, messageID: messageID, postedChannel: channel, revision: revision, at: now())
            } else {
                let posted = try await platform.post(content, to: message.channel)
                try await outbox.chatMessageDelivered(
                    message, messageID: posted.messageID, postedChannel: posted.channel, revision: revision, at: now())
                logger.info(
                    "approval request posted",
                    metadata: [
                        "sg.request": "\(request.id)", "sg.chat": "\(platform.name)", "sg.channel": "\(message.channel)",
                    ])
            }
            return nil
        } catch let failure as ChatDeliveryFailure {
            return try await record(failure, on: message)
        }
    }

    private func record(_ failure: ChatDeliveryFailure, on message: ChatMessage) async throws -> Duration? {
        let metadata: Logger.Metadata = [
            "sg.request": "\(message.approvalRequestID)", "sg.chat": "\(platform.name)", "sg.channel": "\(message.channel)",
            "sg.chat.error": "\(failure.name)", "sg.attempts": "\(message.attempts + 1)",
        ]
        switch failure {
        case .permanent(let error):
            logger.error("the chat platform refused the approval message; it will not be retried", metadata: metadata)
            metrics?.chatMessageFailedPermanently(platform.name)
            try await outbox.chatMessageFailed(message, error: error, permanent: true, retryAt: now(), at: now())
            return nil
        case .rateLimited(let after):
            logger.warning("chat platform rate limit; pausing its calls", metadata: metadata)
            try await outbox.chatMessageFailed(
                message, error: failure.name, permanent: false, retryAt: now().addingTimeInterval(after.seconds), at: now())
            return after
        case .transient(let error):
            logger.warning("chat platform call failed; will retry", metadata: metadata)
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
