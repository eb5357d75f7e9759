import Logging
import ScopeGateCore
import ServiceLifecycle

/// Expires approval requests nobody decided in time.
struct ExpiryService: Service {
    let service: GateService
    let interval: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            do {
                try await service.expireDue()
            } catch {
                logger.error("expiry pass failed", metadata: ["sg.error": "\(error.code.rawValue)"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}

/// Follows decisions written by other processes (the command line, another replica) and wakes the
/// browsers waiting on them.
struct DecisionFollower: Service {
    let store: any GateStore
    let hub: DecisionHub
    let interval: Duration
    let logger: Logger

    func run() async throws {
        var cursor: Int64 = (try? await store.latestDecisionCursor()) ?? 0
        while !Task.isCancelledOrShuttingDown {
            do {
                for event in try await store.decisionEvents(after: cursor) {
                    await hub.publish(event.approvalRequestID)
                    cursor = event.cursor
                }
            } catch {
                logger.error("reading decisions failed", metadata: ["sg.error": "\(String(describing: type(of: error)))"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}

extension Task where Success == Never, Failure == Never {
    static var isCancelledOrShuttingDown: Bool { isCancelled || isShuttingDownGracefully }
}
