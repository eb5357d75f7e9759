import Foundation
import PostgresNIO
import ScopeGateCore

extension PostgresGateStore {
    public func activeGrants(clientID: String, among scopes: ScopeSet, at date: Date) async throws -> [Grant] {
        if scopes.isEmpty { return [] }
        return try await rows(
            """
            SELECT * FROM scope_grant
            WHERE client_id = \(clientID) AND (expires_at IS NULL OR expires_at > \(date.timeIntervalSince1970))
              AND scope = ANY(\(scopes.tokens))
            """
        ).map(Self.grant)
    }

    public func allActiveGrants(at date: Date) async throws -> [Grant] {
        try await rows(
            "SELECT * FROM scope_grant WHERE expires_at IS NULL OR expires_at > \(date.timeIntervalSince1970) ORDER BY client_id, scope"
        ).map(Self.grant)
    }

    public func grantsVersion() async throws -> Int64 {
        try await rows("SELECT version FROM grant_version").first?["version"].decode(Int64.self) ?? 0
    }

    public func revokeGrant(clientID: String, scope: String, actor: String, at date: Date) async throws -> Bool {
        try await write { connection in
            let removed = try await rows(
                "DELETE FROM scope_grant WHERE client_id = \(clientID) AND scope = \(scope) RETURNING scope", on: connection)
            guard !removed.isEmpty else { return false }
            try await appendAudit(connection, [.grantRevoked(clientID: clientID, scope: scope, actor: actor)], at: date)
            return true
        }
    }

    public func openHold(_ draft: HoldDraft, at date: Date, expiresAt: Date) async throws -> (
        hold: Hold, request: ApprovalRequest, opened: Bool
    ) {
        let scopesJSON = try Self.json(draft.unapproved)
        let alreadyJSON = try Self.json(draft.alreadyGranted)
        let requestedJSON = try Self.json(draft.requestedScopes)
        return try await write { connection in
            let candidate = ApprovalRequest(
                id: RandomID.make(prefix: "ar_", bytes: 8), clientID: draft.clientID, scopes: draft.unapproved,
                alreadyGranted: draft.alreadyGranted, createdAt: date, expiresAt: expiresAt)
            // One pending request per question, whichever replica asks first (the partial unique index).
            let inserted = try await rows(
                """
                INSERT INTO approval_request (id, client_id, scopes, already_granted, state, created_at, expires_at)
                VALUES (\(candidate.id), \(draft.clientID), \(scopesJSON), \(alreadyJSON), 'pending',
                        \(date.timeIntervalSince1970), \(expiresAt.timeIntervalSince1970))
                ON CONFLICT (client_id, scopes) WHERE state = 'pending' DO NOTHING
                RETURNING id
                """, on: connection)
            let opened = !inserted.isEmpty
            let request: ApprovalRequest
            if opened {
                request = candidate
            } else {
                guard
                    let row = try await rows(
                        "SELECT * FROM approval_request WHERE client_id = \(draft.clientID) AND scopes = \(scopesJSON) AND state = 'pending'",
                        on: connection
                    ).first
                else { throw GateError(.storeFailure, "the pending approval request vanished") }
                request = try Self.approvalRequest(row)
            }
            let hold = Hold(
                id: RandomID.make(bytes: 16), approvalRequestID: request.id, clientID: draft.clientID,
                binderHash: draft.binderHash, method: draft.method, encodedParameters: draft.encodedParameters,
                requestedScopes: draft.requestedScopes, createdAt: date)
            try await connection.query(
                """
                INSERT INTO hold (id, approval_request_id, client_id, binder_hash, method, encoded_parameters, requested_scopes, created_at)
                VALUES (\(hold.id), \(hold.approvalRequestID), \(hold.clientID), \(hold.binderHash), \(hold.method.rawValue),
                        \(hold.encodedParameters), \(requestedJSON), \(date.timeIntervalSince1970))
                """, logger: logger)
            var events: [AuditEvent] = []
            if opened {
                events.append(.requestOpened(draft, requestID: request.id, expiresAt: expiresAt))
            }
            events.append(.holdCreated(clientID: draft.clientID, holdID: hold.id, requestID: request.id))
            try await appendAudit(connection, events, at: date)
            return (hold, request, opened)
        }
    }

    public func hold(id: String) async throws -> Hold? {
        try await rows("SELECT * FROM hold WHERE id = \(id)").first.map(Self.hold)
    }

    public func holds(binderPrefix prefix: String) async throws -> [Hold] {
        let pattern = prefix.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
        return try await rows("SELECT * FROM hold WHERE binder_hash LIKE \(pattern) ORDER BY created_at").map(Self.hold)
            .filter { $0.binderHash.hasPrefix(prefix) }
    }

    public func holds(approvalRequestID: String) async throws -> [Hold] {
        try await rows("SELECT * FROM hold WHERE approval_request_id = \(approvalRequestID) ORDER BY created_at").map(Self.hold)
    }

    public func approvalRequest(id: String) async throws -> ApprovalRequest? {
        try await rows("SELECT * FROM approval_request WHERE id = \(id)").first.map(Self.approvalRequest)
    }

    public func approvalRequests(states: Set<ApprovalRequest.State>?) async throws -> [ApprovalRequest] {
        guard let states else {
            return try await rows("SELECT * FROM approval_request ORDER BY created_at DESC").map(Self.approvalRequest)
        }
        if states.isEmpty { return [] }
        let wanted = states.map(\.rawValue)
        return try await rows("SELECT * FROM approval_request WHERE state = ANY(\(wanted)) ORDER BY created_at DESC")
            .map(Self.approvalRequest)
    }

    public func decide(_ requestID: String, _ decision: Decision, grants: [Grant]) async throws -> ApprovalRequest {
        try await write { connection in try await record(connection, decision, on: requestID, grants: grants) }
    }

    public func vote(_ requestID: String, _ vote: Vote, quorum: Quorum, grants: [Grant]) async throws -> VoteResult {
        let scopesJSON = try vote.scopes.map(Self.json)
        return try await write { connection in
            guard let row = try await rows("SELECT * FROM approval_request WHERE id = \(requestID) FOR UPDATE", on: connection).first else {
                throw GateError(.notFound, "no approval request \(requestID)")
            }
            let request = try Self.approvalRequest(row)
            guard request.state == .pending else {
                throw GateError(.alreadyDecided, "approval request \(requestID) was already decided")
            }
            if let person = vote.person,
                try await !rows(
                    "SELECT 1 FROM approval_vote WHERE approval_request_id = \(requestID) AND person = \(person)", on: connection
                ).isEmpty
            {
                throw GateError(.alreadyVoted, "\(vote.voter) already voted on approval request \(requestID) under another identity")
            }
            let inserted = try await rows(
                """
                INSERT INTO approval_vote (approval_request_id, voter, choice, at, reason, scopes, person)
                VALUES (\(requestID), \(vote.voter), \(vote.choice.rawValue), \(vote.at.timeIntervalSince1970), \(vote.reason),
                        \(scopesJSON), \(vote.person))
                ON CONFLICT DO NOTHING RETURNING voter
                """, on: connection)
            guard !inserted.isEmpty else {
                throw GateError(.alreadyVoted, "\(vote.voter) already voted on approval request \(requestID)")
            }
            let votes = try await self.votes(connection, requestID)
            try await appendAudit(
                connection, [.vote(vote, on: request, approvals: votes.filter(\.approves).count, quorum: quorum)], at: vote.at)
            guard let decision = quorum.decision(of: votes) else { return .counted(request, votes: votes) }
            return .decided(try await record(connection, decision, on: requestID, grants: Quorum.covered(grants, by: decision)))
        }
    }

    public func escalate(_ requestID: String, to route: String, channels: [String: [String]], at date: Date) async throws -> Bool {
        try await write { connection in
            guard
                let row = try await rows(
                    """
                    UPDATE approval_request SET escalated_to = \(route), escalated_at = \(date.timeIntervalSince1970)
                    WHERE id = \(requestID) AND state = 'pending' AND escalated_to IS NULL RETURNING *
                    """, on: connection
                ).first
            else { return false }
            let request = try Self.approvalRequest(row)
            try await connection.query(
                "UPDATE chat_message SET revision = revision + 1 WHERE approval_request_id = \(requestID)", logger: logger)
            for (platform, list) in channels {
                for channel in list {
                    try await connection.query(
                        """
                        INSERT INTO chat_message (approval_request_id, platform, channel, next_attempt_at, created_at)
                        VALUES (\(requestID), \(platform), \(channel), \(date.timeIntervalSince1970), \(date.timeIntervalSince1970))
                        ON CONFLICT DO NOTHING
                        """, logger: logger)
                }
            }
            try await appendAudit(connection, [.escalated(clientID: request.clientID, requestID: requestID, route: route)], at: date)
            return true
        }
    }

    public func markReminded(_ requestID: String, at date: Date) async throws -> Bool {
        try await write { connection in
            guard
                let row = try await rows(
                    """
                    UPDATE approval_request SET reminded_at = \(date.timeIntervalSince1970)
                    WHERE id = \(requestID) AND state = 'pending' AND reminded_at IS NULL RETURNING client_id
                    """, on: connection
                ).first
            else { return false }
            try await appendAudit(
                connection, [.reminded(clientID: try row["client_id"].decode(String.self), requestID: requestID)], at: date)
            return true
        }
    }

    public func votes(approvalRequestID: String) async throws -> [Vote] {
        try await votes(nil, approvalRequestID)
    }

    func votes(_ connection: PostgresConnection?, _ requestID: String) async throws -> [Vote] {
        try await rows("SELECT * FROM approval_vote WHERE approval_request_id = \(requestID) ORDER BY at, ordinal", on: connection)
            .compactMap { row in
                guard let choice = Vote.Choice(rawValue: try row["choice"].decode(String.self)) else { return nil }
                var vote = Vote(
                    voter: try row["voter"].decode(String.self), choice: choice, at: Self.date(try row["at"].decode(Double.self)),
                    reason: try row["reason"].decode(String?.self), scopes: try row["scopes"].decode(String?.self).map(Self.scopes))
                vote.person = try row["person"].decode(String?.self)
                return vote
            }
    }

    /// Moves a pending request to the decision's state, writes its grants, its decision event and
    /// their audit entries, in the caller's transaction (which holds the write lock).
    func record(_ connection: PostgresConnection, _ decision: Decision, on requestID: String, grants: [Grant]) async throws
        -> ApprovalRequest
    {
        guard let row = try await rows("SELECT * FROM approval_request WHERE id = \(requestID) FOR UPDATE", on: connection).first else {
            throw GateError(.notFound, "no approval request \(requestID)")
        }
        let decided = try Self.approvalRequest(row).applying(decision)
        let decidedScopes = try decided.decision?.scopes.map(Self.json)
        let updated = try await rows(
            """
            UPDATE approval_request
            SET state = \(decision.outcome.rawValue), decided_by = \(decision.actor), decided_at = \(decision.at.timeIntervalSince1970),
                decision_reason = \(decision.reason), decided_scopes = \(decidedScopes)
            WHERE id = \(requestID) AND state = 'pending' RETURNING id
            """, on: connection)
        guard !updated.isEmpty else {
            throw GateError(.alreadyDecided, "approval request \(requestID) was already decided")
        }
        for grant in grants {
            try await connection.query(
                """
                INSERT INTO scope_grant (client_id, scope, approved_by, granted_at, expires_at, approval_request_id)
                VALUES (\(grant.clientID), \(grant.scope), \(grant.approvedBy), \(grant.grantedAt.timeIntervalSince1970),
                        \(grant.expiresAt?.timeIntervalSince1970), \(grant.approvalRequestID))
                ON CONFLICT (client_id, scope) DO UPDATE SET approved_by = EXCLUDED.approved_by, granted_at = EXCLUDED.granted_at,
                    expires_at = EXCLUDED.expires_at, approval_request_id = EXCLUDED.approval_request_id, lapse_recorded_at = NULL
                """, logger: logger)
        }
        try await connection.query(
            "INSERT INTO decision_event (approval_request_id, at) VALUES (\(requestID), \(decision.at.timeIntervalSince1970))",
            logger: logger)
        try await appendAudit(
            connection, [.decision(decision, on: decided)] + grants.map { .grantCreated($0, requestID: requestID) }, at: decision.at)
        return decided
    }

    public func setRequester(holdID: String, _ requester: Requester, at date: Date) async throws -> Bool {
        let json = String(decoding: try JSONEncoder().encode(requester), as: UTF8.self)
        return try await write { connection in
            guard
                let row = try await rows(
                    "UPDATE hold SET requester = \(json) WHERE id = \(holdID) AND requester IS NULL RETURNING *", on: connection
                ).first
            else { return false }
            let hold = try Self.hold(row)
            try await appendAudit(connection, [.holdIdentified(hold, as: requester)], at: date)
            return true
        }
    }

    public func setJustification(holdID: String, _ text: String) async throws {
        try await write(audited: false) { connection in
            try await connection.query("UPDATE hold SET justification = \(text) WHERE id = \(holdID)", logger: logger)
        }
    }

    public func checkWritable() async throws {
        try await write(audited: false) { connection in
            try await connection.query("UPDATE grant_version SET version = version WHERE id = 1", logger: logger)
        }
    }

    public func releasedHolds(binderHash: String, clientID: String, decidedSince: Date) async throws -> [Hold] {
        try await rows(
            """
            SELECT hold.* FROM hold JOIN approval_request ON approval_request.id = hold.approval_request_id
            WHERE hold.binder_hash = \(binderHash) AND hold.client_id = \(clientID)
              AND approval_request.state IN ('approved', 'approved_once') AND approval_request.decided_at >= \(decidedSince.timeIntervalSince1970)
            ORDER BY hold.created_at LIMIT 50
            """
        ).map(Self.hold)
    }

    public func markContinued(holdID id: String, at date: Date) async throws -> Bool {
        try await finishHold(id, at: date) { _ in "hold.released" }
    }

    public func markRejected(holdID id: String, at date: Date) async throws -> Bool {
        try await finishHold(id, at: date) { $0 == "expired" ? "hold.expired" : "hold.rejected" }
    }

    private func finishHold(_ id: String, at date: Date, event: @escaping @Sendable (String) -> String) async throws -> Bool {
        try await write { connection in
            guard
                let row = try await rows(
                    """
                    UPDATE hold SET consumed_at = \(date.timeIntervalSince1970) FROM approval_request
                    WHERE hold.id = \(id) AND hold.consumed_at IS NULL AND approval_request.id = hold.approval_request_id
                    RETURNING hold.client_id, hold.approval_request_id, approval_request.state
                    """, on: connection
                ).first
            else { return false }
            try await appendAudit(
                connection,
                [
                    .holdFinished(
                        event(try row["state"].decode(String.self)), clientID: try row["client_id"].decode(String.self), holdID: id,
                        requestID: try row["approval_request_id"].decode(String.self))
                ], at: date)
            return true
        }
    }

    public func recordAudit(_ event: AuditEvent, at date: Date) async throws {
        guard audit != nil else { return }
        try await write { connection in try await appendAudit(connection, [event], at: date) }
    }

    public func recordLapsedGrants(at date: Date) async throws -> Int {
        try await write { connection in
            let lapsed = try await rows(
                """
                SELECT client_id, scope, expires_at, approval_request_id FROM scope_grant
                WHERE expires_at IS NOT NULL AND expires_at <= \(date.timeIntervalSince1970) AND lapse_recorded_at IS NULL
                ORDER BY expires_at LIMIT 500 FOR UPDATE
                """, on: connection)
            guard !lapsed.isEmpty else { return 0 }
            var events: [AuditEvent] = []
            for row in lapsed {
                let client = try row["client_id"].decode(String.self)
                let scope = try row["scope"].decode(String.self)
                events.append(
                    .grantExpired(
                        clientID: client, scope: scope, requestID: try row["approval_request_id"].decode(String?.self),
                        expiredAt: try row["expires_at"].decode(Double.self)))
                try await connection.query(
                    "UPDATE scope_grant SET lapse_recorded_at = \(date.timeIntervalSince1970) WHERE client_id = \(client) AND scope = \(scope)",
                    logger: logger)
            }
            try await appendAudit(connection, events, at: date)
            return lapsed.count
        }
    }

    public func pendingRequests(expiringBy date: Date) async throws -> [ApprovalRequest] {
        try await rows("SELECT * FROM approval_request WHERE state = 'pending' AND expires_at <= \(date.timeIntervalSince1970)")
            .map(Self.approvalRequest)
    }

    public func decisionEvents(after cursor: Int64) async throws -> [DecisionEvent] {
        try await rows("SELECT cursor, approval_request_id FROM decision_event WHERE cursor > \(cursor) ORDER BY cursor").map {
            DecisionEvent(cursor: try $0["cursor"].decode(Int64.self), approvalRequestID: try $0["approval_request_id"].decode(String.self))
        }
    }

    public func latestDecisionCursor() async throws -> Int64 {
        try await rows("SELECT COALESCE(MAX(cursor), 0) AS cursor FROM decision_event").first?["cursor"].decode(Int64.self) ?? 0
    }

    public func firstRequestDate(clientID: String) async throws -> Date? {
        try await rows("SELECT MIN(created_at) AS first FROM approval_request WHERE client_id = \(clientID)").first?["first"]
            .decode(Double?.self).map(Self.date)
    }
}
