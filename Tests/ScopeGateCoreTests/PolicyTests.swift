import Foundation
import Testing

@testable import ScopeGateCore

@Suite struct PolicyTests {
    static func policy(clientRules: [Policy.ScopeRule] = [], defaults: ScopeSet? = nil) -> Policy {
        Policy(
            rules: [
                .init(pattern: GlobPattern("openid"), auto: .approve, tier: "low", origin: "scopes[0]"),
                .init(pattern: GlobPattern("*:read"), auto: .ask, tier: "elevated", origin: "scopes[1]"),
                .init(pattern: GlobPattern("admin:*"), auto: .deny, tier: "critical", origin: "scopes[2]"),
            ],
            clients: [
                .init(id: "app", name: "App", redirectURIs: ["https://app.example/cb"], rules: clientRules, defaultScopes: defaults)
            ],
            tiers: [.init(name: "low", grantLifetime: nil), .init(name: "elevated", grantLifetime: .seconds(3600)), .init(name: "critical", grantLifetime: .seconds(60))],
            defaultTier: "elevated", approvalTimeout: .seconds(600))
    }

    @Test(arguments: [
        ("orders:*", "orders:read", true), ("orders:*", "orders:", true), ("orders:*", "order:read", false),
        ("*", "", true), ("a?c", "abc", true), ("a?c", "ac", false), ("*:read", "x:y:read", true),
        ("Orders:*", "orders:read", false), ("a*b*c", "aXbYc", true), ("a*b*c", "aXbY", false),
    ])
    func globMatching(_ pattern: String, _ text: String, _ expected: Bool) {
        #expect(GlobPattern(pattern).matches(text) == expected)
    }

    @Test func autoApprovedScopesPassWithoutGrants() {
        #expect(Self.policy().evaluate(scopes: ScopeSet(["openid"]), clientID: "app", granted: []) == .allow)
    }

    @Test func unknownScopesMustBeAsked() {
        let result = Self.policy().evaluate(scopes: ScopeSet(["openid", "billing"]), clientID: "app", granted: [])
        #expect(result == .hold(unapproved: ScopeSet(["billing"]), granted: ScopeSet([String]())))
        #expect(Self.policy().rule(for: "billing", clientID: "app").tier == "elevated")
    }

    @Test func grantedScopesPassAndAreReported() {
        let result = Self.policy().evaluate(
            scopes: ScopeSet(["orders:read", "users:read"]), clientID: "app", granted: ["orders:read"])
        #expect(result == .hold(unapproved: ScopeSet(["users:read"]), granted: ScopeSet(["orders:read"])))
    }

    @Test func denyWinsEvenOverAGrant() {
        let result = Self.policy().evaluate(scopes: ScopeSet(["admin:org"]), clientID: "app", granted: ["admin:org"])
        #expect(result == .deny(ScopeSet(["admin:org"])))
    }

    @Test func clientRulesComeFirst() {
        let policy = Self.policy(clientRules: [.init(pattern: GlobPattern("orders:read"), auto: .approve, tier: "low", origin: "clients[0].scopes[0]")])
        #expect(policy.evaluate(scopes: ScopeSet(["orders:read"]), clientID: "app", granted: []) == .allow)
        #expect(policy.evaluate(scopes: ScopeSet(["orders:read"]), clientID: "other", granted: []) != .allow)
    }

    @Test func scopelessRequestsNeedConfiguredDefaults() throws {
        let request = try AuthorizationRequest(method: .get, query: "response_type=code&client_id=app")
        #expect(throws: GateError.self) { try Self.policy().effectiveScopes(of: request) }
        let defaults = ScopeSet(["openid", "orders:read"])
        #expect(try Self.policy(defaults: defaults).effectiveScopes(of: request) == defaults)
    }

    @Test func grantLifetimeFollowsTheTier() {
        #expect(Self.policy().grantLifetime(for: "orders:read", clientID: "app") == .seconds(3600))
        #expect(Self.policy().grantLifetime(for: "openid", clientID: "app") == nil)
    }
}

@Suite struct RoutingTests {
    let policy = Policy(
        rules: [
            .init(pattern: GlobPattern("*:read"), auto: .ask, tier: "elevated", origin: "scopes[0]"),
            .init(pattern: GlobPattern("*:write"), auto: .ask, tier: "critical", origin: "scopes[1]"),
        ],
        clients: [.init(id: "billing", name: "Billing", redirectURIs: [])],
        tiers: [.init(name: "elevated", grantLifetime: nil), .init(name: "critical", grantLifetime: nil)],
        defaultTier: "elevated", approvalTimeout: .seconds(60))
    let routing = Routing(
        routes: [
            Route(name: "critical", tiers: ["critical"], reaches: ["slack": ChatReach(channel: "C0CRIT", approverUsers: ["U0SEC"])]),
            Route(name: "billing", clients: ["billing"], reaches: ["slack": ChatReach(channel: "C0BILL", approverUsers: ["U0FIN"])]),
            Route(name: "admin", scopePatterns: [GlobPattern("admin:*")], reaches: ["slack": ChatReach(channel: "C0ADM", approverUsers: ["U0ADM"])]),
        ],
        defaultRoute: Route(name: "default", reaches: ["slack": ChatReach(channel: "C0ALL", approverUsers: ["U0ANY"])]))

    func route(_ client: String, _ scopes: String) throws -> String {
        let request = ApprovalRequest(
            id: "r", clientID: client, scopes: try ScopeSet(parsing: scopes), alreadyGranted: try ScopeSet(parsing: ""),
            createdAt: Date(), expiresAt: Date())
        return routing.route(for: request, policy: policy).name
    }

    @Test func theFirstRouteOneScopeMatchesWins() throws {
        #expect(try route("billing", "orders:read orders:write") == "critical", "one critical scope takes the stricter route")
        #expect(try route("billing", "orders:read") == "billing")
        #expect(try route("app", "admin:users") == "admin")
        #expect(try route("app", "orders:read") == "default")
    }

    @Test func directMessagesGoToNamedApprovers() {
        let slack = ChatReach(channel: "C0A", directMessages: true, approverUsers: ["U0A", "U0B"], approverGroups: ["S0G"])
        #expect(slack.destinations == ["C0A", "U0A", "U0B"])
        let route = Route(name: "r", reaches: ["slack": slack, "teams": ChatReach(channel: "19:x@thread.tacv2", approverUsers: ["a1"])])
        #expect(route.allDestinations == ["slack:C0A", "slack:U0A", "slack:U0B", "teams:19:x@thread.tacv2"])
        #expect(route.allApprovers == ["slack:U0A", "slack:U0B", "slack:S0G", "teams:a1"])
    }
}

@Suite struct ShadowedDenialTests {
    @Test(arguments: [
        ("*:read", "admin:*", true), ("admin:*", "*:read", true), ("orders:*", "admin:*", false), ("a?c", "ab*", true),
        ("a?c", "abd", false), ("*", "x", true), ("x*y", "*z", false), ("*a*", "*b*", true), ("abc", "abc", true),
        ("ab", "abc", false), ("**", "", true), ("?", "", false),
    ])
    func globsOverlapWhenSomeTextMatchesBoth(_ first: String, _ second: String, _ overlap: Bool) {
        #expect(GlobPattern(first).overlaps(GlobPattern(second)) == overlap, "\(first) / \(second)")
        #expect(GlobPattern(second).overlaps(GlobPattern(first)) == overlap, "\(second) / \(first)")
    }

    /// Checked against brute force: every text over a small alphabet up to four long.
    @Test func overlapAgreesWithTryingEveryShortText() {
        let patterns = ["*", "a*", "*b", "a?", "?b", "ab", "a*b", "*a*", "??", "b*a", "a", ""]
        var texts = [""]
        for _ in 0..<4 { texts += texts.flatMap { text in ["a", "b", "c"].map { text + $0 } } }
        texts = Array(Set(texts))
        for first in patterns {
            for second in patterns {
                let brute = texts.contains { GlobPattern(first).matches($0) && GlobPattern(second).matches($0) }
                #expect(GlobPattern(first).overlaps(GlobPattern(second)) == brute, "\(first) / \(second)")
            }
        }
    }

    @Test func aDenyAfterAnOverlappingRuleIsReported() {
        let policy = Policy(
            rules: [
                .init(pattern: GlobPattern("*:read"), auto: .ask, tier: "low", origin: "scopes[0]"),
                .init(pattern: GlobPattern("admin:*"), auto: .deny, tier: "low", origin: "scopes[1]"),
                .init(pattern: GlobPattern("billing:*"), auto: .deny, tier: "low", origin: "scopes[2]"),
                .init(pattern: GlobPattern("*"), kind: .claim, auto: .ask, tier: "low", origin: "scopes[3]"),
            ],
            clients: [], tiers: [], defaultTier: "low", approvalTimeout: .seconds(60))
        let warnings = policy.shadowedDenials()
        #expect(warnings.count == 2)
        #expect(warnings.allSatisfy { $0.contains("scopes[0]") })
        #expect(warnings.contains { $0.hasPrefix("scopes[1]") } && warnings.contains { $0.hasPrefix("scopes[2]") })
    }
}
