import Foundation
import Logging
import NIOSSL
import PostgresNIO
import ScopeGateCore
import Synchronization

/// The `GateStore` and `ChatOutboxStore` on PostgreSQL, for several ScopeGate processes sharing one
/// database.
///
/// Every method is one transaction. Decisions are compare-and-set updates (`WHERE state = 'pending'`),
/// so of two replicas deciding one request exactly one succeeds. With an audit sealer, every state
/// change appends its signed entries in the same transaction, after taking a transaction-scoped
/// advisory lock: audited writes from every replica are serialized, so the chain stays one chain
/// (no two entries with one predecessor) and decision events commit in the order of their cursor.
/// Times are stored as seconds since 1970 (`double precision`), as in the SQLite store.
public final class PostgresGateStore: GateStore, ChatOutboxStore, AuditLogStore, SharedStateStore, HoldLimitStore, Sendable {
    let client: PostgresClient
    let audit: (any AuditSealing)?
    let logger: Logger
    private let runner: Task<Void, Never>
    /// Told how long each write transaction took, when set.
    let writeObserver = Mutex<(@Sendable (Duration) -> Void)?>(nil)
    /// This process, as claims in the database name it.
    let processID = RandomID.make(prefix: "p_", bytes: 8)

    /// The advisory lock that serializes audited writes and decision events across processes.
    static let writeLock: Int64 = 0x5C09_E6A7_E000_0001

    /// Connects to the database `url` names (`postgres://user:password@host:port/database`, with
    /// `?sslmode=disable|prefer|require`; `require` by default off loopback) and brings its schema up
    /// to date. `audit` seals the audit log's entries; without it the store keeps no audit log.
    public init(url: String, audit: (any AuditSealing)? = nil, logger: Logger = Logger(label: "scopegate.postgres")) async throws {
        let configuration = try Self.configuration(url)
        // One connection first, on its own: the pool would keep retrying a server that refuses
        // ScopeGate (a wrong password, a missing database) for a minute before saying so.
        try await Self.checkConnection(url, parameters: Self.sessionParameters, logger: logger)
        // The client's own chatter (a lease asked for before its run loop started, reconnects) stays
        // below errors.
        var clientLogger = logger
        clientLogger.logLevel = .error
        let client = PostgresClient(configuration: configuration, backgroundLogger: clientLogger)
        self.client = client
        self.audit = audit
        self.logger = logger
        self.runner = Task { await client.run() }
        do {
            try await migrate()
        } catch {
            runner.cancel()
            throw error
        }
    }

    /// Closes the connections.
    public func close() {
        runner.cancel()
    }

    deinit { runner.cancel() }

    /// Opens and closes one connection to the database `url` names, within ten seconds.
    static func checkConnection(_ url: String, parameters: [(String, String)], logger: Logger) async throws {
        let endpoint = try Endpoint(url)
        let tls: PostgresConnection.Configuration.TLS
        do {
            switch endpoint.mode {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
        } catch {
            throw GateError(.invalidConfiguration, "the PostgreSQL connection's TLS cannot be set up")
        }
        var connection = PostgresConnection.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.user, password: endpoint.password,
            database: endpoint.database, tls: tls)
        connection.options.connectTimeout = .seconds(10)
        connection.options.additionalStartupParameters = parameters
        do {
            try await PostgresConnection.connect(configuration: connection, id: 0, logger: logger).close()
        } catch {
            throw storeFailure(error)
        }
    }

    /// What a `postgres://` URL names.
    struct Endpoint {
        enum Mode { case disable, prefer, require }
        var host: String
        var port: Int
        var user: String
        var password: String?
        var database: String?
        var mode: Mode

        init(_ text: String) throws {
            guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql",
                let host = url.host, !host.isEmpty, let user = url.user, !user.isEmpty
            else {
                throw GateError(.invalidConfiguration, "the PostgreSQL URL must be postgres://user:password@host:port/database")
            }
            self.host = host
            self.port = url.port ?? 5432
            self.user = user.removingPercentEncoding ?? user
            self.password = url.password.map { $0.removingPercentEncoding ?? $0 }
            self.database = url.path.hasPrefix("/") ? String(url.path.dropFirst()).removingPercentEncoding : nil
            switch url.queryItems?.first(where: { $0.name == "sslmode" })?.value
                ?? (["127.0.0.1", "localhost", "::1"].contains(host) ? "disable" : "require")
            {
            case "disable": mode = .disable
            case "prefer": mode = .prefer
            case "require", "verify-full": mode = .require
            default: throw GateError(.invalidConfiguration, "the PostgreSQL URL's sslmode must be disable, prefer or require")
            }
        }
    }

    /// Settings of every session: nothing waits forever (a statement, or a wait for the write lock,
    /// that takes longer fails, and the request it served fails closed); a transaction left idle by a
    /// process that hung mid-way (a network partition) is ended, so its lock does not stop every
    /// replica's writes.
    static let sessionParameters = [
        ("statement_timeout", "30s"), ("idle_in_transaction_session_timeout", "30s"), ("application_name", "scopegate"),
    ]

    /// The client configuration of a `postgres://` URL.
    static func configuration(_ text: String) throws -> PostgresClient.Configuration {
        let endpoint = try Endpoint(text)
        let tls: PostgresClient.Configuration.TLS
        switch endpoint.mode {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(.makeClientConfiguration())
        case .require: tls = .require(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.user, password: endpoint.password,
            database: endpoint.database, tls: tls)
        configuration.options.maximumConnections = 20
        configuration.options.additionalStartupParameters = sessionParameters
        return configuration
    }

    // MARK: Transactions

    /// Thrown inside a transaction to roll it back when a limit on new holds is reached.
    struct HoldLimitReached: Error {}

    /// Runs `body` in one transaction; with `audited`, after taking the write lock.
    /// A `GateError` thrown by `body` (already decided, already voted, not found) comes out as it is; the
    /// transaction is rolled back. Any database error comes out as `storeFailure`, without the query or
    /// its values.
    @discardableResult
    func write<T: Sendable>(audited: Bool = true, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        defer { if let observe = writeObserver.withLock({ $0 }) { observe(ContinuousClock.now - start) } }
        do {
            return try await client.withTransaction(logger: logger) { connection in
                if audited { try await connection.query("SELECT pg_advisory_xact_lock(\(Self.writeLock))", logger: logger) }
                return try await body(connection)
            }
        } catch let error as PostgresTransactionError {
            if error.rollbackError == nil, let closure = error.closureError, closure is GateError || closure is HoldLimitReached {
                throw closure
            }
            throw Self.storeFailure(error.closureError ?? error.commitError ?? error.beginError ?? error)
        } catch {
            throw Self.storeFailure(error)
        }
    }

    /// A database error as ScopeGate reports it: the kind and PostgreSQL's message, never the query or
    /// the values bound to it (holds, codes and audit entries travel in them).
    static func storeFailure(_ error: any Error) -> GateError {
        if let gate = error as? GateError { return gate }
        if let psql = error as? PSQLError {
            return GateError(.storeFailure, "PostgreSQL \(psql.code)" + (psql.serverInfo?[.message].map { ": " + $0 } ?? ""))
        }
        return GateError(.storeFailure, "PostgreSQL: \(type(of: error))")
    }

    public func observeDurableWrites(_ observer: @escaping @Sendable (Duration) -> Void) {
        writeObserver.withLock { $0 = observer }
    }

    /// The rows of `query`, for reading by column name.
    func rows(_ query: PostgresQuery, on connection: PostgresConnection? = nil) async throws -> [PostgresRandomAccessRow] {
        do {
            let sequence: PostgresRowSequence
            if let connection {
                sequence = try await connection.query(query, logger: logger)
            } else {
                sequence = try await client.query(query, logger: logger)
            }
            var rows: [PostgresRandomAccessRow] = []
            for try await row in sequence { rows.append(row.makeRandomAccess()) }
            return rows
        } catch where connection == nil {
            throw Self.storeFailure(error)
        }
    }

    /// Appends `events` to the audit log in the caller's transaction, which holds the write lock.
    func appendAudit(_ connection: PostgresConnection, _ events: [AuditEvent], at date: Date) async throws {
        guard let audit, !events.isEmpty else { return }
        let last = try await rows("SELECT seq, jws FROM audit_entry ORDER BY seq DESC LIMIT 1", on: connection).first
        var seq = try last?["seq"].decode(Int64.self) ?? 0
        var previous = try last?["jws"].decode(String.self)
        for event in events {
            seq += 1
            let jws: String
            do {
                jws = try audit.seal(event, seq: seq, previous: previous, at: date)
            } catch {
                throw GateError(.storeFailure, "the audit entry cannot be signed")
            }
            try await connection.query(
                "INSERT INTO audit_entry (seq, jws, event, client_id, at) VALUES (\(seq), \(jws), \(event.type), \(event.clientID), \(date.timeIntervalSince1970))",
                logger: logger)
            previous = jws
        }
    }

    // MARK: Rows

    static func json(_ scopes: ScopeSet) throws -> String {
        String(decoding: try JSONEncoder().encode(scopes), as: UTF8.self)
    }

    static func scopes(_ text: String) throws -> ScopeSet {
        try JSONDecoder().decode(ScopeSet.self, from: Data(text.utf8))
    }

    static func date(_ value: Double) -> Date { Date(timeIntervalSince1970: value) }

    static func approvalRequest(_ row: PostgresRandomAccessRow) throws -> ApprovalRequest {
        guard let state = ApprovalRequest.State(rawValue: try row["state"].decode(String.self)) else {
            throw GateError(.storeFailure, "an approval request has an unknown state")
        }
        var request = ApprovalRequest(
            id: try row["id"].decode(String.self), clientID: try row["client_id"].decode(String.self),
            scopes: try scopes(try row["scopes"].decode(String.self)),
            alreadyGranted: try scopes(try row["already_granted"].decode(String.self)),
            createdAt: date(try row["created_at"].decode(Double.self)), expiresAt: date(try row["expires_at"].decode(Double.self)))
        request.state = state
        request.remindedAt = try row["reminded_at"].decode(Double?.self).map(date)
        if let route = try row["escalated_to"].decode(String?.self), let at = try row["escalated_at"].decode(Double?.self) {
            request.escalation = (route, date(at))
        }
        if state != .pending, let actor = try row["decided_by"].decode(String?.self), let at = try row["decided_at"].decode(Double?.self) {
            request.decision = Decision(
                outcome: state, actor: actor, at: date(at), reason: try row["decision_reason"].decode(String?.self),
                scopes: try row["decided_scopes"].decode(String?.self).map(scopes))
        }
        return request
    }

    static func hold(_ row: PostgresRandomAccessRow) throws -> Hold {
        guard let method = AuthorizationRequest.Method(rawValue: try row["method"].decode(String.self)) else {
            throw GateError(.storeFailure, "a hold has an unknown method")
        }
        var hold = Hold(
            id: try row["id"].decode(String.self), approvalRequestID: try row["approval_request_id"].decode(String.self),
            clientID: try row["client_id"].decode(String.self), binderHash: try row["binder_hash"].decode(String.self),
            method: method, encodedParameters: try row["encoded_parameters"].decode(String.self),
            requestedScopes: try scopes(try row["requested_scopes"].decode(String.self)),
            justification: try row["justification"].decode(String?.self), createdAt: date(try row["created_at"].decode(Double.self)),
            consumedAt: try row["consumed_at"].decode(Double?.self).map(date))
        hold.requester = try row["requester"].decode(String?.self).map { try JSONDecoder().decode(Requester.self, from: Data($0.utf8)) }
        return hold
    }

    static func grant(_ row: PostgresRandomAccessRow) throws -> Grant {
        Grant(
            clientID: try row["client_id"].decode(String.self), scope: try row["scope"].decode(String.self),
            approvedBy: try row["approved_by"].decode(String.self), grantedAt: date(try row["granted_at"].decode(Double.self)),
            expiresAt: try row["expires_at"].decode(Double?.self).map(date),
            approvalRequestID: try row["approval_request_id"].decode(String?.self))
    }

    static func chatMessage(_ row: PostgresRandomAccessRow) throws -> ChatMessage {
        ChatMessage(
            approvalRequestID: try row["approval_request_id"].decode(String.self), platform: try row["platform"].decode(String.self),
            channel: try row["channel"].decode(String.self), messageID: try row["message_id"].decode(String?.self),
            postedChannel: try row["posted_channel"].decode(String?.self), revision: try row["revision"].decode(Int64.self),
            deliveredRevision: try row["delivered_revision"].decode(Int64.self), attempts: Int(try row["attempts"].decode(Int64.self)),
            nextAttemptAt: date(try row["next_attempt_at"].decode(Double.self)), lastError: try row["last_error"].decode(String?.self),
            failedPermanently: try row["failed_permanently"].decode(Bool.self))
    }
}
