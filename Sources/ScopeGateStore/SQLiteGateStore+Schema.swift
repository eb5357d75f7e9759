import Foundation
import GRDB
import ScopeGateCore

extension SQLiteGateStore {
    /// Named, append-only migrations. Never edit one that has shipped; add another.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: approval requests, holds, grants, decision events") { db in
            try db.execute(
                sql: """
                    CREATE TABLE approval_request (
                        id TEXT PRIMARY KEY NOT NULL,
                        client_id TEXT NOT NULL,
                        scopes TEXT NOT NULL,
                        already_granted TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('pending','approved','approved_once','denied','expired')),
                        created_at REAL NOT NULL,
                        expires_at REAL NOT NULL,
                        decided_by TEXT,
                        decided_at REAL,
                        decision_reason TEXT
                    );
                    CREATE UNIQUE INDEX approval_request_one_pending
                        ON approval_request (client_id, scopes) WHERE state = 'pending';
                    CREATE INDEX approval_request_by_state ON approval_request (state, expires_at);
                    CREATE TABLE hold (
                        id TEXT PRIMARY KEY NOT NULL,
                        approval_request_id TEXT NOT NULL REFERENCES approval_request(id),
                        client_id TEXT NOT NULL,
                        binder_hash TEXT NOT NULL,
                        method TEXT NOT NULL,
                        encoded_parameters TEXT NOT NULL,
                        requested_scopes TEXT NOT NULL,
                        justification TEXT,
                        created_at REAL NOT NULL,
                        consumed_at REAL
                    );
                    CREATE INDEX hold_by_request ON hold (approval_request_id);
                    CREATE INDEX hold_by_binder ON hold (binder_hash, encoded_parameters);
                    CREATE TABLE scope_grant (
                        client_id TEXT NOT NULL,
                        scope TEXT NOT NULL,
                        approved_by TEXT NOT NULL,
                        granted_at REAL NOT NULL,
                        expires_at REAL,
                        approval_request_id TEXT,
                        PRIMARY KEY (client_id, scope)
                    );
                    CREATE TABLE decision_event (
                        cursor INTEGER PRIMARY KEY AUTOINCREMENT,
                        approval_request_id TEXT NOT NULL,
                        at REAL NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v2: chat outbox and seen interactions") { db in
            // The triggers bump a message's revision in the same transaction as the change it must show,
            // whichever process makes the change (the server, the command line).
            try db.execute(
                sql: """
                    CREATE TABLE chat_message (
                        approval_request_id TEXT NOT NULL REFERENCES approval_request(id),
                        platform TEXT NOT NULL,
                        channel TEXT NOT NULL,
                        message_id TEXT,
                        posted_channel TEXT,
                        revision INTEGER NOT NULL DEFAULT 1,
                        delivered_revision INTEGER NOT NULL DEFAULT 0,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        next_attempt_at REAL NOT NULL,
                        last_error TEXT,
                        failed_permanently INTEGER NOT NULL DEFAULT 0,
                        created_at REAL NOT NULL,
                        PRIMARY KEY (approval_request_id, platform, channel)
                    );
                    CREATE INDEX chat_message_due ON chat_message (platform, failed_permanently, next_attempt_at);
                    CREATE TRIGGER chat_message_on_decision AFTER UPDATE OF state ON approval_request
                    BEGIN
                        UPDATE chat_message SET revision = revision + 1 WHERE approval_request_id = NEW.id;
                    END;
                    CREATE TRIGGER chat_message_on_justification AFTER UPDATE OF justification ON hold
                    BEGIN
                        UPDATE chat_message SET revision = revision + 1
                        WHERE approval_request_id = NEW.approval_request_id;
                    END;
                    CREATE TABLE chat_interaction (
                        platform TEXT NOT NULL,
                        id TEXT NOT NULL,
                        seen_at REAL NOT NULL,
                        PRIMARY KEY (platform, id)
                    );
                    CREATE INDEX chat_interaction_by_age ON chat_interaction (seen_at);
                    """)
        }
        registerAuditMigration(&migrator)
        migrator.registerMigration("v4: a version number of the grants") { db in
            try db.execute(
                sql: """
                    CREATE TABLE grant_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
                    INSERT INTO grant_version (id, version) VALUES (1, 0);
                    CREATE TRIGGER grant_version_on_insert AFTER INSERT ON scope_grant
                    BEGIN UPDATE grant_version SET version = version + 1; END;
                    CREATE TRIGGER grant_version_on_update AFTER UPDATE ON scope_grant
                    BEGIN UPDATE grant_version SET version = version + 1; END;
                    CREATE TRIGGER grant_version_on_delete AFTER DELETE ON scope_grant
                    BEGIN UPDATE grant_version SET version = version + 1; END;
                    """)
        }
        migrator.registerMigration("v5: approve-once requests by client") { db in
            // The second gate looks up a client's recent approve-once decisions for every token issued.
            try db.execute(
                sql: """
                    CREATE INDEX approval_request_once_by_client ON approval_request (client_id, decided_at)
                        WHERE state = 'approved_once';
                    """)
        }
        migrator.registerMigration("v6: chat messages count the requests waiting") { db in
            // Each new hold changes the count of waiting requests a chat message shows.
            try db.execute(
                sql: """
                    CREATE TRIGGER chat_message_on_hold AFTER INSERT ON hold
                    BEGIN
                        UPDATE chat_message SET revision = revision + 1 WHERE approval_request_id = NEW.approval_request_id;
                    END;
                    """)
        }
        migrator.registerMigration("v7: votes of requests that need several approvers") { db in
            // Each vote changes what the request's chat messages show (the approvals so far).
            try db.execute(
                sql: """
                    CREATE TABLE approval_vote (
                        approval_request_id TEXT NOT NULL REFERENCES approval_request(id),
                        voter TEXT NOT NULL,
                        choice TEXT NOT NULL CHECK (choice IN ('approve', 'approve_once', 'deny')),
                        at REAL NOT NULL,
                        reason TEXT,
                        PRIMARY KEY (approval_request_id, voter)
                    );
                    CREATE TRIGGER chat_message_on_vote AFTER INSERT ON approval_vote
                    BEGIN
                        UPDATE chat_message SET revision = revision + 1 WHERE approval_request_id = NEW.approval_request_id;
                    END;
                    """)
        }
        migrator.registerMigration("v8: escalation of unanswered requests") { db in
            try db.execute(
                sql: """
                    ALTER TABLE approval_request ADD COLUMN escalated_to TEXT;
                    ALTER TABLE approval_request ADD COLUMN escalated_at REAL;
                    """)
        }
        migrator.registerMigration("v9: reminders of unanswered requests") { db in
            try db.execute(sql: "ALTER TABLE approval_request ADD COLUMN reminded_at REAL")
        }
        migrator.registerMigration("v10: partial approvals") { db in
            // The scopes a partial approval approved (JSON), on the request and on each vote.
            try db.execute(
                sql: """
                    ALTER TABLE approval_request ADD COLUMN decided_scopes TEXT;
                    ALTER TABLE approval_vote ADD COLUMN scopes TEXT;
                    """)
        }
        migrator.registerMigration("v11: who asks") { db in
            // The requester as the IdP named them (JSON), set once; the request's messages show it.
            try db.execute(
                sql: """
                    ALTER TABLE hold ADD COLUMN requester TEXT;
                    CREATE TRIGGER chat_message_on_requester AFTER UPDATE OF requester ON hold
                    BEGIN
                        UPDATE chat_message SET revision = revision + 1 WHERE approval_request_id = NEW.approval_request_id;
                    END;
                    """)
        }
        migrator.registerMigration("v12: owner notices") { db in
            // How far each platform's notices to app owners have read the audit log.
            try db.execute(sql: "CREATE TABLE owner_notice_cursor (platform TEXT PRIMARY KEY, seq INTEGER NOT NULL)")
        }
        migrator.registerMigration("v13: one person, one vote") { db in
            // The verified email address behind a vote, when known, so a person counts once.
            try db.execute(sql: "ALTER TABLE approval_vote ADD COLUMN person TEXT")
        }
        migrator.registerMigration("v14: clients known since") { db in
            // Automation on a client's age reads when ScopeGate first held a request of it.
            try db.execute(sql: "CREATE INDEX approval_request_by_client ON approval_request (client_id, created_at)")
        }
        return migrator
    }

    static func json(_ scopes: ScopeSet) throws -> String {
        String(decoding: try JSONEncoder().encode(scopes), as: UTF8.self)
    }

    static func scopes(_ text: String) throws -> ScopeSet {
        try JSONDecoder().decode(ScopeSet.self, from: Data(text.utf8))
    }

    static func date(_ value: Double) -> Date { Date(timeIntervalSince1970: value) }

    static func approvalRequest(_ row: Row) throws -> ApprovalRequest {
        guard let state = ApprovalRequest.State(rawValue: row["state"]) else {
            throw GateError(.storeFailure, "approval request \(row["id"] as String) has an unknown state")
        }
        var request = ApprovalRequest(
            id: row["id"], clientID: row["client_id"], scopes: try scopes(row["scopes"]),
            alreadyGranted: try scopes(row["already_granted"]), createdAt: date(row["created_at"]),
            expiresAt: date(row["expires_at"]))
        request.state = state
        request.remindedAt = (row["reminded_at"] as Double?).map(date)
        if let route: String = row["escalated_to"], let at: Double = row["escalated_at"] { request.escalation = (route, date(at)) }
        if state != .pending, let actor: String = row["decided_by"], let at: Double = row["decided_at"] {
            request.decision = Decision(
                outcome: state, actor: actor, at: date(at), reason: row["decision_reason"],
                scopes: try (row["decided_scopes"] as String?).map(scopes))
        }
        return request
    }

    static func hold(_ row: Row) throws -> Hold {
        guard let method = AuthorizationRequest.Method(rawValue: row["method"]) else {
            throw GateError(.storeFailure, "hold \(row["id"] as String) has an unknown method")
        }
        var hold = Hold(
            id: row["id"], approvalRequestID: row["approval_request_id"], clientID: row["client_id"],
            binderHash: row["binder_hash"], method: method, encodedParameters: row["encoded_parameters"],
            requestedScopes: try scopes(row["requested_scopes"]), justification: row["justification"],
            createdAt: date(row["created_at"]), consumedAt: (row["consumed_at"] as Double?).map(date))
        hold.requester = try (row["requester"] as String?).map { try JSONDecoder().decode(Requester.self, from: Data($0.utf8)) }
        return hold
    }

    static func chatMessage(_ row: Row) -> ChatMessage {
        ChatMessage(
            approvalRequestID: row["approval_request_id"], platform: row["platform"], channel: row["channel"],
            messageID: row["message_id"], postedChannel: row["posted_channel"], revision: row["revision"],
            deliveredRevision: row["delivered_revision"], attempts: row["attempts"],
            nextAttemptAt: date(row["next_attempt_at"]), lastError: row["last_error"],
            failedPermanently: row["failed_permanently"])
    }

    static func grant(_ row: Row) -> Grant {
        Grant(
            clientID: row["client_id"], scope: row["scope"], approvedBy: row["approved_by"],
            grantedAt: date(row["granted_at"]), expiresAt: (row["expires_at"] as Double?).map(date),
            approvalRequestID: row["approval_request_id"])
    }
}
