import Foundation
import PostgresNIO
import ScopeGateCore

extension PostgresGateStore {
    /// How long a seen interaction id is remembered; platforms refuse older deliveries by timestamp.
    static let interactionMemory: TimeInterval = 86_400
    /// How long a message handed to one process's outbox worker is not handed to another: several
    /// replicas share the outbox, and a message is posted by the one that claimed it (or, if that one
    /// died mid-attempt, by another after this long). Longer than one attempt (the platforms' calls
    /// time out after 10 seconds).
    static let claimLease: TimeInterval = 30

    public func requestsAwaitingMessage(platform: String) async throws -> [ApprovalRequest] {
        try await rows(
            """
            SELECT * FROM approval_request AS request
            WHERE state = 'pending' AND NOT EXISTS (
                SELECT 1 FROM chat_message WHERE approval_request_id = request.id AND platform = \(platform))
            ORDER BY created_at
            """
        ).map(Self.approvalRequest)
    }

    public func addChatMessages(approvalRequestID: String, platform: String, channels: [String], at date: Date) async throws -> Bool {
        try await write(audited: false) { connection in
            // The request row is locked, so two replicas adding the same request's messages take turns.
            let pending = try await rows(
                """
                SELECT 1 FROM approval_request WHERE id = \(approvalRequestID) AND state = 'pending'
                  AND NOT EXISTS (SELECT 1 FROM chat_message WHERE approval_request_id = \(approvalRequestID) AND platform = \(platform))
                FOR UPDATE
                """, on: connection)
            guard !pending.isEmpty else { return false }
            for channel in channels {
                try await connection.query(
                    """
                    INSERT INTO chat_message (approval_request_id, platform, channel, next_attempt_at, created_at)
                    VALUES (\(approvalRequestID), \(platform), \(channel), \(date.timeIntervalSince1970), \(date.timeIntervalSince1970))
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
            return true
        }
    }

    /// The due messages, claimed for `claimLease` (`FOR UPDATE SKIP LOCKED`): another replica asking at
    /// the same time gets other messages, never these.
    public func dueChatMessages(platform: String, at date: Date, limit: Int) async throws -> [ChatMessage] {
        try await write(audited: false) { connection in
            try await rows(
                """
                UPDATE chat_message SET next_attempt_at = \(date.timeIntervalSince1970 + Self.claimLease)
                WHERE (approval_request_id, platform, channel) IN (
                    SELECT approval_request_id, platform, channel FROM chat_message
                    WHERE platform = \(platform) AND NOT failed_permanently AND next_attempt_at <= \(date.timeIntervalSince1970)
                      AND (message_id IS NULL OR delivered_revision < revision)
                    ORDER BY created_at, channel LIMIT \(limit)
                    FOR UPDATE SKIP LOCKED)
                RETURNING *
                """, on: connection
            ).map(Self.chatMessage).sorted { ($0.approvalRequestID, $0.channel) < ($1.approvalRequestID, $1.channel) }
        }
    }

    public func chatMessages(approvalRequestID: String) async throws -> [ChatMessage] {
        try await rows(
            "SELECT * FROM chat_message WHERE approval_request_id = \(approvalRequestID) ORDER BY platform, created_at, channel"
        ).map(Self.chatMessage)
    }

    public func chatMessageDelivered(
        _ message: ChatMessage, messageID: String, postedChannel: String, revision: Int64, at date: Date
    ) async throws {
        try await write { connection in
            let stored = try await rows(
                """
                SELECT message_id FROM chat_message
                WHERE approval_request_id = \(message.approvalRequestID) AND platform = \(message.platform) AND channel = \(message.channel)
                FOR UPDATE
                """, on: connection
            ).first?["message_id"].decode(String?.self)
            let firstPost = message.messageID == nil && stored == nil
            try await connection.query(
                """
                UPDATE chat_message
                SET message_id = COALESCE(message_id, \(messageID)), posted_channel = COALESCE(posted_channel, \(postedChannel)),
                    delivered_revision = GREATEST(delivered_revision, \(revision)), attempts = 0, last_error = NULL,
                    next_attempt_at = \(date.timeIntervalSince1970)
                WHERE approval_request_id = \(message.approvalRequestID) AND platform = \(message.platform) AND channel = \(message.channel)
                """, logger: logger)
            if firstPost {
                try await appendAudit(connection, [.notificationSent(message, messageID: messageID)], at: date)
            }
        }
    }

    public func chatMessageFailed(_ message: ChatMessage, error: String, permanent: Bool, retryAt: Date, at date: Date) async throws {
        try await write { connection in
            try await connection.query(
                """
                UPDATE chat_message
                SET attempts = attempts + 1, last_error = \(error), failed_permanently = \(permanent),
                    next_attempt_at = \(retryAt.timeIntervalSince1970)
                WHERE approval_request_id = \(message.approvalRequestID) AND platform = \(message.platform) AND channel = \(message.channel)
                """, logger: logger)
            try await appendAudit(connection, [.notificationFailed(message, error: error, permanent: permanent)], at: date)
        }
    }

    public func firstSeenInteraction(platform: String, id: String, at date: Date) async throws -> Bool {
        try await write(audited: false) { connection in
            try await connection.query(
                "DELETE FROM chat_interaction WHERE seen_at < \(date.timeIntervalSince1970 - Self.interactionMemory)", logger: logger)
            return try await !rows(
                """
                INSERT INTO chat_interaction (platform, id, seen_at) VALUES (\(platform), \(id), \(date.timeIntervalSince1970))
                ON CONFLICT DO NOTHING RETURNING id
                """, on: connection
            ).isEmpty
        }
    }

    // MARK: The audit log

    /// Entries after `seq`, oldest first, optionally filtered.
    public func auditEntries(
        after seq: Int64 = 0, limit: Int = 10_000, since: Date? = nil, until: Date? = nil, clientID: String? = nil, event: String? = nil
    ) async throws -> [AuditLogRow] {
        try await rows(
            """
            SELECT * FROM audit_entry
            WHERE seq > \(seq) AND (\(since?.timeIntervalSince1970)::double precision IS NULL OR at >= \(since?.timeIntervalSince1970))
              AND (\(until?.timeIntervalSince1970)::double precision IS NULL OR at < \(until?.timeIntervalSince1970))
              AND (\(clientID)::text IS NULL OR client_id = \(clientID)) AND (\(event)::text IS NULL OR event = \(event))
            ORDER BY seq LIMIT \(limit)
            """
        ).map {
            AuditLogRow(
                seq: try $0["seq"].decode(Int64.self), jws: try $0["jws"].decode(String.self), event: try $0["event"].decode(String.self),
                clientID: try $0["client_id"].decode(String?.self), at: Self.date(try $0["at"].decode(Double.self)))
        }
    }

    /// How far `reader` has read the log: the first call starts at the newest entry.
    public func auditReadCursor(_ reader: String) async throws -> Int64 {
        try await write(audited: false) { connection in
            try await connection.query(
                """
                INSERT INTO owner_notice_cursor (platform, seq) SELECT \(reader), COALESCE(MAX(seq), 0) FROM audit_entry
                ON CONFLICT DO NOTHING
                """, logger: logger)
            return try await rows("SELECT seq FROM owner_notice_cursor WHERE platform = \(reader)", on: connection).first?["seq"]
                .decode(Int64.self) ?? 0
        }
    }

    /// Replicas share the database.
    public var sharedByProcesses: Bool { true }

    public func claimAuditReader(_ reader: String, until: Date, at now: Date) async throws -> Int64? {
        try await write(audited: false) { connection in
            try await connection.query(
                """
                INSERT INTO owner_notice_cursor (platform, seq) SELECT \(reader), COALESCE(MAX(seq), 0) FROM audit_entry
                ON CONFLICT DO NOTHING
                """, logger: logger)
            return try await rows(
                """
                UPDATE owner_notice_cursor SET claimed_by = \(processID), claimed_until = \(until.timeIntervalSince1970)
                WHERE platform = \(reader)
                  AND (claimed_until IS NULL OR claimed_until < \(now.timeIntervalSince1970) OR claimed_by = \(processID))
                RETURNING seq
                """, on: connection
            ).first?["seq"].decode(Int64.self)
        }
    }

    /// Moves `reader` past `seq` (never back).
    public func advanceAuditReadCursor(_ reader: String, to seq: Int64) async throws {
        _ = try await rows("UPDATE owner_notice_cursor SET seq = \(seq) WHERE platform = \(reader) AND seq < \(seq)")
    }

    /// The number of entries and the newest one.
    public func auditHead() async throws -> (count: Int64, head: String?) {
        let row = try await rows("SELECT seq, jws FROM audit_entry ORDER BY seq DESC LIMIT 1").first
        return (try row?["seq"].decode(Int64.self) ?? 0, try row?["jws"].decode(String.self))
    }

    /// Signs and stores a checkpoint of the log as it stands; returns it.
    public func writeAuditCheckpoint(
        sign: @escaping @Sendable (_ count: Int64, _ head: String?, _ previous: String?) throws -> String, at date: Date
    ) async throws -> (jws: String, count: Int64) {
        try await write { connection in
            let head = try await rows("SELECT seq, jws FROM audit_entry ORDER BY seq DESC LIMIT 1", on: connection).first
            let previous = try await rows("SELECT jws FROM audit_checkpoint ORDER BY id DESC LIMIT 1", on: connection).first?["jws"]
                .decode(String.self)
            let count = try head?["seq"].decode(Int64.self) ?? 0
            let jws = try sign(count, try head?["jws"].decode(String.self), previous)
            try await connection.query(
                "INSERT INTO audit_checkpoint (jws, count, at) VALUES (\(jws), \(count), \(date.timeIntervalSince1970))", logger: logger)
            return (jws, count)
        }
    }

    /// Every checkpoint, oldest first.
    public func auditCheckpoints() async throws -> [String] {
        try await rows("SELECT jws FROM audit_checkpoint ORDER BY id").map { try $0["jws"].decode(String.self) }
    }

    // MARK: Shared state

    public func putShared(kind: String, keyHash: String, value: String, expiresAt: Date) async throws {
        try await write(audited: false) { connection in
            try await connection.query(
                """
                INSERT INTO shared_entry (kind, key_hash, value, expires_at)
                VALUES (\(kind), \(keyHash), \(value), \(expiresAt.timeIntervalSince1970))
                ON CONFLICT (kind, key_hash) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
                """, logger: logger)
            // Lapsed entries go as new ones come, a few at a time.
            try await connection.query(
                """
                DELETE FROM shared_entry WHERE (kind, key_hash) IN (
                    SELECT kind, key_hash FROM shared_entry WHERE expires_at < \(expiresAt.timeIntervalSince1970 - 1200) LIMIT 100)
                """, logger: logger)
        }
    }

    public func shared(kind: String, keyHash: String, at date: Date) async throws -> String? {
        try await rows(
            """
            SELECT value FROM shared_entry
            WHERE kind = \(kind) AND key_hash = \(keyHash) AND expires_at > \(date.timeIntervalSince1970)
            """
        ).first?["value"].decode(String.self)
    }

    // MARK: Limits on new holds

    public func countHold(under keys: [(key: String, limit: Int)], window: Date) async throws -> Bool {
        do {
            return try await write(audited: false) { connection in
                for (key, limit) in keys {
                    let count = try await rows(
                        """
                        INSERT INTO hold_count (key, minute, count) VALUES (\(key), \(window.timeIntervalSince1970), 1)
                        ON CONFLICT (key, minute) DO UPDATE SET count = hold_count.count + 1
                        RETURNING count
                        """, on: connection
                    ).first?["count"].decode(Int64.self) ?? 0
                    if count > Int64(limit) { throw HoldLimitReached() }
                }
                // Old minutes go as new ones are counted, a few at a time.
                try await connection.query(
                    """
                    DELETE FROM hold_count WHERE (key, minute) IN (
                        SELECT key, minute FROM hold_count WHERE minute < \(window.timeIntervalSince1970 - 120) LIMIT 100)
                    """, logger: logger)
                return true
            }
        } catch is HoldLimitReached {
            return false
        }
    }
}
