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
            namespace: "scopegate", metricName: "decisions", unitName: "total", helpText: "Approval requests decided, by outcome.")
    }
    static var slackCalls: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "scopegate", subsystem: "slack", metricName: "calls", unitName: "total",
            helpText: "Slack Web API calls, by method and outcome (ok, rate_limited, permanent, transient).")
    }
    static var slackFailed: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "scopegate", subsystem: "slack", metricName: "messages_failed", unitName: "total",
            helpText: "Slack messages refused permanently (channel_not_found, invalid_auth, ...); shown by requests show.")
    }
    static var slackDue: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "scopegate", subsystem: "slack", metricName: "outbox_due", unitName: "messages",
            helpText: "Slack messages waiting to be posted or updated at the outbox's last pass.")
    }
    static var slackInteractions: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "scopegate", subsystem: "slack", metricName: "interactions", unitName: "total",
            helpText: "Slack clicks received, by what became of them.")
    }

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        // Present from the start, so that a dashboard shows zero rather than nothing.
        _ = registry.makeCounter(descriptor: Self.opened)
        _ = registry.makeCounter(descriptor: Self.slackFailed)
    }

    /// The exposition text.
    public var text: String { registry.emitToString() }

    // MARK: Gate

    public func approvalRequestOpened(_ request: ApprovalRequest, by hold: Hold) async {
        registry.makeCounter(descriptor: Self.opened).increment()
    }

    public func approvalRequestDecided(_ request: ApprovalRequest) async {
        registry.makeCounter(descriptor: Self.decisions, labels: [("outcome", request.state.rawValue)]).increment()
    }

    // MARK: Slack

    /// One Web API call and how it ended: `ok`, `rate_limited`, `permanent` or `transient`.
    func slackCall(_ method: String, outcome: String) {
        registry.makeCounter(descriptor: Self.slackCalls, labels: [("method", method), ("outcome", outcome)]).increment()
    }

    func slackMessageFailedPermanently() {
        registry.makeCounter(descriptor: Self.slackFailed).increment()
    }

    /// How many messages waited for a post or an update at the outbox's last pass.
    func slackOutboxDue(_ count: Int) {
        registry.makeGauge(descriptor: Self.slackDue).set(Double(count))
    }

    /// A click and what became of it: `decided`, `replay`, `refused`, `ignored`, `bad_signature`.
    func slackInteraction(_ outcome: String) {
        registry.makeCounter(descriptor: Self.slackInteractions, labels: [("outcome", outcome)]).increment()
    }
}
