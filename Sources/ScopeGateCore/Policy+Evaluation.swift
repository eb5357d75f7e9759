import Foundation

extension Policy {
    /// The outcome of evaluating a request's scopes against the policy and the client's grants.
    public enum Evaluation: Sendable, Equatable {
        /// Every scope is granted or approved by policy: forward.
        case allow
        /// A rule denies some scopes: end the request with `access_denied`.
        case deny(ScopeSet)
        /// Some scopes need an approver; `granted` are already covered.
        case hold(unapproved: ScopeSet, granted: ScopeSet)
    }

    /// The permissions a request stands for: the scopes it names, with the client's configured default
    /// scopes when some reading of it names none (see `RequestedScope`), together with its other
    /// permissions (resources, audiences, authorization details, claims). A request that may name no
    /// scope for a client without defaults is refused, because the IdP would grant something the gate
    /// never saw.
    public func effectiveScopes(of request: AuthorizationRequest) throws(GateError) -> ScopeSet {
        let requested = RequestedScope(tokens: request.scopes, mayBeOmitted: request.scopeMayBeOmitted)
        return try requested.effective(defaults: clients[request.clientID]?.defaultScopes).union(request.otherPermissions)
    }

    /// Evaluates `scopes` for `clientID` given the scopes currently granted to it.
    public func evaluate(scopes: ScopeSet, clientID: String, granted: Set<String>) -> Evaluation {
        evaluate(scopes: scopes, clientID: clientID, isGranted: granted.contains)
    }

    /// Evaluates `scopes` for `clientID`, asking `isGranted` about each scope a rule leaves to an approver.
    public func evaluate(scopes: ScopeSet, clientID: String, isGranted: (String) -> Bool) -> Evaluation {
        let clientRules = rules(of: clientID)
        // The common case, every scope granted or approved by policy, decided without building anything.
        if scopes.allSatisfy({ isAllowed($0, clientRules: clientRules, isGranted: isGranted) }) { return .allow }
        var denied: [String] = []
        var unapproved: [String] = []
        var alreadyGranted: [String] = []
        for scope in scopes {
            switch auto(for: scope, clientRules: clientRules) {
            case .deny:
                denied.append(scope)
            case .approve:
                continue
            case .ask:
                if isGranted(scope) {
                    alreadyGranted.append(scope)
                } else {
                    unapproved.append(scope)
                }
            }
        }
        if !denied.isEmpty { return .deny(ScopeSet(denied)) }
        return .hold(unapproved: ScopeSet(unapproved), granted: ScopeSet(alreadyGranted))
    }

    /// Whether `request`'s scopes are all granted or approved by policy: `evaluate`'s `.allow`, for a
    /// request read in place (it carries no permissions beyond scope).
    public func allows(_ request: PlainAuthorizationQuery, isGranted: (String) -> Bool) -> Bool {
        let clientRules = rules(of: request.clientID)
        return request.allScopes { isAllowed($0, clientRules: clientRules, isGranted: isGranted) }
    }

    /// Whether `scope` may pass without a decision: approved by its rule, or asked about and granted.
    private func isAllowed(_ scope: String, clientRules: [ScopeRule], isGranted: (String) -> Bool) -> Bool {
        switch auto(for: scope, clientRules: clientRules) {
        case .approve: true
        case .deny: false
        case .ask: isGranted(scope)
        }
    }
}
