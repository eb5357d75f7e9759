import Foundation

/// What a new hold needs stored; the store assigns ids and finds or opens the approval request.
public struct HoldDraft: Sendable, Equatable {
    /// The client.
    public var clientID: String
    /// SHA-256 (hex) of the browser-binding cookie's value.
    public var binderHash: String
    /// How the browser sent the request.
    public var method: AuthorizationRequest.Method
    /// The request as it will be forwarded.
    public var encodedParameters: String
    /// Everything the request asks for.
    public var requestedScopes: ScopeSet
    /// The part that needs a decision; the approval request is keyed by client and this set.
    public var unapproved: ScopeSet
    /// The part the client already holds.
    public var alreadyGranted: ScopeSet
    /// For the audit log: the policy rule that sent each unapproved scope to approvers
    /// (`scope=origin`), and the route the request takes.
    public var rules: [String]
    public var route: String?

    /// Creates a draft.
    public init(
        clientID: String, binderHash: String, method: AuthorizationRequest.Method, encodedParameters: String,
        requestedScopes: ScopeSet, unapproved: ScopeSet, alreadyGranted: ScopeSet, rules: [String] = [], route: String? = nil
    ) {
        self.rules = rules
        self.route = route
        self.clientID = clientID
        self.binderHash = binderHash
        self.method = method
        self.encodedParameters = encodedParameters
        self.requestedScopes = requestedScopes
        self.unapproved = unapproved
        self.alreadyGranted = alreadyGranted
    }
}

/// A decided approval request, in the order decisions were stored; `cursor` only grows.
public struct DecisionEvent: Sendable, Equatable {
    /// Position in the store's decision log.
    public var cursor: Int64
    /// The approval request that was decided.
    public var approvalRequestID: String

    /// Creates an event.
    public init(cursor: Int64, approvalRequestID: String) {
        self.cursor = cursor
        self.approvalRequestID = approvalRequestID
    }
}

/// The port through which the domain reads and writes grants, holds and approval requests.
///
/// Implementations make each method atomic. `decide` is a compare-and-set: of two concurrent
/// decisions on one request exactly one succeeds, and the grants it carries are written in the same
/// transaction. Any failure is thrown; callers fail closed.
public protocol GateStore: Sendable {
    /// The client's grants in force at `date` for any of `scopes`.
    func activeGrants(clientID: String, among scopes: ScopeSet, at date: Date) async throws -> [Grant]
    /// Every grant in force at `date`, for listings.
    func allActiveGrants(at date: Date) async throws -> [Grant]
    /// A number that changes whenever any grant is written or removed (by any process), so that a
    /// cached copy of the grants can tell cheaply whether it is still current.
    func grantsVersion() async throws -> Int64
    /// Removes a grant on behalf of `actor`; returns whether there was one.
    func revokeGrant(clientID: String, scope: String, actor: String, at date: Date) async throws -> Bool
    /// Stores a new hold, attached to the pending approval request for the same client and unapproved
    /// scopes, or to a new one expiring at `expiresAt`. `opened` tells whether the request is new.
    func openHold(_ draft: HoldDraft, at date: Date, expiresAt: Date) async throws -> (
        hold: Hold, request: ApprovalRequest, opened: Bool
    )
    /// A hold by its id.
    func hold(id: String) async throws -> Hold?
    /// The holds attached to an approval request.
    /// The holds whose binding starts with `prefix`, oldest first.
    func holds(binderPrefix prefix: String) async throws -> [Hold]
    func holds(approvalRequestID: String) async throws -> [Hold]
    /// An approval request by its id.
    func approvalRequest(id: String) async throws -> ApprovalRequest?
    /// Approval requests, newest first, optionally only those in `states`.
    func approvalRequests(states: Set<ApprovalRequest.State>?) async throws -> [ApprovalRequest]
    /// Moves a pending request to the decision's state and writes `grants`, atomically. Throws
    /// `GateError(.alreadyDecided)` when the request is no longer pending.
    func decide(_ requestID: String, _ decision: Decision, grants: [Grant]) async throws -> ApprovalRequest
    /// Records `vote` on a pending request that needs `quorum` distinct votes, and, when it is the last
    /// vote needed, decides the request in the same transaction: denied, or approved with `grants`
    /// (approved once, without them, when any approving vote was for once). Throws
    /// `GateError(.alreadyDecided)` when the request is no longer pending and
    /// `GateError(.alreadyVoted)` when this voter already voted.
    func vote(_ requestID: String, _ vote: Vote, quorum: Quorum, grants: [Grant]) async throws -> VoteResult
    /// Marks a pending, not yet escalated request as escalated to `route`, and adds its messages to
    /// `channels` (by platform), atomically; false when it is no longer pending or already escalated.
    func escalate(_ requestID: String, to route: String, channels: [String: [String]], at date: Date) async throws -> Bool
    /// Marks a pending request whose approvers have not been reminded yet as reminded; false when it is
    /// no longer pending or was reminded before (by this process or another).
    func markReminded(_ requestID: String, at date: Date) async throws -> Bool
    /// The votes on a request, oldest first.
    func votes(approvalRequestID: String) async throws -> [Vote]
    /// Sets the requester's justification on a hold.
    func setJustification(holdID: String, _ text: String) async throws
    /// Records who is asking on a hold (once: a hold's requester never changes), audited; false when
    /// the hold already had one.
    func setRequester(holdID: String, _ requester: Requester, at date: Date) async throws -> Bool
    /// This browser's holds for `clientID` whose approval requests released them at or after
    /// `decidedSince`, oldest first.
    func releasedHolds(binderHash: String, clientID: String, decidedSince: Date) async throws -> [Hold]
    /// Records when a released hold first continued to the IdP; false when it already had.
    func markContinued(holdID: String, at date: Date) async throws -> Bool
    /// Records when a denied or expired hold was first sent back to the app; false when it already was.
    func markRejected(holdID: String, at date: Date) async throws -> Bool
    /// Appends an event that comes with no state change (a refused request, a policy denial, the
    /// configuration loaded) to the audit log, if the store keeps one.
    func recordAudit(_ event: AuditEvent, at date: Date) async throws
    /// Records, once each, the grants that lapsed at or before `date` (audit `grant.expired`); returns
    /// how many.
    func recordLapsedGrants(at date: Date) async throws -> Int
    /// Pending requests whose deadline is at or before `date`.
    func pendingRequests(expiringBy date: Date) async throws -> [ApprovalRequest]
    /// Decisions stored after `cursor`, oldest first.
    func decisionEvents(after cursor: Int64) async throws -> [DecisionEvent]
    /// When the first approval request of `clientID` was opened, if there was one: how long ScopeGate
    /// has known the client, for automation on a client's age.
    func firstRequestDate(clientID: String) async throws -> Date?
    /// The cursor of the newest stored decision (0 when there is none).
    func latestDecisionCursor() async throws -> Int64
    /// Throws unless a write can be committed now (for readiness: a store that can only be read
    /// cannot hold, decide or audit anything).
    func checkWritable() async throws
}
