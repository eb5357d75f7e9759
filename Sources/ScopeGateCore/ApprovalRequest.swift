import Foundation

/// One open question to approvers: may this client have these scopes? Every hold that asks the same
/// question attaches to the same approval request, so approvers are asked once.
public struct ApprovalRequest: Sendable, Equatable, Codable, Identifiable {
    /// Where an approval request is in its life. Only `pending` can change, and only once.
    public enum State: String, Sendable, Codable, CaseIterable {
        /// Waiting for a decision.
        case pending
        /// Approved with standing grants.
        case approved
        /// Approved for the attached holds only; no grant stands.
        case approvedOnce = "approved_once"
        /// Denied by an approver.
        case denied
        /// Nobody decided in time.
        case expired

        /// Whether the attached holds may continue to the IdP.
        public var releases: Bool { self == .approved || self == .approvedOnce }
    }

    /// The request's id, shown to approvers and used on the command line.
    public var id: String
    /// The client that asks.
    public var clientID: String
    /// The scopes that need a decision.
    public var scopes: ScopeSet
    /// The scopes the client already holds, shown to approvers for context.
    public var alreadyGranted: ScopeSet
    /// The current state.
    public var state: State
    /// When the request was opened.
    public var createdAt: Date
    /// When an undecided request expires.
    public var expiresAt: Date
    /// The decision, once made.
    public var decision: Decision?
    /// The route it was escalated to, unanswered, and when; its approvers may then decide it too.
    public var escalation: (route: String, at: Date)? {
        get { escalatedTo.flatMap { route in escalatedAt.map { (route, $0) } } }
        set {
            escalatedTo = newValue?.route
            escalatedAt = newValue?.at
        }
    }
    public var escalatedTo: String?
    public var escalatedAt: Date?
    /// When its approvers were reminded of it, unanswered.
    public var remindedAt: Date?

    /// Creates a pending approval request.
    public init(
        id: String, clientID: String, scopes: ScopeSet, alreadyGranted: ScopeSet, createdAt: Date, expiresAt: Date
    ) {
        self.id = id
        self.clientID = clientID
        self.scopes = scopes
        self.alreadyGranted = alreadyGranted
        self.state = .pending
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.decision = nil
    }

    /// What a release lets through: every scope asked for, or the part an approval narrowed it to.
    public var approvedScopes: ScopeSet {
        guard state.releases else { return ScopeSet([String]()) }
        return decision?.scopes ?? scopes
    }

    /// The scopes asked for that the approval left out: nothing unless the approval was partial.
    public var withheldScopes: ScopeSet {
        guard state.releases, let approved = decision?.scopes else { return ScopeSet([String]()) }
        return scopes.subtracting(approved)
    }

    /// Whether approvers may approve part of the request: every permission it asks about is a plain
    /// scope, which a held request can be released without (a resource, an audience, authorization
    /// details or a claim cannot be taken out of a request that way).
    public var isNarrowable: Bool {
        scopes.tokens.count > 1 && scopes.allSatisfy { PermissionKind.of($0) == .scope }
    }

    /// Applies a decision: the state machine's only transition. A request that is no longer pending
    /// keeps its first decision, and an expiry before the deadline is refused. A partial approval
    /// must approve some of the scopes asked for, and nothing else.
    public func applying(_ decision: Decision) throws(GateError) -> ApprovalRequest {
        guard state == .pending else {
            throw GateError(.alreadyDecided, "approval request \(id) was already \(state.rawValue)")
        }
        if let part = decision.scopes {
            guard decision.outcome.releases, !part.isEmpty, part.isSubset(of: scopes), isNarrowable || part == scopes
            else {
                throw GateError(.invalidRequest, "a partial approval approves some of the scopes asked for (\(scopes)), and nothing else")
            }
        }
        if decision.outcome == .expired, decision.at < expiresAt {
            throw GateError(.invalidRequest, "approval request \(id) does not expire before \(expiresAt)")
        }
        var next = self
        next.state = decision.outcome
        next.decision = decision
        if decision.scopes == scopes { next.decision?.scopes = nil }
        return next
    }
}

/// A decision on an approval request: who made it, when, and what it was.
public struct Decision: Sendable, Equatable, Codable {
    /// The state the decision moves the request to (never `pending`).
    public var outcome: ApprovalRequest.State
    /// Who decided: `cli:alice`, `admin:ops-token`, `policy:expiry`, `slack:T1/U2`.
    public var actor: String
    /// When.
    public var at: Date
    /// Why, in the approver's words or the system's.
    public var reason: String?
    /// For a partial approval, the scopes approved; `nil` when the decision covers every scope asked for.
    public var scopes: ScopeSet?

    /// Creates a decision.
    public init(outcome: ApprovalRequest.State, actor: String, at: Date, reason: String? = nil, scopes: ScopeSet? = nil) {
        precondition(outcome != .pending, "a decision cannot move a request back to pending")
        self.outcome = outcome
        self.actor = actor
        self.at = at
        self.reason = reason
        self.scopes = scopes
    }
}
