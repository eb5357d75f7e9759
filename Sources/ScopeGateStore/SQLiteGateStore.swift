import Foundation
import GRDB
import ScopeGateCore
import Synchronization

/// The `GateStore` on a SQLite file (GRDB, WAL, `synchronous=FULL`).
///
/// Several processes may open the same file: the server, and the command line deciding a request.
/// Each decision is a compare-and-set inside one write transaction, so concurrent decisions from any
/// of them yield exactly one outcome. With an audit sealer, every state change appends its signed
/// audit entries in the same transaction: no entry, no change. Writes from concurrent callers are
/// grouped into shared transactions (`GroupCommit`).
public final class SQLiteGateStore: GateStore, AuditLogStore {
    let writer: DatabasePool
    let commits: GroupCommit
    let audit: (any AuditSealing)?
    /// The newest audit entry as the current transaction wrote it, valid for one `commits.generation`.
    let auditHeadCache = Mutex<(generation: Int, seq: Int64, jws: String)?>(nil)

    /// Opens (creating if needed) the database at `path` and brings its schema up to date. A
    /// read-only store refuses every write, which tests use to prove that the gate fails closed.
    /// `audit` seals the audit log's entries; without it the store keeps no audit log.
    public init(path: String, readOnly: Bool = false, audit: (any AuditSealing)? = nil) throws {
        self.audit = audit
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.readonly = readOnly
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        writer = try DatabasePool(path: path, configuration: configuration)
        commits = GroupCommit(writer: writer)
        if !readOnly { try Self.migrator.migrate(writer) }
    }

    public func activeGrants(clientID: String, among scopes: ScopeSet, at date: Date) async throws -> [Grant] {
        if scopes.isEmpty { return [] }
        let placeholders = Array(repeating: "?", count: scopes.tokens.count).joined(separator: ",")
        let arguments: StatementArguments = [clientID, date.timeIntervalSince1970] + StatementArguments(scopes.tokens)
        return try await writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM scope_grant
                    WHERE client_id = ? AND (expires_at IS NULL OR expires_at > ?) AND scope IN (\(placeholders))
                    """, arguments: arguments
            ).map(Self.grant)
        }
    }

    public func allActiveGrants(at date: Date) async throws -> [Grant] {
        try await writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM scope_grant WHERE expires_at IS NULL OR expires_at > ? ORDER BY client_id, scope
                    """, arguments: [date.timeIntervalSince1970]
            ).map(Self.grant)
        }
    }

    public func grantsVersion() async throws -> Int64 {
        try await writer.read { db in try Int64.fetchOne(db, sql: "SELECT version FROM grant_version") ?? 0 }
    }

    public func revokeGrant(clientID: String, scope: String, actor: String, at date: Date) async throws -> Bool {
        try await commits.write { [self] db in
            try db.execute(sql: "DELETE FROM scope_grant WHERE client_id = ? AND scope = ?", arguments: [clientID, scope])
            guard db.changesCount > 0 else { return false }
            try appendAudit(
                db,
                [.grantRevoked(clientID: clientID, scope: scope, actor: actor)],
                at: date)
            return true
        }
    }

    public func openHold(_ draft: HoldDraft, at date: Date, expiresAt: Date) async throws -> (
        hold: Hold, request: ApprovalRequest, opened: Bool
    ) {
        try await commits.write { [self] db in
            let scopesJSON = try Self.json(draft.unapproved)
            var opened = false
            let request: ApprovalRequest
            if let row = try Row.fetchOne(
                db, sql: "SELECT * FROM approval_request WHERE client_id = ? AND scopes = ? AND state = 'pending'",
                arguments: [draft.clientID, scopesJSON])
            {
                request = try Self.approvalRequest(row)
            } else {
                request = ApprovalRequest(
                    id: RandomID.make(prefix: "ar_", bytes: 8), clientID: draft.clientID, scopes: draft.unapproved,
                    alreadyGranted: draft.alreadyGranted, createdAt: date, expiresAt: expiresAt)
                try db.execute(
                    sql: """
                        INSERT INTO approval_request (id, client_id, scopes, already_granted, state, created_at, expires_at)
                        VALUES (?, ?, ?, ?, 'pending', ?, ?)
                        """,
                    arguments: [
                        request.id, request.clientID, scopesJSON, try Self.json(request.alreadyGranted),
                        date.timeIntervalSince1970, expiresAt.timeIntervalSince1970,
                    ])
                opened = true
            }
            let hold = Hold(
                id: RandomID.make(bytes: 16), approvalRequestID: request.id, clientID: draft.clientID,
                binderHash: draft.binderHash, method: draft.method, encodedParameters: draft.encodedParameters,
                requestedScopes: draft.requestedScopes, createdAt: date)
            try db.execute(
                sql: """
                    INSERT INTO hold (id, approval_request_id, client_id, binder_hash, method, encoded_parameters,
                                      requested_scopes, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    hold.id, hold.approvalRequestID, hold.clientID, hold.binderHash, hold.method.rawValue,
                    hold.encodedParameters, try Self.json(hold.requestedScopes), date.timeIntervalSince1970,
                ])
            var events: [AuditEvent] = []
            if opened {
                events.append(.requestOpened(draft, requestID: request.id, expiresAt: expiresAt))
            }
            events.append(.holdCreated(clientID: draft.clientID, holdID: hold.id, requestID: request.id))
            try appendAudit(db, events, at: date)
            return (hold, request, opened)
        }
    }

    public func hold(id: String) async throws -> Hold? {
        try await writer.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM hold WHERE id = ?", arguments: [id]).map(Self.hold)
        }
    }

    public func holds(binderPrefix prefix: String) async throws -> [Hold] {
        try await writer.read { db in
            // A range on the indexed column: the prefix, up to the prefix with its last byte raised.
            var upper = Array(prefix.utf8)
            if let last = upper.popLast() { upper.append(last &+ 1) }
            return try Row.fetchAll(
                db, sql: "SELECT * FROM hold WHERE binder_hash >= ? AND binder_hash < ? ORDER BY created_at",
                arguments: [prefix, String(decoding: upper, as: UTF8.self)]
            ).map(Self.hold).filter { $0.binderHash.hasPrefix(prefix) }
        }
    }

    public func holds(approvalRequestID: String) async throws -> [Hold] {
        try await writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM hold WHERE approval_request_id = ? ORDER BY created_at",
                arguments: [approvalRequestID]
            ).map(Self.hold)
        }
    }

    public func approvalRequest(id: String) async throws -> ApprovalRequest? {
        try await writer.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM approval_request WHERE id = ?", arguments: [id])
                .map(Self.approvalRequest)
        }
    }

    public func approvalRequests(states: Set<ApprovalRequest.State>?) async throws -> [ApprovalRequest] {
        // Filtered in SQL (on the state index): the back-channel gate asks for pending and recently
        // approved-once requests on every token request, and the table keeps every request ever made.
        let wanted = states.map { Array($0.map(\.rawValue)) }
        return try await writer.read { db in
            guard let wanted else {
                return try Row.fetchAll(db, sql: "SELECT * FROM approval_request ORDER BY created_at DESC").map(Self.approvalRequest)
            }
            if wanted.isEmpty { return [] }
            let placeholders = Array(repeating: "?", count: wanted.count).joined(separator: ",")
            return try Row.fetchAll(
                db, sql: "SELECT * FROM approval_request WHERE state IN (\(placeholders)) ORDER BY created_at DESC",
                arguments: StatementArguments(wanted)
            ).map(Self.approvalRequest)
        }
    }

    public func decide(_ requestID: String, _ decision: Decision, grants: [Grant]) async throws -> ApprovalRequest {
        try await commits.write { [self] db in try record(db, decision, on: requestID, grants: grants) }
    }

    public func vote(_ requestID: String, _ vote: Vote, quorum: Quorum, grants: [Grant]) async throws -> VoteResult {
        try await commits.write { [self] db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM approval_request WHERE id = ?", arguments: [requestID])
            else {
                throw GateError(.notFound, "no approval request \(requestID)")
            }
            let request = try Self.approvalRequest(row)
            guard request.state == .pending else {
                throw GateError(.alreadyDecided, "approval request \(requestID) was already decided")
            }
            // One person counts once, under whichever identity (Slack, Teams, the approval page) they vote.
            if let person = vote.person,
                try Bool.fetchOne(
                    db, sql: "SELECT 1 FROM approval_vote WHERE approval_request_id = ? AND person = ?", arguments: [requestID, person])
                    == true
            {
                throw GateError(.alreadyVoted, "\(vote.voter) already voted on approval request \(requestID) under another identity")
            }
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO approval_vote (approval_request_id, voter, choice, at, reason, scopes, person)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    requestID, vote.voter, vote.choice.rawValue, vote.at.timeIntervalSince1970, vote.reason,
                    try vote.scopes.map(Self.json), vote.person,
                ])
            guard db.changesCount == 1 else {
                throw GateError(.alreadyVoted, "\(vote.voter) already voted on approval request \(requestID)")
            }
            let votes = try Self.votes(db, requestID)
            try appendAudit(db, [.vote(vote, on: request, approvals: votes.filter(\.approves).count, quorum: quorum)], at: vote.at)
            guard let decision = quorum.decision(of: votes) else { return .counted(request, votes: votes) }
            return .decided(try record(db, decision, on: requestID, grants: Quorum.covered(grants, by: decision)))
        }
    }

    public func escalate(_ requestID: String, to route: String, channels: [String: [String]], at date: Date) async throws -> Bool {
        try await commits.write { [self] db in
            try db.execute(
                sql: """
                    UPDATE approval_request SET escalated_to = ?, escalated_at = ?
                    WHERE id = ? AND state = 'pending' AND escalated_to IS NULL
                    """, arguments: [route, date.timeIntervalSince1970, requestID])
            guard db.changesCount == 1,
                let request = try Row.fetchOne(db, sql: "SELECT * FROM approval_request WHERE id = ?", arguments: [requestID])
                    .map(Self.approvalRequest)
            else { return false }
            // What the request's messages show changes (escalated to …), and the new route's channels
            // get messages of their own.
            try db.execute(sql: "UPDATE chat_message SET revision = revision + 1 WHERE approval_request_id = ?", arguments: [requestID])
            for (platform, list) in channels {
                for channel in list {
                    try db.execute(
                        sql: """
                            INSERT OR IGNORE INTO chat_message (approval_request_id, platform, channel, next_attempt_at, created_at)
                            VALUES (?, ?, ?, ?, ?)
                            """,
                        arguments: [requestID, platform, channel, date.timeIntervalSince1970, date.timeIntervalSince1970])
                }
            }
            try appendAudit(db, [.escalated(clientID: request.clientID, requestID: requestID, route: route)], at: date)
            return true
        }
    }

    public func markReminded(_ requestID: String, at date: Date) async throws -> Bool {
        try await commits.write { [self] db in
            try db.execute(
                sql: "UPDATE approval_request SET reminded_at = ? WHERE id = ? AND state = 'pending' AND reminded_at IS NULL",
                arguments: [date.timeIntervalSince1970, requestID])
            guard db.changesCount == 1,
                let request = try Row.fetchOne(db, sql: "SELECT * FROM approval_request WHERE id = ?", arguments: [requestID])
                    .map(Self.approvalRequest)
            else { return false }
            try appendAudit(db, [.reminded(clientID: request.clientID, requestID: requestID)], at: date)
            return true
        }
    }

    public func votes(approvalRequestID: String) async throws -> [Vote] {
        try await writer.read { db in try Self.votes(db, approvalRequestID) }
    }

    static func votes(_ db: Database, _ requestID: String) throws -> [Vote] {
        try Row.fetchAll(
            db, sql: "SELECT * FROM approval_vote WHERE approval_request_id = ? ORDER BY at, rowid", arguments: [requestID]
        ).compactMap { row in
            guard let choice = Vote.Choice(rawValue: row["choice"]) else { return nil }
            var vote = Vote(
                voter: row["voter"], choice: choice, at: Self.date(row["at"]), reason: row["reason"],
                scopes: try (row["scopes"] as String?).map(Self.scopes))
            vote.person = row["person"]
            return vote
        }
    }

    /// Moves a pending request to the decision's state, writes its grants and their audit entries, in
    /// the caller's transaction.
    private func record(_ db: Database, _ decision: Decision, on requestID: String, grants: [Grant]) throws -> ApprovalRequest {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM approval_request WHERE id = ?", arguments: [requestID])
        else {
            throw GateError(.notFound, "no approval request \(requestID)")
        }
        let decided = try Self.approvalRequest(row).applying(decision)
        try db.execute(
            sql: """
                UPDATE approval_request
                SET state = ?, decided_by = ?, decided_at = ?, decision_reason = ?, decided_scopes = ?
                WHERE id = ? AND state = 'pending'
                """,
            arguments: [
                decision.outcome.rawValue, decision.actor, decision.at.timeIntervalSince1970, decision.reason,
                try decided.decision?.scopes.map(Self.json), requestID,
            ])
        guard db.changesCount == 1 else {
            throw GateError(.alreadyDecided, "approval request \(requestID) was already decided")
        }
        for grant in grants {
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO scope_grant
                        (client_id, scope, approved_by, granted_at, expires_at, approval_request_id)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    grant.clientID, grant.scope, grant.approvedBy, grant.grantedAt.timeIntervalSince1970,
                    grant.expiresAt?.timeIntervalSince1970, grant.approvalRequestID,
                ])
        }
        try db.execute(
            sql: "INSERT INTO decision_event (approval_request_id, at) VALUES (?, ?)",
            arguments: [requestID, decision.at.timeIntervalSince1970])
        try appendAudit(db, [.decision(decision, on: decided)] + grants.map { .grantCreated($0, requestID: requestID) }, at: decision.at)
        return decided
    }

    public func setRequester(holdID: String, _ requester: Requester, at date: Date) async throws -> Bool {
        let json = String(decoding: try JSONEncoder().encode(requester), as: UTF8.self)
        return try await commits.write { [self] db in
            try db.execute(sql: "UPDATE hold SET requester = ? WHERE id = ? AND requester IS NULL", arguments: [json, holdID])
            guard db.changesCount == 1, let hold = try Row.fetchOne(db, sql: "SELECT * FROM hold WHERE id = ?", arguments: [holdID])
                .map(Self.hold)
            else { return false }
            try appendAudit(db, [.holdIdentified(hold, as: requester)], at: date)
            return true
        }
    }

    public func setJustification(holdID: String, _ text: String) async throws {
        try await commits.write { db in
            try db.execute(sql: "UPDATE hold SET justification = ? WHERE id = ?", arguments: [text, holdID])
        }
    }

    public func checkWritable() async throws {
        // A write that changes nothing, committed as any other (a full disk or a read-only file fails it).
        try await writer.write { db in
            try db.execute(sql: "UPDATE grant_version SET version = version WHERE id = 1")
        }
    }

    public func releasedHolds(binderHash: String, clientID: String, decidedSince: Date) async throws -> [Hold] {
        try await writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT hold.* FROM hold JOIN approval_request ON approval_request.id = hold.approval_request_id
                    WHERE hold.binder_hash = ? AND hold.client_id = ?
                      AND approval_request.state IN ('approved', 'approved_once') AND approval_request.decided_at >= ?
                    ORDER BY hold.created_at LIMIT 50
                    """, arguments: [binderHash, clientID, decidedSince.timeIntervalSince1970]
            ).map(Self.hold)
        }
    }

    public func markContinued(holdID id: String, at date: Date) async throws -> Bool {
        try await finishHold(id, at: date, event: { _ in "hold.released" })
    }

    public func markRejected(holdID id: String, at date: Date) async throws -> Bool {
        try await finishHold(id, at: date, event: { $0 == "expired" ? "hold.expired" : "hold.rejected" })
    }

    /// Marks a hold as answered once, with its audit entry named from its request's state.
    private func finishHold(_ id: String, at date: Date, event: @escaping @Sendable (String) -> String) async throws -> Bool {
        try await commits.write { [self] db in
            try db.execute(
                sql: "UPDATE hold SET consumed_at = ? WHERE id = ? AND consumed_at IS NULL",
                arguments: [date.timeIntervalSince1970, id])
            guard db.changesCount == 1 else { return false }
            if let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT hold.client_id, hold.approval_request_id, approval_request.state FROM hold
                    JOIN approval_request ON approval_request.id = hold.approval_request_id WHERE hold.id = ?
                    """, arguments: [id])
            {
                try appendAudit(
                    db, [.holdFinished(event(row["state"]), clientID: row["client_id"], holdID: id, requestID: row["approval_request_id"])],
                    at: date)
            }
            return true
        }
    }

    public func pendingRequests(expiringBy date: Date) async throws -> [ApprovalRequest] {
        try await writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM approval_request WHERE state = 'pending' AND expires_at <= ?",
                arguments: [date.timeIntervalSince1970]
            ).map(Self.approvalRequest)
        }
    }

    public func decisionEvents(after cursor: Int64) async throws -> [DecisionEvent] {
        try await writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT cursor, approval_request_id FROM decision_event WHERE cursor > ? ORDER BY cursor",
                arguments: [cursor]
            ).map { DecisionEvent(cursor: $0["cursor"], approvalRequestID: $0["approval_request_id"]) }
        }
    }

    /// Tells `observer` how long each durable write took (every change, with its audit entries), from
    /// the call to its commit; for the audit append latency in `/metrics`.
    public func observeDurableWrites(_ observer: @escaping @Sendable (Duration) -> Void) {
        commits.observer.withLock { $0 = observer }
    }

    public func firstRequestDate(clientID: String) async throws -> Date? {
        try await writer.read { db in
            try Double.fetchOne(db, sql: "SELECT MIN(created_at) FROM approval_request WHERE client_id = ?", arguments: [clientID])
                .map(Self.date)
        }
    }

    public func latestDecisionCursor() async throws -> Int64 {
        try await writer.read { db in
            try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(cursor), 0) FROM decision_event") ?? 0
        }
    }
}
