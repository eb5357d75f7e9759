import Synchronization

/// The policy in force and the routes it sends requests along, replaced whole when the configuration
/// is reloaded (SIGHUP). Everything that decides, routes or shows a request reads the current
/// generation when it needs it, so a reload takes effect at once and atomically: one operation that
/// reads `generation` once sees one policy, never half of two.
public final class LivePolicy: Sendable {
    /// One policy as loaded: what decides, where requests go, which tiers confirm an approval, and the
    /// digest the audit log names it by.
    public final class Generation: Sendable {
        public let policy: Policy
        public let routing: Routing?
        public let confirmTiers: Set<String>
        /// SHA-256 (hex) of the policy as validated, as `config.loaded` and `config.reloaded` record it.
        public let digest: String

        public init(policy: Policy, routing: Routing? = nil, confirmTiers: Set<String> = [], digest: String = "") {
            self.policy = policy
            self.routing = routing
            self.confirmTiers = confirmTiers
            self.digest = digest
        }
    }

    private let current: Mutex<Generation>

    public init(_ generation: Generation) {
        current = Mutex(generation)
    }

    /// A policy that is never reloaded (tests, commands).
    public convenience init(policy: Policy, routing: Routing? = nil, confirmTiers: Set<String> = []) {
        self.init(Generation(policy: policy, routing: routing, confirmTiers: confirmTiers))
    }

    /// The generation in force.
    public var generation: Generation { current.withLock { $0 } }
    /// The policy in force.
    public var policy: Policy { generation.policy }
    /// The routes in force (`nil` without chat approvals; a reload never adds or removes them).
    public var routing: Routing? { generation.routing }
    /// The routes, for the parts of ScopeGate that exist only with chat approvals configured.
    public var requiredRouting: Routing {
        guard let routing else { preconditionFailure("routes exist from start-up on, and a reload never removes them") }
        return routing
    }
    /// Which tiers' approvals ask the approver to confirm.
    public var confirmTiers: Set<String> { generation.confirmTiers }

    /// Puts `generation` in force; returns the one it replaced.
    @discardableResult
    public func replace(with generation: Generation) -> Generation {
        current.withLock { old in
            let previous = old
            old = generation
            return previous
        }
    }
}
