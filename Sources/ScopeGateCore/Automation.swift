import Foundation

/// A rule that decides whole approval requests as they open, before any approver is asked: approve
/// (or deny) a client's request when every scope it asks about is in the listed tiers and matches the
/// listed patterns. Rules are tried in order; the first that matches decides, in its own name
/// (`policy:automation/{name}`), which the audit log records with the decision.
public struct AutomationRule: Sendable, Equatable {
    public enum Outcome: String, Sendable {
        case approve
        case deny
    }

    /// The rule's name, unique; the decision's actor names it.
    public var name: String
    /// What it decides.
    public var outcome: Outcome
    /// Client ids it applies to; empty: every client.
    public var clients: Set<String>
    /// Tiers every scope must be in; empty: any tier.
    public var tiers: Set<String>
    /// Patterns every scope must match one of; empty: any scope.
    public var scopePatterns: [GlobPattern]
    /// Groups (as the IdP names them) the requesters must belong to, one of them each; empty: anyone.
    /// A rule with groups decides only once every browser waiting on the request has signed in
    /// (`approvals.identify_requesters`), and never a request a device or a back-channel call waits on.
    public var requesterGroups: Set<String> = []
    /// Where it is written (`automation[2]`).
    public var origin: String

    public init(
        name: String, outcome: Outcome, clients: Set<String> = [], tiers: Set<String> = [], scopePatterns: [GlobPattern] = [],
        origin: String
    ) {
        self.name = name
        self.outcome = outcome
        self.clients = clients
        self.tiers = tiers
        self.scopePatterns = scopePatterns
        self.origin = origin
    }

    /// The actor of the decisions it makes.
    public var actor: String { "policy:automation/\(name)" }

    /// Whether it decides `request` under `policy`, whose held requests are `holds` (their requesters
    /// matter to a rule with groups only).
    public func matches(_ request: ApprovalRequest, policy: Policy, holds: [Hold] = []) -> Bool {
        guard clients.isEmpty || clients.contains(request.clientID), !request.scopes.isEmpty else { return false }
        if !requesterGroups.isEmpty {
            let waiting = holds.filter { $0.consumedAt == nil }
            guard !waiting.isEmpty,
                waiting.allSatisfy({ hold in hold.requester.map { !requesterGroups.isDisjoint(with: $0.groups) } ?? false })
            else { return false }
        }
        return request.scopes.tokens.allSatisfy { scope in
            (tiers.isEmpty || tiers.contains(policy.rule(for: scope, clientID: request.clientID).tier))
                && (scopePatterns.isEmpty || scopePatterns.contains { $0.matches(scope) })
        }
    }
}

extension Policy {
    /// The first automation rule that decides `request`, whose held requests are `holds`, if any.
    public func automation(for request: ApprovalRequest, holds: [Hold] = []) -> AutomationRule? {
        automation.first { $0.matches(request, policy: self, holds: holds) }
    }
}
