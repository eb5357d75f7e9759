/// Where one route reaches its approvers on one chat platform, and who of them may decide.
public struct ChatReach: Sendable, Equatable {
    /// The channel (Slack channel id, Teams channel or chat id) the request is posted to.
    public var channel: String
    /// Whether each approver who is named as a user also gets the request as a direct message.
    public var directMessages: Bool
    /// The platform's user ids of those who may decide (Slack user ids, Azure AD object ids).
    public var approverUsers: [String]
    /// Groups whose members may decide (Slack user-group ids).
    public var approverGroups: [String]

    /// Creates a reach.
    public init(channel: String, directMessages: Bool = false, approverUsers: [String], approverGroups: [String] = []) {
        self.channel = channel
        self.directMessages = directMessages
        self.approverUsers = approverUsers
        self.approverGroups = approverGroups
    }

    /// The reach of a route on ScopeGate's approval page (people who sign in at the IdP), stored with
    /// the chat platforms' reaches under this name.
    public static let approvalPage = "approval_page"
    /// The channel of a Teams reach that posts through a Workflows webhook: the prefix, then the route's
    /// name (the webhook's URL is a secret kept in the configuration, never in the store).
    public static let workflowPrefix = "workflow:"

    /// Every channel the request is posted to: the channel, then approvers' direct messages.
    public var destinations: [String] {
        [channel] + (directMessages ? approverUsers.filter { $0 != channel } : [])
    }
}

/// Where an approval request goes and who may decide it.
///
/// A route matches an approval request when at least one of the request's scopes satisfies every
/// condition the route sets (scope pattern, tier, client); conditions left empty match anything.
/// Routes are tried in order, so stricter routes come first; a request no route matches goes to the
/// default route, which is why every scope set always reaches an approver. The route is chosen once,
/// whatever the platform: each chat platform then posts to the route's reach on it, if it has one.
public struct Route: Sendable, Equatable {
    /// The route's name, used in logs, reports and `default_route`.
    public var name: String
    /// Scope patterns; empty matches any scope.
    public var scopePatterns: [GlobPattern]
    /// Tier names; empty matches any tier.
    public var tiers: Set<String>
    /// Client ids; empty matches any client.
    public var clients: Set<String>
    /// The route's reach on each chat platform (`slack`, `teams`), by platform.
    public var reaches: [String: ChatReach]

    /// Creates a route.
    public init(
        name: String, scopePatterns: [GlobPattern] = [], tiers: Set<String> = [], clients: Set<String> = [],
        reaches: [String: ChatReach]
    ) {
        self.name = name
        self.scopePatterns = scopePatterns
        self.tiers = tiers
        self.clients = clients
        self.reaches = reaches
    }

    /// Whether one scope of `clientID` satisfies every condition of the route.
    public func matches(scope: String, clientID: String, policy: Policy) -> Bool {
        (clients.isEmpty || clients.contains(clientID))
            && (scopePatterns.isEmpty || scopePatterns.contains { $0.matches(scope) })
            && (tiers.isEmpty || tiers.contains(policy.rule(for: scope, clientID: clientID).tier))
    }

    /// The route's reach on `platform`, if it posts there.
    public func reach(on platform: String) -> ChatReach? { reaches[platform] }

    /// Every destination on every platform, `platform:channel`, for reports.
    public var allDestinations: [String] {
        reaches.keys.sorted().flatMap { platform in reaches[platform]!.destinations.map { "\(platform):\($0)" } }
    }

    /// Every approver on every platform, `platform:id`, for reports.
    public var allApprovers: [String] {
        reaches.keys.sorted().flatMap { platform in
            let reach = reaches[platform]!
            return (reach.approverUsers + reach.approverGroups).map { "\(platform):\($0)" }
        }
    }
}

/// The ordered routes and the default one.
public struct Routing: Sendable, Equatable {
    /// Routes in the order they are tried.
    public var routes: [Route]
    /// The route of a request that no route matches.
    public var defaultRoute: Route

    /// Creates the routing table.
    public init(routes: [Route], defaultRoute: Route) {
        self.routes = routes
        self.defaultRoute = defaultRoute
    }

    /// Every route whose approvers may decide `request`: its own, and the route it was escalated to.
    public func routes(for request: ApprovalRequest, policy: Policy) -> [Route] {
        let own = route(for: request, policy: policy)
        guard let escalated = request.escalatedTo, escalated != own.name,
            let route = (routes + [defaultRoute]).first(where: { $0.name == escalated })
        else { return [own] }
        return [own, route]
    }

    /// A route by its name.
    public func route(named name: String) -> Route? { (routes + [defaultRoute]).first { $0.name == name } }

    /// The route for `request`: the first route one of its scopes matches, else the default.
    public func route(for request: ApprovalRequest, policy: Policy) -> Route {
        routes.first { route in
            request.scopes.tokens.contains { route.matches(scope: $0, clientID: request.clientID, policy: policy) }
        } ?? defaultRoute
    }
}
