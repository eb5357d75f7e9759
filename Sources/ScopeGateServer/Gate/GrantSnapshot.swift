import Foundation
import Logging
import NIOConcurrencyHelpers
import ScopeGateCore
import ServiceLifecycle

/// The grants in force, in memory, so that a request whose scopes are all granted can be admitted on
/// the event loop without a store round trip.
///
/// It is refreshed from the store every half second and after every decision this process makes. It
/// answers only while fresh: when no refresh has succeeded for `maximumAge`, `granted` returns `nil`
/// and the caller asks the store, which fails closed as before. A revocation made elsewhere therefore
/// takes effect within one refresh interval.
final class GrantSnapshot: GrantSnapshotPort {
    private struct State {
        var grants: [String: [String: Date?]] = [:]
        var refreshedAt: ContinuousClock.Instant?
        var invalidatedAt: ContinuousClock.Instant?
    }

    private let state = NIOLockedValueBox(State())
    /// How long a snapshot may be used after its last successful refresh.
    let maximumAge: Duration

    init(maximumAge: Duration = .seconds(2)) { self.maximumAge = maximumAge }

    /// The grants `clientID` holds, or `nil` when the snapshot is not fresh. `now` is the wall clock
    /// that grant expiry is checked against, read only when a grant has an expiry.
    func grants(of clientID: String, now: @escaping @Sendable () -> Date) -> ClientGrants? {
        // Both event loops take this lock for every gated request: keep the clock read outside it.
        let instant = ContinuousClock.now
        return state.withLockedValue { state in
            guard let refreshedAt = state.refreshedAt, instant - refreshedAt <= maximumAge else { return nil }
            return ClientGrants(scopes: state.grants[clientID] ?? [:], now: now)
        }
    }

    /// One client's grants, from a fresh snapshot.
    struct ClientGrants: GrantedScopes {
        /// Each granted scope's expiry, if it has one.
        let scopes: [String: Date?]
        let now: @Sendable () -> Date

        /// Whether `scope` is granted and not expired.
        func contains(_ scope: String) -> Bool {
            guard let entry = scopes[scope] else { return false }
            guard let expiry = entry else { return true }
            return now() < expiry
        }
    }

    /// Replaces the snapshot with `grants`, read from the store at `readStartedAt`.
    func replace(with grants: [Grant], readStartedAt: ContinuousClock.Instant) {
        var byClient: [String: [String: Date?]] = [:]
        for grant in grants { byClient[grant.clientID, default: [:]][grant.scope] = grant.expiresAt }
        state.withLockedValue { state in
            // A slower, older read must not overwrite a newer one, nor restore what an invalidation
            // (a revocation) removed.
            if let current = state.refreshedAt, current > readStartedAt { return }
            if let invalidated = state.invalidatedAt, readStartedAt < invalidated { return }
            state.grants = byClient
            state.refreshedAt = readStartedAt
        }
    }

    /// Marks the snapshot current as of `readStartedAt` without reloading it (the store reported no
    /// change); false when it is not usable and must be reloaded.
    func confirm(readStartedAt: ContinuousClock.Instant) -> Bool {
        state.withLockedValue { state in
            guard let current = state.refreshedAt else { return false }
            if let invalidated = state.invalidatedAt, readStartedAt < invalidated { return false }
            if readStartedAt > current { state.refreshedAt = readStartedAt }
            return true
        }
    }

    /// Marks the snapshot unusable until the next successful refresh.
    func invalidate() {
        state.withLockedValue {
            $0.refreshedAt = nil
            $0.invalidatedAt = .now
        }
    }
}

/// Keeps a `GrantSnapshot` fresh: every `interval`, and at once after a decision in this process.
/// Each tick reads the store's grant version; the grants themselves are read again only when it
/// changed (any process's grant, approval or revocation changes it), so that ten thousand grants
/// do not cost a full read twice a second.
struct GrantSnapshotRefresher: Service, GateObserver {
    let snapshot: GrantSnapshot
    let store: any GateStore
    let interval: Duration
    let logger: Logger
    private let loadedVersion = NIOLockedValueBox<Int64?>(nil)

    init(snapshot: GrantSnapshot, store: any GateStore, interval: Duration, logger: Logger) {
        self.snapshot = snapshot
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    func refresh(reload: Bool = false) async {
        let started = ContinuousClock.now
        do {
            let version = try await store.grantsVersion()
            if !reload, loadedVersion.withLockedValue({ $0 }) == version, snapshot.confirm(readStartedAt: started) {
                return
            }
            snapshot.replace(with: try await store.allActiveGrants(at: Date()), readStartedAt: started)
            loadedVersion.withLockedValue { $0 = version }
        } catch {
            logger.error("refreshing the grant snapshot failed", metadata: ["sg.error": "\(String(describing: type(of: error)))"])
        }
    }

    func run() async throws {
        await repeatedly(every: interval, logger: logger, name: "grant snapshot") { await refresh() }
    }

    func approvalRequestDecided(_ request: ApprovalRequest) async {
        // Grants written by this decision must be visible to the next request; until the refresh
        // lands, the snapshot is not used.
        snapshot.invalidate()
        await refresh(reload: true)
    }
}
