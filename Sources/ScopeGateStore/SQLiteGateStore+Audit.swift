import Foundation
import GRDB
import ScopeGateCore

extension SQLiteGateStore {
    static func registerAuditMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v3: append-only audit log and checkpoints") { db in
            try db.execute(
                sql: """
                    CREATE TABLE audit_entry (
                        seq INTEGER PRIMARY KEY NOT NULL,
                        jws TEXT NOT NULL,
                        event TEXT NOT NULL,
                        client_id TEXT,
                        at REAL NOT NULL
                    );
                    CREATE INDEX audit_entry_by_time ON audit_entry (at);
                    CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry
                    BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
                    CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry
                    BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
                    CREATE TABLE audit_checkpoint (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        jws TEXT NOT NULL,
                        count INTEGER NOT NULL,
                        at REAL NOT NULL
                    );
                    CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
                    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
                    CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
                    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
                    ALTER TABLE scope_grant ADD COLUMN lapse_recorded_at REAL;
                    CREATE INDEX scope_grant_lapsing ON scope_grant (expires_at) WHERE lapse_recorded_at IS NULL;
                    """)
        }
    }

    /// Appends `events` to the audit log inside the caller's transaction: sealed with the next
    /// sequence numbers, each chained to the one before. Throws (failing the whole transaction) when
    /// an entry cannot be sealed or written. Without a sealer, the store keeps no audit log.
    func appendAudit(_ db: Database, _ events: [AuditEvent], at date: Date) throws {
        guard let audit, !events.isEmpty else { return }
        // This runs for every entry, inside the transaction every writer waits on: the head comes from
        // what this transaction wrote last when it can, and statements are cached.
        let generation = commits.generation
        var seq: Int64
        var previous: String?
        if let cached = auditHeadCache.withLock({ $0 }), cached.generation == generation {
            (seq, previous) = (cached.seq, cached.jws)
        } else {
            let last = try Row.fetchOne(db.cachedStatement(sql: "SELECT seq, jws FROM audit_entry ORDER BY seq DESC LIMIT 1"))
            (seq, previous) = (last?["seq"] ?? 0, last?["jws"])
        }
        for event in events {
            seq += 1
            let jws: String
            do {
                jws = try audit.seal(event, seq: seq, previous: previous, at: date)
            } catch {
                throw GateError(.storeFailure, "the audit entry cannot be signed")
            }
            try db.cachedStatement(sql: "INSERT INTO audit_entry (seq, jws, event, client_id, at) VALUES (?, ?, ?, ?, ?)")
                .execute(arguments: [seq, jws, event.type, event.clientID, date.timeIntervalSince1970])
            previous = jws
        }
        if let previous { auditHeadCache.withLock { $0 = (generation, seq, previous) } }
    }

    public func recordLapsedGrants(at date: Date) async throws -> Int {
        try await commits.write { [self] db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT client_id, scope, expires_at, approval_request_id FROM scope_grant
                    WHERE expires_at IS NOT NULL AND expires_at <= ? AND lapse_recorded_at IS NULL
                    ORDER BY expires_at LIMIT 500
                    """, arguments: [date.timeIntervalSince1970])
            guard !rows.isEmpty else { return 0 }
            try appendAudit(
                db,
                rows.map { row in
                    .grantExpired(
                        clientID: row["client_id"], scope: row["scope"], requestID: row["approval_request_id"], expiredAt: row["expires_at"])
                }, at: date)
            for row in rows {
                try db.execute(
                    sql: "UPDATE scope_grant SET lapse_recorded_at = ? WHERE client_id = ? AND scope = ?",
                    arguments: [date.timeIntervalSince1970, row["client_id"] as String, row["scope"] as String])
            }
            return rows.count
        }
    }

    public func recordAudit(_ event: AuditEvent, at date: Date) async throws {
        guard audit != nil else { return }
        try await commits.write { [self] db in try appendAudit(db, [event], at: date) }
    }

    // MARK: Reading the log

    /// One stored entry (the name this store's callers knew it by).
    public typealias AuditRow = AuditLogRow

    /// Entries after `seq`, oldest first, optionally filtered.
    public func auditEntries(
        after seq: Int64 = 0, limit: Int = 10_000, since: Date? = nil, until: Date? = nil, clientID: String? = nil,
        event: String? = nil
    ) async throws -> [AuditRow] {
        var conditions = ["seq > ?"]
        var arguments: StatementArguments = [seq]
        if let since {
            conditions.append("at >= ?")
            arguments += [since.timeIntervalSince1970]
        }
        if let until {
            conditions.append("at < ?")
            arguments += [until.timeIntervalSince1970]
        }
        if let clientID {
            conditions.append("client_id = ?")
            arguments += [clientID]
        }
        if let event {
            conditions.append("event = ?")
            arguments += [event]
        }
        arguments += [limit]
        let sql = "SELECT * FROM audit_entry WHERE \(conditions.joined(separator: " AND ")) ORDER BY seq LIMIT ?"
        let statementArguments = arguments
        return try await writer.read { db in
            try Row.fetchAll(db, sql: sql, arguments: statementArguments).map {
                AuditRow(seq: $0["seq"], jws: $0["jws"], event: $0["event"], clientID: $0["client_id"], at: Self.date($0["at"]))
            }
        }
    }

    /// How far `reader` (a platform's notices to app owners, `slack` or `teams`; the revocations at
    /// the IdP, `idp-revocation`) has read the log: the first call starts at the newest entry (nothing
    /// older is acted on). Kept in `owner_notice_cursor`, the table's name from when owners' notices
    /// were its only reader.
    public func auditReadCursor(_ reader: String) async throws -> Int64 {
        try await commits.write { db in
            try db.execute(
                sql: "INSERT OR IGNORE INTO owner_notice_cursor (platform, seq) SELECT ?, COALESCE(MAX(seq), 0) FROM audit_entry",
                arguments: [reader])
            return try Int64.fetchOne(db, sql: "SELECT seq FROM owner_notice_cursor WHERE platform = ?", arguments: [reader]) ?? 0
        }
    }

    /// One process serves a SQLite file.
    public var sharedByProcesses: Bool { false }

    /// The reader's place: one process serves a SQLite file, so there is nobody to claim it from.
    public func claimAuditReader(_ reader: String, until: Date, at now: Date) async throws -> Int64? {
        try await auditReadCursor(reader)
    }

    /// Moves `reader` past `seq` (never back).
    public func advanceAuditReadCursor(_ reader: String, to seq: Int64) async throws {
        try await commits.write { db in
            try db.execute(
                sql: "UPDATE owner_notice_cursor SET seq = ? WHERE platform = ? AND seq < ?", arguments: [seq, reader, seq])
        }
    }

    /// The number of entries and the newest one.
    public func auditHead() async throws -> (count: Int64, head: String?) {
        try await writer.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT seq, jws FROM audit_entry ORDER BY seq DESC LIMIT 1")
            return (row?["seq"] ?? 0, row?["jws"])
        }
    }

    /// Signs and stores a checkpoint of the log as it stands; returns it.
    public func writeAuditCheckpoint(
        sign: @escaping @Sendable (_ count: Int64, _ head: String?, _ previous: String?) throws -> String, at date: Date
    ) async throws -> (jws: String, count: Int64) {
        try await commits.write { db in
            let head = try Row.fetchOne(db, sql: "SELECT seq, jws FROM audit_entry ORDER BY seq DESC LIMIT 1")
            let previous = try String.fetchOne(db, sql: "SELECT jws FROM audit_checkpoint ORDER BY id DESC LIMIT 1")
            let count: Int64 = head?["seq"] ?? 0
            let jws = try sign(count, head?["jws"], previous)
            try db.execute(
                sql: "INSERT INTO audit_checkpoint (jws, count, at) VALUES (?, ?, ?)",
                arguments: [jws, count, date.timeIntervalSince1970])
            return (jws, count)
        }
    }

    /// Every checkpoint, oldest first.
    public func auditCheckpoints() async throws -> [String] {
        try await writer.read { db in try String.fetchAll(db, sql: "SELECT jws FROM audit_checkpoint ORDER BY id") }
    }
}
