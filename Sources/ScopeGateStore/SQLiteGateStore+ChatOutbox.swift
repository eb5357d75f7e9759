import Foundation
import GRDB
import ScopeGateCore

extension SQLiteGateStore: ChatOutboxStore {
    /// How long a seen interaction id is remembered; platforms refuse older deliveries by timestamp.
    static let interactionMemory: TimeInterval = 86_400

    public func requestsAwaitingMessage(platform: String) async throws -> [ApprovalRequest] {
        try await writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM approval_request AS request
                    WHERE state = 'pending' AND NOT EXISTS (
                        SELECT 1 FROM chat_message WHERE approval_request_id = request.id AND platform = ?)
                    ORDER BY created_at
                    """, arguments: [platform]
            ).map(Self.approvalRequest)
        }
    }

    public func addChatMessages(approvalRequestID: String, platform: String, channels: [String], at date: Date)
        async throws -> Bool
    {
        try await commits.write { db in
            let pending = try Bool.fetchOne(
                db,
                sql: """
                    SELECT state = 'pending' AND NOT EXISTS (
                        SELECT 1 FROM chat_message WHERE approval_request_id = ? AND platform = ?)
                    FROM approval_request WHERE id = ?
                    """, arguments: [approvalRequestID, platform, approvalRequestID])
            guard pending == true else { return false }
            for channel in channels {
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO chat_message
                            (approval_request_id, platform, channel, next_attempt_at, created_at)
                        VALUES (?, ?, ?, ?, ?)
                        """,
                    arguments: [approvalRequestID, platform, channel, date.timeIntervalSince1970, date.timeIntervalSince1970])
            }
            return true
        }
    }

    public func dueChatMessages(platform: String, at date: Date, limit: Int) async throws -> [ChatMessage] {
        try await writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM chat_message
                    WHERE platform = ? AND failed_permanently = 0 AND next_attempt_at <= ?
                      AND (message_id IS NULL OR delivered_revision < revision)
                    ORDER BY created_at, channel LIMIT ?
                    """, arguments: [platform, date.timeIntervalSince1970, limit]
            ).map(Self.chatMessage)
        }
    }

    public func chatMessages(approvalRequestID: String) async throws -> [ChatMessage] {
        try await writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM chat_message WHERE approval_request_id = ? ORDER BY platform, created_at, channel",
                arguments: [approvalRequestID]
            ).map(Self.chatMessage)
        }
    }

    public func chatMessageDelivered(
        _ message: ChatMessage, messageID: String, postedChannel: String, revision: Int64, at date: Date
    ) async throws {
        try await commits.write { [self] db in
            let stored = try String.fetchOne(
                db, sql: "SELECT message_id FROM chat_message WHERE approval_request_id = ? AND platform = ? AND channel = ?",
                arguments: [message.approvalRequestID, message.platform, message.channel])
            let firstPost = message.messageID == nil && stored == nil
            try db.execute(
                sql: """
                    UPDATE chat_message
                    SET message_id = COALESCE(message_id, ?), posted_channel = COALESCE(posted_channel, ?),
                        delivered_revision = MAX(delivered_revision, ?), attempts = 0, last_error = NULL,
                        next_attempt_at = ?
                    WHERE approval_request_id = ? AND platform = ? AND channel = ?
                    """,
                arguments: [
                    messageID, postedChannel, revision, date.timeIntervalSince1970, message.approvalRequestID,
                    message.platform, message.channel,
                ])
            if firstPost {
                try appendAudit(db, [.notificationSent(message, messageID: messageID)], at: date)
            }
        }
    }

    public func chatMessageFailed(_ message: ChatMessage, error: String, permanent: Bool, retryAt: Date, at date: Date)
        async throws
    {
        try await commits.write { [self] db in
            try db.execute(
                sql: """
                    UPDATE chat_message
                    SET attempts = attempts + 1, last_error = ?, failed_permanently = ?, next_attempt_at = ?
                    WHERE approval_request_id = ? AND platform = ? AND channel = ?
                    """,
                arguments: [
                    error, permanent, retryAt.timeIntervalSince1970, message.approvalRequestID, message.platform,
                    message.channel,
                ])
            try appendAudit(db, [.notificationFailed(message, error: error, permanent: permanent)], at: date)
        }
    }

    public func firstSeenInteraction(platform: String, id: String, at date: Date) async throws -> Bool {
        try await commits.write { db in
            try db.execute(
                sql: "DELETE FROM chat_interaction WHERE seen_at < ?",
                arguments: [date.timeIntervalSince1970 - Self.interactionMemory])
            try db.execute(
                sql: "INSERT OR IGNORE INTO chat_interaction (platform, id, seen_at) VALUES (?, ?, ?)",
                arguments: [platform, id, date.timeIntervalSince1970])
            return db.changesCount == 1
        }
    }
}
