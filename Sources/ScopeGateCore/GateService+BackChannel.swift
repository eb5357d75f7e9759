import Foundation

extension GateService {
    /// What happens to a back-channel request (a token endpoint grant) that asks for scopes.
    public enum BackChannelAdmission: Sendable, Equatable {
        /// Forward it: every scope is granted or approved by policy.
        case forward
        /// Refuse it: policy denies these scopes.
        case deny(ScopeSet)
        /// Refuse it for now: approvers are asked (this approval request); a retry after approval passes.
        case pending(ApprovalRequest)
    }

    /// Decides a back-channel request for `scopes` by `clientID`. Back-channel calls cannot wait for
    /// minutes, so an unapproved scope is refused at once and one approval request is opened for the
    /// client (a retry while it is pending opens nothing new). Only a standing grant admits a retry:
    /// there is no waiting browser for *approve once* to release.
    public func admitBackChannel(clientID: String, scopes: ScopeSet, grantType: String, source: String? = nil)
        async throws(GateError) -> BackChannelAdmission
    {
        let date = now()
        return try await storeCall {
            switch try await evaluate(scopes, clientID: clientID, grantType: grantType, at: date) {
            case .allow:
                return .forward
            case .deny(let denied):
                return .deny(denied)
            case .hold(let unapproved, let alreadyGranted):
                if let pending = try await store.approvalRequests(states: [.pending]).first(where: {
                    $0.clientID == clientID && $0.scopes == unapproved
                }) {
                    return .pending(pending)
                }
                let (_, approval) = try await hold(
                    clientID: clientID, binderHash: Self.backChannelBinder, method: .post, encodedParameters: "grant_type=\(grantType)",
                    scopes: scopes, unapproved: unapproved, alreadyGranted: alreadyGranted, source: source, at: date)
                return .pending(approval)
            }
        }
    }

    /// The policy's evaluation of a back-channel request against the client's grants; a denial is
    /// recorded in the audit log before it is returned.
    func evaluate(_ scopes: ScopeSet, clientID: String, grantType: String, at date: Date) async throws -> Policy.Evaluation {
        let granted = Set(try await store.activeGrants(clientID: clientID, among: scopes, at: date).map(\.scope))
        let evaluation = policy.evaluate(scopes: scopes, clientID: clientID, granted: granted)
        if try await shadowed(evaluation, clientID: clientID, scopes: scopes, channel: grantType, at: date) { return .allow }
        if case .deny(let denied) = evaluation {
            try await recordPolicyDenial(denied, clientID: clientID, grantType: grantType, at: date)
        }
        return evaluation
    }

    /// Records a denial by policy of a back-channel request.
    func recordPolicyDenial(_ denied: ScopeSet, clientID: String, grantType: String, at date: Date) async throws {
        try await store.recordAudit(
            AuditEvent(
                "decision", clientID: clientID,
                [
                    ("outcome", .string("denied")), ("actor", .string("policy")), ("scopes", .strings(denied.tokens)),
                    ("rules", .strings(rules(denied, clientID: clientID))), ("grant_type", .string(grantType)),
                ]), at: date)
    }

    /// Holds of back-channel requests carry this instead of a browser binding: no browser can ever
    /// present it, so nothing continues from such a hold.
    public static let backChannelBinder = "back-channel"

    /// The second gate: the permissions of `issued` that `clientID` may not hold now: neither granted,
    /// nor approved by policy, nor among `approvedOnce`, what approvers approved once for the very
    /// authorization (or device request) whose code the token is issued for. Approve once is one
    /// authorization: no other token of the client, and no refresh of it later, rides on it. Empty when
    /// the token may leave.
    public func scopesBeyondApproval(_ issued: ScopeSet, clientID: String, approvedOnce: ScopeSet = ScopeSet([String]()))
        async throws(GateError) -> ScopeSet
    {
        let date = now()
        return try await storeCall {
            let granted = Set(try await store.activeGrants(clientID: clientID, among: issued, at: date).map(\.scope))
            let approvedOnce = Set(approvedOnce.tokens)
            let clientRules = policy.rules(of: clientID)
            let beyond = ScopeSet(
                issued.tokens.filter { scope in
                    switch policy.auto(for: scope, clientRules: clientRules) {
                    case .approve: false
                    case .deny: true
                    case .ask: !granted.contains(scope) && !approvedOnce.contains(scope)
                    }
                })
            if !beyond.isEmpty,
                try await shadowed(.hold(unapproved: beyond, granted: ScopeSet([String]())), clientID: clientID, scopes: issued, channel: "token", at: date)
            {
                return ScopeSet([String]())
            }
            return beyond
        }
    }
}
