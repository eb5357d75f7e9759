import Foundation

/// A fast view of the grants in force (an in-memory snapshot the event loop reads without waiting on
/// the store): the port through which the connection handler's fast path asks the gate service, so
/// that the decision "forward at once" is made by the same policy code as every other admission.
public protocol GrantSnapshotPort: Sendable {
    associatedtype Grants: GrantedScopes
    /// The grants `clientID` holds, or `nil` when the view cannot vouch for them (not fresh): the
    /// request then takes the full path, through the store.
    func grants(of clientID: String, now: @escaping @Sendable () -> Date) -> Grants?
}

/// One client's grants in a `GrantSnapshotPort`.
public protocol GrantedScopes {
    /// Whether `scope` is granted now.
    func contains(_ scope: String) -> Bool
}

extension GateService {
    /// Whether a request of the common shape (read in place) passes at once: every scope allowed by the
    /// policy or granted, per the snapshot. `false` means "ask the full path", never "refuse".
    @inlinable
    public func admitsAtOnce(_ request: PlainAuthorizationQuery, snapshot: some GrantSnapshotPort) -> Bool {
        guard let grants = snapshot.grants(of: request.clientID, now: now) else { return false }
        return live.generation.policy.allows(request, isGranted: grants.contains)
    }

    /// The effective permissions of a parsed request that passes at once (everything allowed by the
    /// policy or granted, per the snapshot); `nil` means "ask the full path", never "refuse".
    @inlinable
    public func admitsAtOnce(_ request: AuthorizationRequest, snapshot: some GrantSnapshotPort) -> ScopeSet? {
        let generation = live.generation
        guard let scopes = try? generation.policy.effectiveScopes(of: request),
            let grants = snapshot.grants(of: request.clientID, now: now),
            generation.policy.evaluate(scopes: scopes, clientID: request.clientID, isGranted: grants.contains) == .allow
        else { return nil }
        return scopes
    }
}
