import Foundation

/// The store changes the edge asks for besides decisions: every one goes through the service, with one
/// failure rule. A change that cannot be recorded throws (`temporarily_unavailable`), and the caller
/// does not act as if it had been: a release is not sent on, a refusal is not reported as recorded.
extension GateService {
    /// Records, once, that a released hold continued to the IdP (its browser was sent on, or its device
    /// request was passed to the IdP); false when it already had. Record first, then release.
    @discardableResult
    public func recordContinuation(of hold: Hold) async throws(GateError) -> Bool {
        try await storeCall { try await store.markContinued(holdID: hold.id, at: now()) }
    }

    /// Records, once, that a hold went back refused (denied or expired); false when it already had.
    @discardableResult
    public func recordRejection(of hold: Hold) async throws(GateError) -> Bool {
        try await storeCall { try await store.markRejected(holdID: hold.id, at: now()) }
    }

    /// Revokes a standing grant at once, audited in `actor`'s name; false when there was none.
    public func revokeGrant(clientID: String, scope: String, actor: String) async throws(GateError) -> Bool {
        let revoked = try await storeCall { try await store.revokeGrant(clientID: clientID, scope: scope, actor: actor, at: now()) }
        if revoked {
            logger.info("grant revoked", metadata: ["sg.client.id": "\(clientID)", "sg.scope": "\(scope)", "sg.actor": "\(actor)"])
        }
        return revoked
    }

    /// Marks a pending request's approvers as reminded (once, audited); false when it was already, or
    /// is no longer pending.
    public func markReminded(_ request: ApprovalRequest) async throws(GateError) -> Bool {
        try await storeCall { try await store.markReminded(request.id, at: now()) }
    }

    /// Escalates a pending, unescalated request to `route`, opening messages on its `channels` (by
    /// platform); false when it was already escalated or is no longer pending.
    public func escalate(_ request: ApprovalRequest, to route: String, channels: [String: [String]]) async throws(GateError) -> Bool {
        try await storeCall { try await store.escalate(request.id, to: route, channels: channels, at: now()) }
    }

    /// Appends an entry to the audit log.
    public func recordAudit(_ event: AuditEvent) async throws(GateError) {
        try await storeCall { try await store.recordAudit(event, at: now()) }
    }
}
