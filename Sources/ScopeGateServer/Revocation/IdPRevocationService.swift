import Foundation
import Logging
import ScopeGateCore
import ScopeGateStore
import ServiceLifecycle
import Synchronization

/// Carries every grant revocation (and, when configured, every grant that lapsed) to the IdP: the
/// client's tokens there are revoked too (`idp_revocation`). It reads the changes from the audit
/// log, as owners' notices do, so a revocation made by any means (chat, the approval page, the
/// command line against the store, the admin API, another replica) reaches the IdP, and none is
/// lost to a restart or an outage: its place in the log is kept in the store and moved past a
/// revocation only once the IdP confirmed it (`idp.tokens_revoked`) or refused it for good
/// (`idp.revocation_failed`, both in the audit log). While the IdP cannot be reached or refuses
/// ScopeGate's credentials it tries again with growing pauses, from the same place.
final class IdPRevocationService: Service, Sendable {
    /// The name of its place in the audit log.
    static let reader = "idp-revocation"
    /// Entries read per pass.
    static let batch = 200

    let store: any GateStore & AuditLogStore
    let revoker: any IdPTokenRevoker
    let settings: ScopeGateConfiguration.IdPRevocationSettings
    let interval: Duration
    let logger: Logger
    let now: @Sendable () -> Date
    private struct Progress {
        var cursor: Int64?
        var retryAt = Date.distantPast
        var failures = 0
    }
    private let progress = Mutex(Progress())

    init(
        store: any GateStore & AuditLogStore, revoker: any IdPTokenRevoker, settings: ScopeGateConfiguration.IdPRevocationSettings,
        interval: Duration = .seconds(1), logger: Logger, now: @escaping @Sendable () -> Date
    ) {
        self.store = store
        self.revoker = revoker
        self.settings = settings
        self.interval = interval
        self.logger = logger
        self.now = now
    }

    func run() async throws {
        await repeatedly(every: interval, logger: logger, name: "idp revocation") { await self.pass() }
    }

    /// One client's revocations, consecutive in the log: revoked at the IdP with one call.
    struct Revocation: Equatable {
        var clientID: String
        var scopes: [String]
        /// `grant.revoked`, or `grant.expired` when only lapsed grants are in it.
        var cause: String
        /// The last log entry it covers.
        var through: Int64
    }

    /// The revocations `entries` call for: revoked grants, and lapsed ones when `onExpiry`.
    static func revocations(from entries: [AuditLogRow], onExpiry: Bool) -> [Revocation] {
        var found: [Revocation] = []
        for entry in entries where entry.event == "grant.revoked" || (onExpiry && entry.event == "grant.expired") {
            guard let payload = ChatNotices.payload(of: entry.jws), let client = payload["client_id"] as? String else { continue }
            let scope = (payload["data"] as? [String: Any])?["scope"] as? String
            if var last = found.last, last.clientID == client, last.through < entry.seq {
                if let scope, !last.scopes.contains(scope) { last.scopes.append(scope) }
                if entry.event == "grant.revoked" { last.cause = "grant.revoked" }
                last.through = entry.seq
                found[found.count - 1] = last
            } else {
                found.append(Revocation(clientID: client, scopes: scope.map { [$0] } ?? [], cause: entry.event, through: entry.seq))
            }
        }
        return found
    }

    /// Revokes at the IdP what the log holds past this service's place, in order; stops at the first
    /// failure that is worth a retry.
    func pass() async {
        let current = now()
        guard current >= progress.withLock({ $0.retryAt }) else { return }
        do {
            let start: Int64
            if store.sharedByProcesses {
                // Replicas: one of them revokes each; the others skip while it holds the claim.
                guard let claimed = try await store.claimAuditReader(Self.reader, until: current.addingTimeInterval(30), at: current)
                else { return }
                start = claimed
            } else if let known = progress.withLock({ $0.cursor }) {
                start = known
            } else {
                start = try await store.auditReadCursor(Self.reader)
                progress.withLock { $0.cursor = start }
            }
            let entries = try await store.auditEntries(after: start, limit: Self.batch)
            guard let last = entries.last?.seq else { return }
            for revocation in Self.revocations(from: entries, onExpiry: settings.onExpiry) {
                guard try await revoke(revocation) else { return }
                try await advance(to: revocation.through)
            }
            try await advance(to: last)
        } catch {
            logger.error("revocations at the IdP cannot read or write the audit log", metadata: ["sg.error": "\(type(of: error))"])
            pause(after: .seconds(30))
        }
    }

    /// Revokes one client's tokens and records the outcome; false when it is to be tried again.
    private func revoke(_ revocation: Revocation) async throws -> Bool {
        let appID = settings.appIDs[revocation.clientID] ?? revocation.clientID
        let metadata: Logger.Metadata = ["sg.client.id": "\(revocation.clientID)", "sg.idp": "\(revoker.kind)"]
        do {
            try await revoker.revokeTokens(of: revocation.clientID, appID: appID)
        } catch {
            switch error {
            case .rateLimited(let retryAfter):
                logger.warning("the IdP asked to slow down; revocation waits", metadata: metadata)
                pause(after: retryAfter)
                return false
            case .transient(let reason):
                let failures = progress.withLock { $0.failures += 1; return $0.failures }
                let wait = Duration.seconds(min(300, 5 << min(failures - 1, 6)))
                logger.error(
                    "the client's tokens could not be revoked at the IdP; tried again",
                    metadata: metadata.merging(["sg.error": "\(reason)", "sg.retry_in": "\(wait)"]) { $1 })
                pause(after: wait)
                return false
            case .permanent(let reason):
                logger.error("the IdP refused to revoke the client's tokens", metadata: metadata.merging(["sg.error": "\(reason)"]) { $1 })
                try await store.recordAudit(
                    AuditEvent(
                        "idp.revocation_failed", clientID: revocation.clientID,
                        [
                            ("idp", .string(revoker.kind)), ("scopes", .strings(revocation.scopes)),
                            ("cause", .string(revocation.cause)), ("error", .string(reason)), ("log_seq", .int(revocation.through)),
                        ]), at: now())
                return true
            }
        }
        progress.withLock { $0.failures = 0 }
        logger.info("the client's tokens were revoked at the IdP", metadata: metadata)
        try await store.recordAudit(
            AuditEvent(
                "idp.tokens_revoked", clientID: revocation.clientID,
                [
                    ("idp", .string(revoker.kind)), ("scopes", .strings(revocation.scopes)), ("cause", .string(revocation.cause)),
                    ("log_seq", .int(revocation.through)),
                ]), at: now())
        return true
    }

    private func pause(after wait: Duration) {
        let seconds = Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18
        progress.withLock { $0.retryAt = now().addingTimeInterval(seconds) }
    }

    private func advance(to seq: Int64) async throws {
        try await store.advanceAuditReadCursor(Self.reader, to: seq)
        progress.withLock { $0.cursor = max($0.cursor ?? seq, seq) }
    }
}
