/// Where an approval request goes and who may decide it.
///
/// A route matches an approval request when at least one of the request's scopes satisfies every
/// condition the route sets (scope pattern, tier, client); conditions left empty match anything.
/// Routes are tried in order, so stricter routes come first; a request no route matches goes to the
/// default route, which is why every scope set always reaches an approver.
public struct Route: Sendable, Equatable {
    /// The route's name, used in logs, reports and `default_route`.
    public var name: String
    /// Scope patterns; empty matches any scope.
    public var scopePatterns: [GlobPattern]
    /// Tier names; empty matches any tier.
    public var tiers: Set<String>
    /// Client ids; empty matches any client.
    public var clients: Set<String>
    /// The chat channel the request is posted to.
    public var channel: String
    /// Whether each approver who is named as a user also gets the request as a direct message.
    public var directMessages: Bool
    /// Chat user ids who may decide.
    public var approverUsers: [String]
    /// Chat user-group ids whose members may decide.
    public var approverGroups: [String]

    /// Creates a route.
    public init(
        name: String, scopePatterns: [GlobPattern] = [], tiers: Set<String> = [], clients: Set<String> = [],
        channel: String, directMessages: Bool = false, approverUsers: [String], approverGroups: [String] = []
    ) {
        self.name = name
        self.scopePatterns = scopePatterns
        self.tiers = tiers
        self.clients = clients
        self.channel = channel
        self.directMessages = directMessages
        self.approverUsers = approverUsers
        self.approverGroups = approverGroups
    }

    /// Whether one scope of `clientID` satisfies every condition of the route.
    public func matches(scope: String, clientID: String, policy: Policy) -> Bool {
        (clients.isEmpty || clients.contains(clientID))
            && (scopePatterns.isEmpty || scopePatterns.contains { $0.matches(scope) })
            && (tiers.isEmpty || tiers.contains(policy.rule(for: scope, clientID: clientID).tier))
    }

    /// Every channel the request is posted to: the route's channel, then approvers' direct messages.
    public var destinations: [String] {
        [channel] + (directMessages ? approverUsers.filter { $0 != channel } : [])
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

    /// The route for `request`: the first route one of its scopes matches, else the default.
    public func route(for request: ApprovalRequest, policy: Policy) -> Route {
        routes.first { route in
            request.scopes.tokens.contains { route.matches(scope: $0, clientID: request.clientID, policy: policy) }
        } ?? defaultRoute
    }
}
