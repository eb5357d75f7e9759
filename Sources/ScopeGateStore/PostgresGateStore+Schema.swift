import PostgresNIO

extension PostgresGateStore {
    /// Numbered, append-only migrations: never edit one that has shipped; add another. The first is
    /// the SQLite store's schema as it stands at its v14, in PostgreSQL's terms.
    static let migrations: [(version: Int, statements: [String])] = [
        (
            1,
            [
                """
                CREATE TABLE approval_request (
                    id text PRIMARY KEY,
                    client_id text NOT NULL,
                    scopes text NOT NULL,
                    already_granted text NOT NULL,
                    state text NOT NULL CHECK (state IN ('pending','approved','approved_once','denied','expired')),
                    created_at double precision NOT NULL,
                    expires_at double precision NOT NULL,
                    decided_by text,
                    decided_at double precision,
                    decision_reason text,
                    decided_scopes text,
                    escalated_to text,
                    escalated_at double precision,
                    reminded_at double precision
                )
                """,
                "CREATE UNIQUE INDEX approval_request_one_pending ON approval_request (client_id, scopes) WHERE state = 'pending'",
                "CREATE INDEX approval_request_by_state ON approval_request (state, expires_at)",
                "CREATE INDEX approval_request_once_by_client ON approval_request (client_id, decided_at) WHERE state = 'approved_once'",
                "CREATE INDEX approval_request_by_client ON approval_request (client_id, created_at)",
                """
                CREATE TABLE hold (
                    id text PRIMARY KEY,
                    approval_request_id text NOT NULL REFERENCES approval_request(id),
                    client_id text NOT NULL,
                    binder_hash text NOT NULL,
                    method text NOT NULL,
                    encoded_parameters text NOT NULL,
                    requested_scopes text NOT NULL,
                    justification text,
                    created_at double precision NOT NULL,
                    consumed_at double precision,
                    requester text
                )
                """,
                "CREATE INDEX hold_by_request ON hold (approval_request_id)",
                "CREATE INDEX hold_by_binder ON hold (binder_hash text_pattern_ops, encoded_parameters)",
                """
                CREATE TABLE scope_grant (
                    client_id text NOT NULL,
                    scope text NOT NULL,
                    approved_by text NOT NULL,
                    granted_at double precision NOT NULL,
                    expires_at double precision,
                    approval_request_id text,
                    lapse_recorded_at double precision,
                    PRIMARY KEY (client_id, scope)
                )
                """,
                "CREATE INDEX scope_grant_lapsing ON scope_grant (expires_at) WHERE lapse_recorded_at IS NULL",
                "CREATE TABLE grant_version (id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL)",
                "INSERT INTO grant_version (id, version) VALUES (1, 0)",
                """
                CREATE FUNCTION scopegate_grant_version() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN UPDATE grant_version SET version = version + 1; RETURN NULL; END $$
                """,
                """
                CREATE TRIGGER grant_version_on_change AFTER INSERT OR UPDATE OR DELETE ON scope_grant
                FOR EACH STATEMENT EXECUTE FUNCTION scopegate_grant_version()
                """,
                """
                CREATE TABLE decision_event (
                    cursor bigserial PRIMARY KEY,
                    approval_request_id text NOT NULL,
                    at double precision NOT NULL
                )
                """,
                """
                CREATE TABLE chat_message (
                    approval_request_id text NOT NULL REFERENCES approval_request(id),
                    platform text NOT NULL,
                    channel text NOT NULL,
                    message_id text,
                    posted_channel text,
                    revision bigint NOT NULL DEFAULT 1,
                    delivered_revision bigint NOT NULL DEFAULT 0,
                    attempts bigint NOT NULL DEFAULT 0,
                    next_attempt_at double precision NOT NULL,
                    last_error text,
                    failed_permanently boolean NOT NULL DEFAULT false,
                    created_at double precision NOT NULL,
                    PRIMARY KEY (approval_request_id, platform, channel)
                )
                """,
                "CREATE INDEX chat_message_due ON chat_message (platform, failed_permanently, next_attempt_at)",
                // What a request's messages show changes with its state, a hold's justification or
                // requester, a new hold and each vote: the revision moves in the same transaction.
                """
                CREATE FUNCTION scopegate_message_revision_of_request() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN UPDATE chat_message SET revision = revision + 1 WHERE approval_request_id = NEW.id; RETURN NULL; END $$
                """,
                """
                CREATE FUNCTION scopegate_message_revision() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN UPDATE chat_message SET revision = revision + 1 WHERE approval_request_id = NEW.approval_request_id; RETURN NULL; END $$
                """,
                """
                CREATE TRIGGER chat_message_on_decision AFTER UPDATE OF state ON approval_request
                FOR EACH ROW EXECUTE FUNCTION scopegate_message_revision_of_request()
                """,
                """
                CREATE TRIGGER chat_message_on_hold_change AFTER UPDATE OF justification, requester ON hold
                FOR EACH ROW EXECUTE FUNCTION scopegate_message_revision()
                """,
                """
                CREATE TRIGGER chat_message_on_hold AFTER INSERT ON hold
                FOR EACH ROW EXECUTE FUNCTION scopegate_message_revision()
                """,
                """
                CREATE TABLE chat_interaction (
                    platform text NOT NULL,
                    id text NOT NULL,
                    seen_at double precision NOT NULL,
                    PRIMARY KEY (platform, id)
                )
                """,
                "CREATE INDEX chat_interaction_by_age ON chat_interaction (seen_at)",
                """
                CREATE TABLE approval_vote (
                    approval_request_id text NOT NULL REFERENCES approval_request(id),
                    voter text NOT NULL,
                    choice text NOT NULL CHECK (choice IN ('approve', 'approve_once', 'deny')),
                    at double precision NOT NULL,
                    reason text,
                    scopes text,
                    person text,
                    ordinal bigserial,
                    PRIMARY KEY (approval_request_id, voter)
                )
                """,
                """
                CREATE TRIGGER chat_message_on_vote AFTER INSERT ON approval_vote
                FOR EACH ROW EXECUTE FUNCTION scopegate_message_revision()
                """,
                """
                CREATE TABLE audit_entry (
                    seq bigint PRIMARY KEY,
                    jws text NOT NULL,
                    event text NOT NULL,
                    client_id text,
                    at double precision NOT NULL
                )
                """,
                "CREATE INDEX audit_entry_by_time ON audit_entry (at)",
                """
                CREATE TABLE audit_checkpoint (
                    id bigserial PRIMARY KEY,
                    jws text NOT NULL,
                    count bigint NOT NULL,
                    at double precision NOT NULL
                )
                """,
                """
                CREATE FUNCTION scopegate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'audit entries and checkpoints are append-only'; END $$
                """,
                """
                CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry
                FOR EACH ROW EXECUTE FUNCTION scopegate_append_only()
                """,
                """
                CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
                FOR EACH ROW EXECUTE FUNCTION scopegate_append_only()
                """,
                "CREATE TABLE owner_notice_cursor (platform text PRIMARY KEY, seq bigint NOT NULL)",
            ]
        ),
        (
            2,
            [
                // A reader of the audit log (owners' notices per platform, revocations at the IdP) is
                // claimed by one replica at a time, so each notice and revocation is made once.
                "ALTER TABLE owner_notice_cursor ADD COLUMN claimed_by text, ADD COLUMN claimed_until double precision"
            ]
        ),
        (
            3,
            [
                // Short-lived state every replica reads (relayed codes, pushed request URIs), by the
                // SHA-256 of its key.
                """
                CREATE TABLE shared_entry (
                    kind text NOT NULL,
                    key_hash text NOT NULL,
                    value text NOT NULL,
                    expires_at double precision NOT NULL,
                    PRIMARY KEY (kind, key_hash)
                )
                """,
                "CREATE INDEX shared_entry_by_expiry ON shared_entry (expires_at)",
                // New holds counted per key (all, per client, per source address) and minute.
                """
                CREATE TABLE hold_count (
                    key text NOT NULL,
                    minute double precision NOT NULL,
                    count bigint NOT NULL,
                    PRIMARY KEY (key, minute)
                )
                """,
            ]
        ),
    ]

    /// Brings the schema up to date, once even when several processes start together.
    func migrate() async throws {
        try await write(audited: false) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.writeLock + 1))", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS scopegate_migration (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                logger: logger)
            let applied = try await rows("SELECT COALESCE(MAX(version), 0) AS version FROM scopegate_migration", on: connection)
            let current = try applied.first?["version"].decode(Int.self) ?? 0
            for migration in Self.migrations where migration.version > current {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO scopegate_migration (version) VALUES (\(migration.version))", logger: logger)
            }
        }
    }
}
