import Foundation

/// One approval request's message in one chat channel, as the outbox tracks it.
///
/// `revision` grows whenever what the message shows changes (a decision, an expiry, a new
/// justification); the store bumps it in the same transaction as the change itself, so no update can
/// be lost between the change and its delivery. A message is due while it was never posted or its
/// `deliveredRevision` is behind, unless it failed permanently.
public struct ChatMessage: Sendable, Equatable {
    /// The approval request shown.
    public var approvalRequestID: String
    /// The chat platform (`slack`).
    public var platform: String
    /// The channel (or user, for a direct message) it goes to.
    public var channel: String
    /// The platform's id of the posted message (Slack's `ts`), once posted.
    public var messageID: String?
    /// The channel the platform reports for the posted message (a direct message's channel differs
    /// from the user id it was sent to); updates go there.
    public var postedChannel: String?
    /// The revision of the content the message should show.
    public var revision: Int64
    /// The revision last delivered (0: nothing yet).
    public var deliveredRevision: Int64
    /// Failed attempts since the last success.
    public var attempts: Int
    /// When the next attempt may be made.
    public var nextAttemptAt: Date
    /// The last error, as the platform named it.
    public var lastError: String?
    /// Whether the platform refused in a way retrying cannot fix (`channel_not_found`, `invalid_auth`).
    public var failedPermanently: Bool

    /// Creates a record.
    public init(
        approvalRequestID: String, platform: String, channel: String, messageID: String? = nil,
        postedChannel: String? = nil, revision: Int64 = 1, deliveredRevision: Int64 = 0, attempts: Int = 0,
        nextAttemptAt: Date, lastError: String? = nil, failedPermanently: Bool = false
    ) {
        self.approvalRequestID = approvalRequestID
        self.platform = platform
        self.channel = channel
        self.messageID = messageID
        self.postedChannel = postedChannel
        self.revision = revision
        self.deliveredRevision = deliveredRevision
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError
        self.failedPermanently = failedPermanently
    }

    /// Whether the platform has the newest content.
    public var isCurrent: Bool { messageID != nil && deliveredRevision >= revision }
}

/// The persistent outbox through which chat messages are posted and kept up to date, and the record
/// of chat interactions already acted on. Every method is atomic; failures are thrown.
public protocol ChatOutboxStore: Sendable {
    /// Pending approval requests that have no message on `platform` yet.
    func requestsAwaitingMessage(platform: String) async throws -> [ApprovalRequest]
    /// Adds the messages of a pending request, one per channel; does nothing if the request is no longer
    /// pending or already has them. Returns whether messages were added.
    func addChatMessages(approvalRequestID: String, platform: String, channels: [String], at date: Date) async throws
        -> Bool
    /// Messages that need a post or an update and may be attempted at `date`, oldest request first.
    func dueChatMessages(platform: String, at date: Date, limit: Int) async throws -> [ChatMessage]
    /// The messages of one approval request.
    func chatMessages(approvalRequestID: String) async throws -> [ChatMessage]
    /// Records a delivery of `revision` (and, for a first post, the message's id and channel).
    func chatMessageDelivered(
        _ message: ChatMessage, messageID: String, postedChannel: String, revision: Int64, at date: Date
    ) async throws
    /// Records a failed attempt at `date`: retried at `retryAt`, or never again when `permanent`.
    func chatMessageFailed(_ message: ChatMessage, error: String, permanent: Bool, retryAt: Date, at date: Date) async throws
    /// Records an interaction by its platform id; false when it was seen before (a replay or a retry).
    func firstSeenInteraction(platform: String, id: String, at date: Date) async throws -> Bool
}
