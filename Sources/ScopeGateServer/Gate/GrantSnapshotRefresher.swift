import Foundation
import Logging
import NIOConcurrencyHelpers
import ScopeGateCore
import ServiceLifecycle

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
