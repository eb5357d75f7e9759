import Logging
import ScopeGateCore
import ServiceLifecycle

/// Expires approval requests nobody decided in time.
struct ExpiryService: Service {
    let service: GateService
    let interval: Duration
    let logger: Logger

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await service.expireDue()
                } catch {
                    logger.error("expiry pass failed", metadata: ["sg.error": "\((error as? GateError)?.code.rawValue ?? "unknown")"])
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}

/// Releases waiting long-polls when shutdown begins. Listed after the public listener, so that it is
/// told first (a service group shuts down in reverse order) and the listener's drain does not wait
/// for them.
struct WaitingBrowsersRelease: Service {
    let hub: DecisionHub

    func run() async throws {
        try? await gracefulShutdown()
        await hub.close()
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
        try? await cancelWhenGracefulShutdown {
            var cursor: Int64 = (try? await store.latestDecisionCursor()) ?? 0
            while !Task.isCancelled {
                do {
                    for event in try await store.decisionEvents(after: cursor) {
                        await hub.publish(event.approvalRequestID)
                        cursor = event.cursor
                    }
                } catch {
                    logger.error("reading decisions failed", metadata: ["sg.error": "\(String(describing: type(of: error)))"])
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}

