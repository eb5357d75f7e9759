import Prometheus

/// Requests on the public listener by what they were (`endpoint`: the class of path, never the path
/// itself) and what became of them (`outcome`), as `scopegate_requests_total{endpoint,outcome}`. The
/// counters are made once and found by index, so that counting costs the event loop one atomic add.
final class RequestCounters: Sendable {
    /// What a request was, as the connection handler classified its path.
    enum Endpoint: Int, CaseIterable {
        case passThrough, authorization, token, pushedAuthorization, deviceAuthorization, discovery, blocked
        /// ScopeGate's own pages and endpoints (waiting page, chat platforms, approval page, …).
        case scopegate
        /// Another spelling of a gated path.
        case ambiguous
        /// Refused before it could be routed (target too long or not a path, an unsupported coding).
        case malformed

        var label: String {
            switch self {
            case .passThrough: "pass_through"
            case .authorization: "authorization"
            case .token: "token"
            case .pushedAuthorization: "pushed_authorization"
            case .deviceAuthorization: "device_authorization"
            case .discovery: "discovery"
            case .blocked: "blocked"
            case .scopegate: "scopegate"
            case .ambiguous: "ambiguous"
            case .malformed: "malformed"
            }
        }

        init(_ endpoint: GatedEndpoint) {
            switch endpoint {
            case .authorization: self = .authorization
            case .token: self = .token
            case .pushedAuthorization: self = .pushedAuthorization
            case .deviceAuthorization: self = .deviceAuthorization
            case .discovery: self = .discovery
            case .blocked: self = .blocked
            }
        }

        init(_ destination: ScopeGateResponder.Destination) {
            switch destination {
            case .own: self = .scopegate
            case .gated(let endpoint): self.init(endpoint)
            }
        }
    }

    /// What became of it.
    enum Outcome: Int, CaseIterable {
        /// Sent on to the IdP (its answer relayed, whatever it was).
        case forwarded
        /// Answered by ScopeGate: 2xx, 3xx (a waiting page, a redirect to the app), 4xx, 5xx.
        case answered, redirected, refused, failed

        var label: String {
            switch self {
            case .forwarded: "forwarded"
            case .answered: "answered"
            case .redirected: "redirected"
            case .refused: "refused"
            case .failed: "failed"
            }
        }

        /// The outcome of an answer with this status code.
        init(status: Int) {
            switch status {
            case 300..<400: self = .redirected
            case 400..<500: self = .refused
            case 500...: self = .failed
            default: self = .answered
            }
        }
    }

    static var descriptor: MetricNameDescriptor {
        .init(
            namespace: "scopegate", metricName: "requests", unitName: "total",
            helpText: "Requests on the public listener, by endpoint class (pass_through, authorization, token, ...) and outcome (forwarded, answered, redirected, refused, failed).")
    }

    private let counters: [Counter]

    init(registry: PrometheusCollectorRegistry) {
        var counters: [Counter] = []
        for endpoint in Endpoint.allCases {
            for outcome in Outcome.allCases {
                counters.append(
                    registry.makeCounter(descriptor: Self.descriptor, labels: [("endpoint", endpoint.label), ("outcome", outcome.label)]))
            }
        }
        self.counters = counters
    }

    /// How many outcomes there are, once (`allCases` builds an array each time it is read).
    private static let outcomes = Outcome.allCases.count

    /// Counts one request.
    func count(_ endpoint: Endpoint, _ outcome: Outcome) {
        counters[endpoint.rawValue * Self.outcomes + outcome.rawValue].increment()
    }
}
