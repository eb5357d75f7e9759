import Foundation
import ScopeGateCore

/// An approval request as operators see it (admin API and command line): the request, the client's
/// name, and its waiting holds with their justifications. Never the browser binding.
public struct RequestReport: Codable, Sendable {
    /// A hold as operators see it.
    public struct HoldReport: Codable, Sendable {
        /// The hold's id.
        public var id: String
        /// Every scope the request asked for.
        public var requestedScopes: [String]
        /// The requester's justification.
        public var justification: String?
        /// When it was held.
        public var createdAt: Date
        /// When it continued to the IdP after a release.
        public var consumedAt: Date?

        enum CodingKeys: String, CodingKey {
            case id, justification
            case requestedScopes = "requested_scopes", createdAt = "created_at", consumedAt = "consumed_at"
        }
    }

    /// A chat message about the request, and whether it reached its channel.
    public struct NotificationReport: Codable, Sendable {
        /// The platform (`slack`).
        public var platform: String
        /// The channel or user it goes to.
        public var channel: String
        /// `delivered` (up to date), `pending` (being posted or updated, `attempts` failed so far) or
        /// `failed` (refused permanently; see `error`).
        public var status: String
        /// Failed attempts since the last success.
        public var attempts: Int
        /// The platform's last error.
        public var error: String?
        /// When the next attempt is due, while pending.
        public var nextAttemptAt: Date?

        enum CodingKeys: String, CodingKey {
            case platform, channel, status, attempts, error
            case nextAttemptAt = "next_attempt_at"
        }

        /// Builds a report of one outbox entry.
        public init(_ message: ChatMessage) {
            platform = message.platform
            channel = message.channel
            status = message.failedPermanently ? "failed" : message.isCurrent ? "delivered" : "pending"
            attempts = message.attempts
            error = message.lastError
            nextAttemptAt = message.failedPermanently || message.isCurrent ? nil : message.nextAttemptAt
        }
    }

    /// A vote on a request that needs several approvers.
    public struct VoteReport: Codable, Sendable {
        public var voter: String
        public var choice: String
        public var at: Date
        public var reason: String?
        /// The scopes a partial approving vote approved.
        public var scopes: [String]?
    }

    enum CodingKeys: String, CodingKey {
        case id, scopes, state, reason, holds, notifications, votes
        case approvalsNeeded = "approvals_needed", approvedScopes = "approved_scopes"
        case clientID = "client_id", clientName = "client_name", alreadyGranted = "already_granted"
        case createdAt = "created_at", expiresAt = "expires_at", decidedBy = "decided_by", decidedAt = "decided_at"
    }

    /// The approval request's id.
    public var id: String
    /// The client's id.
    public var clientID: String
    /// The client's display name.
    public var clientName: String
    /// The scopes that need a decision.
    public var scopes: [String]
    /// The scopes the client already held when the request opened.
    public var alreadyGranted: [String]
    /// `pending`, `approved`, `approved_once`, `denied` or `expired`.
    public var state: String
    /// When it opened.
    public var createdAt: Date
    /// When it expires if undecided.
    public var expiresAt: Date
    /// For a partial approval, the scopes approved (the others were left out of the released requests).
    public var approvedScopes: [String]?
    /// Who decided.
    public var decidedBy: String?
    /// When.
    public var decidedAt: Date?
    /// Why.
    public var reason: String?
    /// The held requests waiting on it.
    public var holds: [HoldReport]
    /// Its chat messages and their delivery.
    public var notifications: [NotificationReport]
    /// The votes cast so far (requests whose tier needs several approvers).
    public var votes: [VoteReport]
    /// How many approvals its tier needs.
    public var approvalsNeeded: Int

    /// Builds a report.
    public init(
        _ request: ApprovalRequest, holds: [Hold], policy: Policy, notifications: [ChatMessage] = [], votes: [Vote] = []
    ) {
        self.notifications = notifications.map(NotificationReport.init)
        self.votes = votes.map {
            VoteReport(voter: $0.voter, choice: $0.choice.rawValue, at: $0.at, reason: $0.reason, scopes: $0.scopes?.tokens)
        }
        approvalsNeeded = policy.quorum(of: request).approve
        id = request.id
        clientID = request.clientID
        clientName = policy.displayName(of: request.clientID)
        scopes = request.scopes.tokens
        alreadyGranted = request.alreadyGranted.tokens
        state = request.state.rawValue
        createdAt = request.createdAt
        expiresAt = request.expiresAt
        approvedScopes = request.decision?.scopes?.tokens
        decidedBy = request.decision?.actor
        decidedAt = request.decision?.at
        reason = request.decision?.reason
        self.holds = holds.map {
            HoldReport(
                id: $0.id, requestedScopes: $0.requestedScopes.tokens, justification: $0.justification,
                createdAt: $0.createdAt, consumedAt: $0.consumedAt)
        }
    }

    /// The JSON encoder used for reports (ISO 8601 dates, sorted keys).
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return encoder
    }

    /// The matching decoder.
    public static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
