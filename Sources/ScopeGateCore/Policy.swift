import Foundation

/// The organisation's policy: how sensitive each scope is, which scopes are decided automatically, and
/// which clients ScopeGate knows. Built from the configuration file; immutable at run time.
public struct Policy: Sendable {
    /// What happens to a scope without asking anyone.
    public enum Auto: String, Sendable, Codable {
        /// Granted by policy; nobody is asked.
        case approve
        /// Refused by policy; the request ends with `access_denied`.
        case deny
        /// An approver must decide.
        case ask
    }

    /// A sensitivity level, with the lifetime of the grants approved at that level.
    public struct Tier: Sendable, Equatable {
        /// The tier's name, as used in rules (`low`, `elevated`, `critical`).
        public var name: String
        /// How long an approved grant lasts; `nil` means until revoked.
        public var grantLifetime: Duration?
        /// How many distinct approvers must approve a request of this tier; the last needed vote decides.
        public var quorum: Int
        /// How many distinct approvers must deny it; one, unless the tier says otherwise.
        public var denyQuorum: Int
        /// After how long unanswered a request of this tier is escalated, and to which route.
        public var escalation: (after: Duration, route: String)?
        /// Whether approvers may approve with standing grants, and approve once.
        public var allowsStanding = true
        public var allowsOnce = true
        /// After how long unanswered the approvers of a request of this tier are reminded of it.
        public var remindAfter: Duration?
        /// The durations approvers may choose for a standing grant, shortest first (each within
        /// `grantLifetime`); empty: only the tier's own lifetime.
        public var grantDurations: [Duration] = []
        /// Where approvers of this tier must confirm with a fresh sign-in at the IdP: a click in chat
        /// then decides nothing, and the approval page takes a decision only from a sign-in that recent.
        public var stepUp: StepUp?

        /// Creates a tier.
        public init(
            name: String, grantLifetime: Duration?, quorum: Int = 1, denyQuorum: Int = 1,
            escalation: (after: Duration, route: String)? = nil
        ) {
            self.name = name
            self.grantLifetime = grantLifetime
            self.quorum = max(1, quorum)
            self.denyQuorum = max(1, denyQuorum)
            self.escalation = escalation
        }

        public static func == (a: Tier, b: Tier) -> Bool {
            a.name == b.name && a.grantLifetime == b.grantLifetime && a.quorum == b.quorum && a.denyQuorum == b.denyQuorum
                && a.stepUp == b.stepUp && a.grantDurations == b.grantDurations && a.remindAfter == b.remindAfter
                && a.allowsStanding == b.allowsStanding && a.allowsOnce == b.allowsOnce
                && a.escalation?.after == b.escalation?.after && a.escalation?.route == b.escalation?.route
        }
    }

    /// A rule for the permissions of one kind that its pattern matches.
    public struct ScopeRule: Sendable, Equatable {
        /// Which permissions the rule covers: their full names (`@resource:https://…` for a resource).
        public var pattern: GlobPattern
        /// The kind of permission the rule covers: a scope rule never matches a resource, and so on.
        public var kind: PermissionKind
        /// What happens without asking.
        public var auto: Auto
        /// The tier's name.
        public var tier: String
        /// What the scope lets the app do, in words the requester and approvers understand.
        public var description: String?
        /// Where the rule comes from, for explanations (`scopes[2]`, `clients[0].scopes[1]`, or `default`).
        public var origin: String

        /// Creates a rule.
        public init(
            pattern: GlobPattern, kind: PermissionKind = .scope, auto: Auto, tier: String, description: String? = nil,
            origin: String
        ) {
            self.pattern = pattern
            self.kind = kind
            self.auto = auto
            self.tier = tier
            self.description = description
            self.origin = origin
        }
    }

    /// A client (an OAuth `client_id`) that ScopeGate knows.
    public struct Client: Sendable, Equatable {
        /// The `client_id`.
        public var id: String
        /// The name people see.
        public var name: String
        /// Who owns the app, shown to approvers.
        public var owner: String?
        /// Where the owner is told of standing grants and revocations, by platform (`slack`: a channel
        /// or user id; `teams`: a channel or group chat id).
        public var ownerNotify: [String: String] = [:]
        /// The redirect URIs registered for the client; denials are sent only to these.
        public var redirectURIs: [String]
        /// Rules that apply to this client before the global ones.
        public var rules: [ScopeRule]
        /// What the IdP grants when the client sends no `scope`; `nil` refuses such requests.
        public var defaultScopes: ScopeSet?
        /// How the organisation registered the client (`clients[].registration`: `admin`, `dynamic`,
        /// `marketplace`, … as it names its sources); automation rules can match on it.
        public var registration: String?
        /// When the client was registered (`clients[].registered`); without it, a client's age counts
        /// from ScopeGate's first approval request of it.
        public var registeredAt: Date?

        /// Creates a client.
        public init(
            id: String, name: String, owner: String? = nil, redirectURIs: [String], rules: [ScopeRule] = [],
            defaultScopes: ScopeSet? = nil
        ) {
            self.id = id
            self.name = name
            self.owner = owner
            self.redirectURIs = redirectURIs
            self.rules = rules
            self.defaultScopes = defaultScopes
        }
    }

    /// Global rules, first match wins.
    public var rules: [ScopeRule]
    /// Known clients by `client_id`.
    public var clients: [String: Client] {
        didSet { someClientHasRules = clients.values.contains { !$0.rules.isEmpty } }
    }
    /// Whether any client has rules of its own: when none has, evaluation skips looking the client up.
    private(set) var someClientHasRules: Bool
    /// Tiers by name.
    public var tiers: [String: Tier]
    /// Each tier's place in the configuration's list: later tiers are the more sensitive.
    public var tierOrder: [String: Int]
    /// The tier of a scope that no rule matches.
    public var defaultTier: String

    /// A request's tier: its highest permission's, in the order the configuration lists the tiers.
    public func tier(of request: ApprovalRequest) -> String {
        request.scopes.tokens.map { rule(for: $0, clientID: request.clientID).tier }
            .max { (tierOrder[$0] ?? -1) < (tierOrder[$1] ?? -1) } ?? defaultTier
    }

    /// Which approvals a request's tier allows: (standing grants, approve once).
    public func allowedApprovals(of request: ApprovalRequest) -> (standing: Bool, once: Bool) {
        let tier = tiers[tier(of: request)]
        return (tier?.allowsStanding ?? true, tier?.allowsOnce ?? true)
    }

    /// How approvers of a request confirm who they are, where its tier asks for a fresh sign-in.
    public func stepUp(of request: ApprovalRequest) -> StepUp? {
        tiers[tier(of: request)]?.stepUp
    }

    /// The votes a request needs: its tier's quorums.
    public func quorum(of request: ApprovalRequest) -> Quorum {
        let tier = tiers[tier(of: request)]
        return Quorum(approve: tier?.quorum ?? 1, deny: tier?.denyQuorum ?? 1)
    }
    /// How long an approval request waits for a decision before it expires.
    public var approvalTimeout: Duration
    /// Rules that decide approval requests as they open, in order.
    public var automation: [AutomationRule]
    /// Shadow mode, for rolling ScopeGate out: the clients (or, with `shadowAll`, every client) whose
    /// requests the policy is evaluated for and recorded, but never held or refused by it.
    public var shadowClients: Set<String> = []
    public var shadowAll = false
    /// Whether the waiting page signs requesters in at the IdP, so approvers see who asks, nobody
    /// approves their own request, and a browser's request is approved only once its requester is known.
    public var identifyRequesters = false

    /// Whether `clientID`'s requests pass whatever the policy would do.
    public func isShadowed(_ clientID: String) -> Bool { shadowAll || shadowClients.contains(clientID) }

    /// Creates a policy.
    public init(
        rules: [ScopeRule], clients: [Client], tiers: [Tier], defaultTier: String, approvalTimeout: Duration,
        automation: [AutomationRule] = []
    ) {
        self.automation = automation
        self.rules = rules
        self.clients = Dictionary(clients.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.someClientHasRules = clients.contains { !$0.rules.isEmpty }
        self.tiers = Dictionary(tiers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.tierOrder = Dictionary(tiers.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { first, _ in first })
        self.defaultTier = defaultTier
        self.approvalTimeout = approvalTimeout
    }

    /// The rule that decides `scope` for `clientID`: the client's own rules first, then the global
    /// ones; a scope nobody wrote a rule for must be asked about.
    public func rule(for scope: String, clientID: String) -> ScopeRule {
        let clientRules = rules(of: clientID)
        return switch match(for: scope, clientRules: clientRules) {
        case .client(let index): clientRules[index]
        case .global(let index): rules[index]
        case nil: ScopeRule(pattern: GlobPattern(scope), kind: PermissionKind.of(scope), auto: .ask, tier: defaultTier, origin: "default")
        }
    }

    /// `clientID`'s own rules (none for an unknown client; no lookup when no client has any).
    func rules(of clientID: String) -> [ScopeRule] {
        someClientHasRules ? clients[clientID]?.rules ?? [] : []
    }

    /// What happens to `scope` without asking, under `clientRules` (a client's own rules) and the global ones.
    func auto(for scope: String, clientRules: [ScopeRule]) -> Auto {
        switch match(for: scope, clientRules: clientRules) {
        case .client(let index): clientRules[index].auto
        case .global(let index): rules[index].auto
        case nil: .ask
        }
    }

    /// Where the first rule matching a permission is: among a client's rules or the global ones.
    enum RuleMatch { case client(Int), global(Int) }

    /// The first of `clientRules`, then of the global rules, that matches `scope` (found by position,
    /// so that evaluating a request copies no rule).
    func match(for scope: String, clientRules: [ScopeRule]) -> RuleMatch? {
        let kind = PermissionKind.of(scope)
        // Read through buffers, the scope's bytes reached once: indexing the arrays, or matching
        // `String`s, copied each rule (and retained its strings) on every request.
        var scope = scope
        return scope.withUTF8 { scope in
            if let index = Self.firstMatch(in: clientRules, kind: kind, scope: scope) { return .client(index) }
            if let index = Self.firstMatch(in: rules, kind: kind, scope: scope) { return .global(index) }
            return nil
        }
    }

    private static func firstMatch(in rules: [ScopeRule], kind: PermissionKind, scope: UnsafeBufferPointer<UInt8>) -> Int? {
        rules.withUnsafeBufferPointer { rules in
            for index in rules.indices where rules[index].kind == kind && rules[index].pattern.matches(utf8: scope) {
                return index
            }
            return nil
        }
    }

    /// Deny rules that an earlier rule of the same kind, in the same list, takes some permissions from:
    /// the first matching rule wins, so a permission matching both (`admin:read` under `*:read` then
    /// `admin:*` deny) is not denied. Each is said in words for `config check`, naming both rules.
    public func shadowedDenials() -> [String] {
        var warnings: [String] = []
        let lists = [rules] + clients.keys.sorted().compactMap { clients[$0]?.rules }
        for list in lists {
            for (index, rule) in list.enumerated() where rule.auto == .deny {
                for earlier in list[..<index] where earlier.kind == rule.kind && earlier.auto != .deny && earlier.pattern.overlaps(rule.pattern) {
                    warnings.append(
                        "\(rule.origin) (deny '\(rule.pattern)') is shadowed by the earlier \(earlier.origin) ('\(earlier.pattern)', \(earlier.auto.rawValue)): a permission matching both takes the earlier rule; put the deny rule first")
                }
            }
        }
        return warnings
    }

    /// The name shown for a client, falling back to its id.
    public func displayName(of clientID: String) -> String {
        clients[clientID]?.name ?? clientID
    }

    /// How long a grant for `scope` lasts, from its tier.
    public func grantLifetime(for scope: String, clientID: String) -> Duration? {
        tiers[rule(for: scope, clientID: clientID).tier]?.grantLifetime
    }

    /// The durations an approver may choose for `request`'s grants: its tier's, none beyond the
    /// shortest lifetime of its scopes' tiers.
    public func grantDurations(of request: ApprovalRequest) -> [Duration] {
        let limit = request.scopes.tokens.compactMap { grantLifetime(for: $0, clientID: request.clientID) }.min()
        return (tiers[tier(of: request)]?.grantDurations ?? []).filter { limit == nil || $0 <= limit! }
    }
}
