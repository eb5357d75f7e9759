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
    /// How the client must have been registered, one of these (`ClientStanding.registration`); empty:
    /// any way.
    public var registrations: Set<String> = []
    /// How long the client must have been known for the rule to apply (`client_min_age`)…
    public var minimumClientAge: Duration?
    /// …and for how long at most (`client_max_age`: new clients). A rule with either never applies to
    /// a client whose age is unknown.
    public var maximumClientAge: Duration?
    /// Where it is written (`automation[2]`).
    public var origin: String

    /// Whether the rule looks at a client's age (which may cost a store read to learn).
    public var looksAtClientAge: Bool { minimumClientAge != nil || maximumClientAge != nil }

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
    /// A rule with client conditions (registration, age) is judged on `client`, as known at `now`;
    /// without `client` it does not apply.
    public func matches(
        _ request: ApprovalRequest, policy: Policy, holds: [Hold] = [], client: ClientStanding? = nil, at now: Date = Date()
    ) -> Bool {
        guard clients.isEmpty || clients.contains(request.clientID), !request.scopes.isEmpty else { return false }
        if !registrations.isEmpty || looksAtClientAge {
            guard let client, registrations.isEmpty || registrations.contains(client.registration) else { return false }
            if looksAtClientAge {
                guard let since = client.knownSince else { return false }
                let age = now.timeIntervalSince(since)
                if let minimum = minimumClientAge, age < Double(minimum.components.seconds) { return false }
                if let maximum = maximumClientAge, age >= Double(maximum.components.seconds) { return false }
            }
        }
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

/// What automation knows of a client besides its id: how it was registered and since when it is known.
public struct ClientStanding: Sendable, Equatable {
    /// The client's `clients[].registration`; `listed` for a configured client without one, and
    /// `unlisted` for a client the configuration does not name (registered at the IdP by other means).
    public var registration: String
    /// Since when it is known: `clients[].registered`, or ScopeGate's first approval request of it.
    public var knownSince: Date?

    public init(registration: String, knownSince: Date?) {
        self.registration = registration
        self.knownSince = knownSince
    }

    /// The registration label of a configured client without one, and of a client not configured.
    public static let listed = "listed"
    public static let unlisted = "unlisted"
}

extension Policy {
    /// The first automation rule that decides `request`, whose held requests are `holds`, for a client
    /// standing as `client` at `now`, if any.
    public func automation(
        for request: ApprovalRequest, holds: [Hold] = [], client: ClientStanding? = nil, at now: Date = Date()
    ) -> AutomationRule? {
        automation.first { $0.matches(request, policy: self, holds: holds, client: client, at: now) }
    }

    /// Whether any automation rule looks at a client's registration or age.
    public var automationLooksAtClients: Bool {
        automation.contains { !$0.registrations.isEmpty || $0.looksAtClientAge }
    }

    /// How `clientID` stands, with `firstRequest` (ScopeGate's first approval request of it) as its age
    /// when the configuration gives no registration date.
    public func standing(of clientID: String, firstRequest: Date?) -> ClientStanding {
        let configured = clients[clientID]
        return ClientStanding(
            registration: configured.map { $0.registration ?? ClientStanding.listed } ?? ClientStanding.unlisted,
            knownSince: configured?.registeredAt ?? firstRequest)
    }
}
