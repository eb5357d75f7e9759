import Foundation
import Logging
import ScopeGateCore
import ServiceLifecycle

/// Expires approval requests nobody decided in time.
struct ExpiryService: Service {
    let service: GateService
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await repeatedly(every: interval, logger: logger, name: "expiry") { try await service.expireDue() }
    }
}

/// Runs `pass` every `interval` until graceful shutdown; a pass that fails is logged (by the error's
/// kind only) and the next one comes all the same.
func repeatedly(every interval: Duration, logger: Logger, name: String, _ pass: @escaping @Sendable () async throws -> Void) async {
    try? await cancelWhenGracefulShutdown {
        while !Task.isCancelled {
            do {
                try await pass()
            } catch {
                logger.error(
                    "\(name) pass failed", metadata: ["sg.error": "\((error as? GateError)?.code.rawValue ?? "\(type(of: error))")"])
            }
            try await Task.sleep(for: interval)
        }
    }
}

/// Reminds the approvers of requests left unanswered for their tier's `remind_after` (once, marked in
/// the store first, so a restart or a second process does not repeat it), and escalates requests left
/// unanswered for their tier's `escalate_after` to its `escalate_to` route:
/// the request is marked in the store (so a restart neither forgets nor repeats it), the route's
/// channels get messages of their own, and its approvers may decide from then on. A timeout never
/// approves: escalation asks more people, and expiry still denies at the end.
struct EscalationService: Service {
    let service: GateService
    var routing: Routing { service.live.requiredRouting }
    let notifiers: [ChatNotifier]
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await repeatedly(every: interval, logger: logger, name: "escalation") { try await pass() }
    }

    func pass() async throws {
        let now = service.now()
        let policy = service.policy
        // Runs whenever there are routes, so that a reload can add reminders or escalation.
        guard policy.tiers.values.contains(where: { $0.escalation != nil || $0.remindAfter != nil }) else { return }
        for request in try await service.store.approvalRequests(states: [.pending]) {
            guard let tier = policy.tiers[policy.tier(of: request)] else { continue }
            if request.remindedAt == nil, let after = tier.remindAfter, request.createdAt.addingTimeInterval(after.seconds) <= now,
                try await service.markReminded(request)
            {
                logger.info("approvers reminded", metadata: ["sg.request.id": "\(request.id)"])
                for notifier in notifiers { await notifier.remind(request) }
            }
            if request.escalatedTo == nil, let escalation = tier.escalation,
                request.createdAt.addingTimeInterval(escalation.after.seconds) <= now,
                let route = routing.route(named: escalation.route)
            {
                try await escalate(request, to: route, at: now)
            }
        }
    }

    private func escalate(_ request: ApprovalRequest, to route: Route, at now: Date) async throws {
        var channels: [String: [String]] = [:]
        for (platform, reach) in route.reaches where platform != ChatReach.approvalPage {
            channels[platform] = reach.destinations
        }
        if try await service.escalate(request, to: route.name, channels: channels) {
            logger.info("approval request escalated", metadata: ["sg.request.id": "\(request.id)", "sg.route": "\(route.name)"])
            for notifier in notifiers { notifier.wake() }
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

