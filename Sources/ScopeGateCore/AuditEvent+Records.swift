import Foundation

/// The audit entries every store writes with its changes, built in one place so that the SQLite and
/// the PostgreSQL logs record the same fields under the same names.
extension AuditEvent {
    public static func grantRevoked(clientID: String, scope: String, actor: String) -> AuditEvent {
        AuditEvent("grant.revoked", clientID: clientID, [("scope", .string(scope)), ("actor", .string(actor))])
    }

    public static func requestOpened(_ draft: HoldDraft, requestID: String, expiresAt: Date) -> AuditEvent {
        AuditEvent(
            "approval_request.opened", clientID: draft.clientID,
            [
                ("request_id", .string(requestID)), ("scopes", .strings(draft.unapproved.tokens)),
                ("already_granted", .strings(draft.alreadyGranted.tokens)), ("rules", .strings(draft.rules)),
                ("route", draft.route.map { .string($0) } ?? .null), ("expires_at", .int(Int64(expiresAt.timeIntervalSince1970))),
            ])
    }

    public static func holdCreated(clientID: String, holdID: String, requestID: String) -> AuditEvent {
        AuditEvent("hold.created", clientID: clientID, [("hold_id", .string(holdID)), ("request_id", .string(requestID))])
    }

    /// A vote on `request`, with the approvals counted so far (this one included).
    public static func vote(_ vote: Vote, on request: ApprovalRequest, approvals: Int, quorum: Quorum) -> AuditEvent {
        AuditEvent(
            "vote", clientID: request.clientID,
            [
                ("request_id", .string(request.id)), ("choice", .string(vote.choice.rawValue)), ("voter", .string(vote.voter)),
                ("reason", vote.reason.map { .string($0) } ?? .null), ("approvals", .int(Int64(approvals))),
                ("quorum", .int(Int64(quorum.approve))),
            ] + (vote.scopes.map { [("approved_scopes", .strings($0.tokens))] } ?? []))
    }

    public static func escalated(clientID: String, requestID: String, route: String) -> AuditEvent {
        AuditEvent("approval_request.escalated", clientID: clientID, [("request_id", .string(requestID)), ("route", .string(route))])
    }

    public static func reminded(clientID: String, requestID: String) -> AuditEvent {
        AuditEvent("approval_request.reminded", clientID: clientID, [("request_id", .string(requestID))])
    }

    /// `decision` on the request as it stands once decided.
    public static func decision(_ decision: Decision, on decided: ApprovalRequest) -> AuditEvent {
        AuditEvent(
            "decision", clientID: decided.clientID,
            [
                ("request_id", .string(decided.id)), ("outcome", .string(decision.outcome.rawValue)),
                ("actor", .string(decision.actor)), ("reason", decision.reason.map { .string($0) } ?? .null),
                ("scopes", .strings(decided.scopes.tokens)),
            ] + (decided.decision?.scopes.map { [("approved_scopes", .strings($0.tokens))] } ?? []))
    }

    public static func grantCreated(_ grant: Grant, requestID: String) -> AuditEvent {
        AuditEvent(
            "grant.created", clientID: grant.clientID,
            [
                ("scope", .string(grant.scope)), ("request_id", .string(requestID)), ("approved_by", .string(grant.approvedBy)),
                ("expires_at", grant.expiresAt.map { .int(Int64($0.timeIntervalSince1970)) } ?? .null),
            ])
    }

    public static func holdIdentified(_ hold: Hold, as requester: Requester) -> AuditEvent {
        AuditEvent(
            "hold.identified", clientID: hold.clientID,
            [
                ("request_id", .string(hold.approvalRequestID)), ("hold_id", .string(hold.id)),
                ("subject", .string(requester.subject)), ("email", requester.email.map { .string($0) } ?? .null),
                ("email_verified", .bool(requester.emailVerified)), ("groups", .strings(requester.groups)),
            ])
    }

    /// A hold answered (`hold.released`, `hold.rejected`, `hold.expired`).
    public static func holdFinished(_ type: String, clientID: String, holdID: String, requestID: String) -> AuditEvent {
        AuditEvent(type, clientID: clientID, [("hold_id", .string(holdID)), ("request_id", .string(requestID))])
    }

    public static func grantExpired(clientID: String, scope: String, requestID: String?, expiredAt: Double) -> AuditEvent {
        AuditEvent(
            "grant.expired", clientID: clientID,
            [
                ("scope", .string(scope)), ("request_id", requestID.map { .string($0) } ?? .null),
                ("expired_at", .int(Int64(expiredAt))),
            ])
    }

    public static func notificationSent(_ message: ChatMessage, messageID: String) -> AuditEvent {
        AuditEvent(
            "notification.sent",
            [
                ("request_id", .string(message.approvalRequestID)), ("platform", .string(message.platform)),
                ("channel", .string(message.channel)), ("message_id", .string(messageID)),
            ])
    }

    public static func notificationFailed(_ message: ChatMessage, error: String, permanent: Bool) -> AuditEvent {
        AuditEvent(
            "notification.failed",
            [
                ("request_id", .string(message.approvalRequestID)), ("platform", .string(message.platform)),
                ("channel", .string(message.channel)), ("error", .string(error)), ("permanent", .bool(permanent)),
                ("attempt", .int(Int64(message.attempts + 1))),
            ])
    }
}
