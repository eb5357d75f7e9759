import Foundation

/// A fast view of the grants in force (an in-memory snapshot the event loop reads without waiting on
/// the store): the port through which the connection handler's fast path asks the gate service, so
/// that the decision "forward at once" is made by the same policy code as every other admission.
public protocol GrantSnapshotPort: Sendable {
    associatedtype Grants: GrantedScopes
    /// The grants `clientID` holds, or `nil` when the view cannot vouch for them (not fresh): the
    /// request then takes the full path, through the store.
    func grants(of clientID: String, now: @escaping @Sendable () -> Date) -> Grants?

    /// The answer given earlier to the same client asking for the same scope value (`request`'s
    /// `client_id` and `scope` as they came) under the policy `generation`, while it still holds: the
    /// view is fresh, no grant changed since, and no grant the client holds has expired (`now`, read
    /// only when one has an expiry). `nil`: nothing remembered, ask again.
    func rememberedAnswer(to request: PlainAuthorizationQuery, under generation: LivePolicy.Generation, now: () -> Date) -> Bool?

    /// Remembers `admitted`, the gate service's answer to `request` under `generation`, evaluated
    /// against `grants`; a view that has changed since `grants` were read forgets it.
    func remember(_ admitted: Bool, to request: PlainAuthorizationQuery, under generation: LivePolicy.Generation, from grants: Grants)
}

extension GrantSnapshotPort {
    /// A view that remembers nothing: every request is evaluated.
    public func rememberedAnswer(to request: PlainAuthorizationQuery, under generation: LivePolicy.Generation, now: () -> Date) -> Bool? {
        nil
    }

    public func remember(_ admitted: Bool, to request: PlainAuthorizationQuery, under generation: LivePolicy.Generation, from grants: Grants) {}
}

/// One client's grants in a `GrantSnapshotPort`.
public protocol GrantedScopes {
    /// Whether `scope` is granted now.
    func contains(_ scope: String) -> Bool
}

extension GateService {
    /// Whether a request of the common shape (read in place) passes at once: every scope allowed by the
    /// policy or granted, per the snapshot. `false` means "ask the full path", never "refuse".
    ///
    /// The answer depends only on the client, the scope value, the policy and the client's grants: an
    /// application asks for the same scopes on every sign-in, so the snapshot remembers it until any of
    /// those changes (or a grant may have expired), and most requests are answered by one lookup.
    @inlinable
    public func admitsAtOnce(_ request: PlainAuthorizationQuery, snapshot: some GrantSnapshotPort) -> Bool {
        let generation = live.generation
        if let answer = snapshot.rememberedAnswer(to: request, under: generation, now: now) { return answer }
        guard let grants = snapshot.grants(of: request.clientID, now: now) else { return false }
        let admitted = generation.policy.allows(request, isGranted: grants.contains)
        snapshot.remember(admitted, to: request, under: generation, from: grants)
        return admitted
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
