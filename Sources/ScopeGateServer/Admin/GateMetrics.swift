import Prometheus
import ScopeGateCore

/// ScopeGate's metrics, in Prometheus' text format at the admin API's `GET /metrics`. One registry per
/// application (no process-wide state), so tests and several instances in a process stay apart.
public final class GateMetrics: Sendable, GateObserver {
    /// Where the metrics live; `emitToString()` gives the exposition text.
    public let registry: PrometheusCollectorRegistry

    static var opened: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "scopegate", metricName: "approval_requests_opened", unitName: "total",
            helpText: "Approval requests opened; approvers are asked once per request.")
    }
    static var decisions: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "scopegate", metricName: "decisions", unitName: "total",
            helpText: "Approval requests decided, by outcome, by where the decision came from (slack, cli, admin, policy) and by tier.")
    }
    static var timeToDecision: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "scopegate", metricName: "time_to_decision", unitName: "seconds",
            helpText: "From an approval request's opening to its decision (expiries included), by tier.")
    }
    static var pending: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "scopegate", metricName: "approval_requests_pending", unitName: "requests",
            helpText: "Approval requests waiting for a decision at the last scrape, by tier.")
    }
    static var holdsWaiting: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "scopegate", metricName: "holds_waiting", unitName: "requests",
            helpText: "Held requests (browsers, devices, back-channel calls) waiting on a pending approval request at the last scrape.")
    }
    static var upstreamLatency: MetricNameDescriptor {
        .init(
            namespace: "scopegate", metricName: "upstream_latency", unitName: "seconds",
            helpText: "From a request's head sent to the IdP to the IdP's response head received, for every request ScopeGate forwards.")
    }
    static var auditAppend: MetricNameDescriptor {
        .init(
            namespace: "scopegate", metricName: "audit_append", unitName: "seconds",
            helpText: "From a change and its signed audit entries handed to the store to their durable commit (group commit included).")
    }
    /// Buckets from half a millisecond to half a minute (the upstream's response timeout is 60 s by default).
    static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
        .seconds(5), .seconds(10), .seconds(30),
    ]
    /// Buckets from a second to a day: approvers answer in seconds in chat, in hours by escalation.
    static let decisionBuckets: [Duration] = [1, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86_400].map { .seconds($0) }
    static var buildInfo: MetricNameDescriptor {
        .init(namespace: "scopegate", metricName: "build_info", helpText: "Always 1; its version label is ScopeGate's release.")
    }
    static var chatCalls: MetricNameDescriptor {
        .init(
            namespace: "scopegate", subsystem: "chat", metricName: "calls", unitName: "total",
            helpText: "Chat platform API calls, by platform (slack, teams), method and outcome (ok, rate_limited, permanent, transient).")
    }
    static var chatFailed: MetricNameDescriptor {
        .init(
            namespace: "scopegate", subsystem: "chat", metricName: "messages_failed", unitName: "total",
            helpText: "Chat messages refused permanently (channel_not_found, invalid_auth, 403, ...), by platform; shown by requests show.")
    }
    static var chatDue: MetricNameDescriptor {
        .init(
            namespace: "scopegate", subsystem: "chat", metricName: "outbox_due", unitName: "messages",
            helpText: "Chat messages waiting to be posted or updated at the outbox's last pass, by platform.")
    }
    static var chatInteractions: MetricNameDescriptor {
        .init(
            namespace: "scopegate", subsystem: "chat", metricName: "interactions", unitName: "total",
            helpText: "Clicks received from chat platforms, by platform and by what became of them.")
    }

    /// The policy, for each request's tier (its highest permission's); labels stay few (tiers, not clients).
    let live: LivePolicy?
    var policy: Policy? { live?.policy }
    /// Requests on the public listener by endpoint class and outcome.
    let requests: RequestCounters
    /// How long the IdP takes to answer (head to head), and how long durable audited writes take.
    let upstreamLatency: DurationHistogram
    let auditAppend: DurationHistogram

    public convenience init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), policy: Policy?) {
        self.init(registry: registry, live: policy.map { LivePolicy(policy: $0) })
    }

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), live: LivePolicy? = nil) {
        self.registry = registry
        self.live = live
        self.requests = RequestCounters(registry: registry)
        self.upstreamLatency = registry.makeDurationHistogram(descriptor: Self.upstreamLatency, buckets: Self.latencyBuckets)
        self.auditAppend = registry.makeDurationHistogram(descriptor: Self.auditAppend, buckets: Self.latencyBuckets)
        registry.makeGauge(descriptor: Self.buildInfo, labels: [("version", ScopeGateVersion.current)]).set(Double(1))
        // Present from the start, so that a dashboard shows zero rather than nothing.
        _ = registry.makeCounter(descriptor: Self.opened)
        for platform in ["slack", "teams"] {
            _ = registry.makeCounter(descriptor: Self.chatFailed, labels: [("platform", platform)])
        }
    }

    /// The exposition text.
    public var text: String { registry.emitToString() }

    // MARK: Gate

    public func approvalRequestOpened(_ request: ApprovalRequest, by hold: Hold) async {
        registry.makeCounter(descriptor: Self.opened).increment()
    }

    public func approvalRequestDecided(_ request: ApprovalRequest) async {
        let tier = tier(of: request)
        let source = request.decision.map { Self.source(of: $0.actor) } ?? "unknown"
        registry.makeCounter(
            descriptor: Self.decisions, labels: [("outcome", request.state.rawValue), ("source", source), ("tier", tier)]
        ).increment()
        if let decided = request.decision?.at {
            registry.makeDurationHistogram(descriptor: Self.timeToDecision, labels: [("tier", tier)], buckets: Self.decisionBuckets)
                .record(.milliseconds(Int64(max(0, decided.timeIntervalSince(request.createdAt)) * 1000)))
        }
    }

    /// Where a decision came from, by its actor's prefix (`slack:T/U`, `cli:alice`, `admin:ops`, `policy…`).
    static func source(of actor: String) -> String {
        let prefix = actor.prefix { $0 != ":" }
        return ["slack", "teams", "page", "cli", "admin", "policy"].contains(String(prefix)) ? String(prefix) : "other"
    }

    /// A request's tier, as the policy reads it; `unknown` without a policy.
    func tier(of request: ApprovalRequest) -> String { policy?.tier(of: request) ?? "unknown" }

    /// Sets the gauges read from the store (pending approval requests by tier, holds waiting on them),
    /// just before a scrape.
    func refresh(from store: any GateStore) async {
        guard let pending = try? await store.approvalRequests(states: [.pending]) else { return }
        var byTier: [String: Int] = [:]
        for tier in policy?.tiers.keys.sorted() ?? [] { byTier[tier] = 0 }
        var holds = 0
        for request in pending {
            byTier[tier(of: request), default: 0] += 1
            holds += (try? await store.holds(approvalRequestID: request.id).filter { $0.consumedAt == nil }.count) ?? 0
        }
        for (tier, count) in byTier {
            registry.makeGauge(descriptor: Self.pending, labels: [("tier", tier)]).set(Double(count))
        }
        registry.makeGauge(descriptor: Self.holdsWaiting).set(Double(holds))
    }

    // MARK: Chat platforms

    /// One API call and how it ended: `ok`, `rate_limited`, `permanent` or `transient`.
    func chatCall(_ platform: String, _ method: String, outcome: String) {
        registry.makeCounter(
            descriptor: Self.chatCalls, labels: [("platform", platform), ("method", method), ("outcome", outcome)]
        ).increment()
    }

    /// A message the platform refused for good.
    func chatMessageFailedPermanently(_ platform: String) {
        registry.makeCounter(descriptor: Self.chatFailed, labels: [("platform", platform)]).increment()
    }

    /// How many messages waited for a post or an update at the outbox's last pass.
    func chatOutboxDue(_ platform: String, _ count: Int) {
        registry.makeGauge(descriptor: Self.chatDue, labels: [("platform", platform)]).set(Double(count))
    }

    /// A click and what became of it: `decided`, `replay`, `refused`, `ignored`, `bad_signature`.
    func chatInteraction(_ platform: String, _ outcome: String) {
        registry.makeCounter(descriptor: Self.chatInteractions, labels: [("platform", platform), ("outcome", outcome)]).increment()
    }
}
