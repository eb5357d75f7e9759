import Foundation
import ScopeGateCore

/// One entry of the audit log as a store keeps it.
public struct AuditLogRow: Sendable, Equatable {
    public var seq: Int64
    public var jws: String
    public var event: String
    public var clientID: String?
    public var at: Date

    public init(seq: Int64, jws: String, event: String, clientID: String?, at: Date) {
        self.seq = seq
        self.jws = jws
        self.event = event
        self.clientID = clientID
        self.at = at
    }
}

/// A store's signed audit log, read back: exports, checkpoints, and the services that act on what
/// the log records (owners' notices, revocations at the IdP) with a place in it kept in the store.
public protocol AuditLogStore: Sendable {
    /// Entries after `seq`, oldest first, at most `limit`, optionally filtered.
    func auditEntries(
        after seq: Int64, limit: Int, since: Date?, until: Date?, clientID: String?, event: String?
    ) async throws -> [AuditLogRow]
    /// How far `reader` has read the log: the first call starts at the newest entry.
    func auditReadCursor(_ reader: String) async throws -> Int64
    /// Moves `reader` past `seq` (never back).
    func advanceAuditReadCursor(_ reader: String, to seq: Int64) async throws
    /// The number of entries and the newest one.
    func auditHead() async throws -> (count: Int64, head: String?)
    /// Signs and stores a checkpoint of the log as it stands; returns it.
    func writeAuditCheckpoint(
        sign: @escaping @Sendable (_ count: Int64, _ head: String?, _ previous: String?) throws -> String, at date: Date
    ) async throws -> (jws: String, count: Int64)
    /// Every checkpoint, oldest first.
    func auditCheckpoints() async throws -> [String]
    /// Whether several ScopeGate processes may act on this log at once (PostgreSQL replicas): readers
    /// then claim their place before acting on what follows it (`claimAuditReader`).
    var sharedByProcesses: Bool { get }
    /// Takes `reader`'s place in the log for this process until `until`, so that of several processes
    /// one acts on each entry; returns the place, or `nil` while another process holds it.
    func claimAuditReader(_ reader: String, until: Date, at now: Date) async throws -> Int64?
    /// Tells `observer` how long each durable write took (for `/metrics`).
    func observeDurableWrites(_ observer: @escaping @Sendable (Duration) -> Void)
}

extension AuditLogStore {
    /// Entries after `seq`, oldest first, at most `limit`.
    public func auditEntries(after seq: Int64, limit: Int) async throws -> [AuditLogRow] {
        try await auditEntries(after: seq, limit: limit, since: nil, until: nil, clientID: nil, event: nil)
    }
}

/// Everything ScopeGate's server needs of a store: the gate, the chat outbox and the audit log.
public typealias ScopeGateStorage = GateStore & ChatOutboxStore & AuditLogStore

/// Short-lived state that replicas share beyond the gate's records, each entry a kind, the SHA-256 of
/// its key (never the key: codes and request URIs are bearer values) and a JSON value: the
/// authorization codes ScopeGate relayed (`code`), so the token endpoint of any replica knows what a
/// code's request asked for, and the request URIs of pushed requests (`par`), so any replica's
/// authorization endpoint admits them.
public protocol SharedStateStore: Sendable {
    /// Records `value` under `kind` and `keyHash` until `expiresAt`.
    func putShared(kind: String, keyHash: String, value: String, expiresAt: Date) async throws
    /// What was recorded under `kind` and `keyHash`, unless it expired by `date`.
    func shared(kind: String, keyHash: String, at date: Date) async throws -> String?
}
