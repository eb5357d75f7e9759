import Foundation
import Logging
import Testing

@testable import ScopeGateCore

/// Automation rules decide approval requests as they open, in their own name; the first that matches
/// decides, and a request no rule covers entirely goes to the approvers.
@Suite struct AutomationTests {
    let clock = TestClock()
    let store = InMemoryGateStore()
    let record = RecordingObserver()

    func service(_ rules: [AutomationRule]) -> GateService {
        var policy = PolicyTests.policy()
        policy.automation = rules
        return GateService(policy: policy, store: store, observer: Observer(record: record), logger: Logger(label: "test"), now: { [clock] in clock.now })
    }

    func admit(_ service: GateService, _ scope: String, client: String = "app") async throws -> GateService.Admission {
        try await service.admit(
            try AuthorizationRequest(
                method: .get,
                query: Substring("response_type=code&client_id=\(client)&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=s&scope=\(scope)")),
            binderHash: "b1")
    }

    @Test func theFirstMatchingRuleDecidesInItsOwnName() async throws {
        let service = service([
            AutomationRule(name: "no-writes", outcome: .deny, scopePatterns: [GlobPattern("*:write")], origin: "automation[0]"),
            AutomationRule(name: "app-reads", outcome: .approve, clients: ["app"], tiers: ["elevated"], origin: "automation[1]"),
        ])
        guard case .held(_, let approved) = try await admit(service, "orders:read") else { Issue.record("expected a hold"); return }
        #expect(approved.state == .approved)
        #expect(approved.decision?.actor == "policy:automation/app-reads")
        #expect(approved.decision?.reason == "automation rule app-reads (automation[1])")
        #expect(try await store.allActiveGrants(at: clock.now).map(\.approvedBy) == ["policy:automation/app-reads"])
        #expect(record.opened.withLock { $0 }.isEmpty, "nobody is asked")
        #expect(try await admit(service, "orders:read") == .forward, "the grant stands")

        // orders:read is granted now: only orders:write is asked about, and the first rule denies it.
        guard case .held(_, let writes) = try await admit(service, "orders:read+orders:write") else { Issue.record("expected a hold"); return }
        #expect(writes.state == .denied && writes.decision?.actor == "policy:automation/no-writes")
        #expect(writes.scopes.tokens == ["orders:write"])
    }

    @Test func aRuleDecidesOnlyWhenItCoversEveryScopeAskedAbout() async throws {
        let service = service([AutomationRule(name: "reads", outcome: .approve, scopePatterns: [GlobPattern("*:read")], origin: "automation[0]")])
        guard case .held(_, let approval) = try await admit(service, "users:read+billing:write") else { Issue.record("expected a hold"); return }
        #expect(approval.state == .pending)
        #expect(try await store.allActiveGrants(at: clock.now).isEmpty)
    }

    @Test func rulesOnAClientsRegistrationAndAgeJudgeItAsItStandsWhenTheRequestOpens() async throws {
        var established = AutomationRule(name: "established", outcome: .approve, tiers: ["elevated"], origin: "automation[0]")
        established.registrations = ["admin"]
        established.minimumClientAge = .seconds(30 * 86_400)
        var strangers = AutomationRule(name: "new-strangers", outcome: .deny, origin: "automation[1]")
        strangers.registrations = [ClientStanding.unlisted]
        strangers.maximumClientAge = .seconds(7 * 86_400)
        var policy = PolicyTests.policy()
        policy.automation = [established, strangers]
        policy.clients["app"]?.registration = "admin"
        policy.clients["app"]?.registeredAt = clock.now.addingTimeInterval(-10 * 86_400)
        let service = GateService(
            policy: policy, store: store, observer: Observer(record: record), logger: Logger(label: "test"), now: { [clock] in clock.now })

        guard case .held(_, let young) = try await admit(service, "orders:read") else { Issue.record("expected a hold"); return }
        #expect(young.state == .pending, "registered 10 days ago: not yet established")
        clock.advance(by: 21 * 86_400)
        guard case .held(_, let older) = try await admit(service, "users:read") else { Issue.record("expected a hold"); return }
        #expect(older.state == .approved && older.decision?.actor == "policy:automation/established")

        // A client the configuration does not name: known from its first request on.
        guard case .held(_, let first) = try await admit(service, "orders:read", client: "stranger") else { Issue.record("expected a hold"); return }
        #expect(first.state == .denied && first.decision?.actor == "policy:automation/new-strangers")
        clock.advance(by: 8 * 86_400)
        guard case .held(_, let later) = try await admit(service, "users:read", client: "stranger") else { Issue.record("expected a hold"); return }
        #expect(later.state == .pending, "known for 8 days now: the approvers are asked")
        #expect(try await store.firstRequestDate(clientID: "stranger") == first.createdAt)
    }

    @Test(arguments: [
        // registration, days known (nil: unknown), rule's registrations, min days, max days, applies
        ("admin", 40.0, ["admin"], 30, nil, true),
        ("admin", 20.0, ["admin"], 30, nil, false),
        ("dynamic", 40.0, ["admin"], 30, nil, false),
        ("listed", nil, ["listed"], nil, nil, true),
        ("listed", nil, [], 30, nil, false),
        ("unlisted", nil, [], nil, 7, false),
        ("unlisted", 0.0, [], nil, 7, true),
        ("unlisted", 7.0, [], nil, 7, false),
        ("unlisted", 3.0, ["unlisted", "dynamic"], 1, 7, true),
    ] as [(String, Double?, [String], Int?, Int?, Bool)])
    func clientConditions(
        _ registration: String, _ days: Double?, _ registrations: [String], _ minimum: Int?, _ maximum: Int?, _ applies: Bool
    ) {
        var rule = AutomationRule(name: "r", outcome: .approve, origin: "automation[0]")
        rule.registrations = Set(registrations)
        rule.minimumClientAge = minimum.map { .seconds($0 * 86_400) }
        rule.maximumClientAge = maximum.map { .seconds($0 * 86_400) }
        let now = clock.now
        let request = ApprovalRequest(
            id: "ar", clientID: "app", scopes: ScopeSet(["orders:read"]), alreadyGranted: ScopeSet([String]()), createdAt: now, expiresAt: now)
        let standing = ClientStanding(registration: registration, knownSince: days.map { now.addingTimeInterval(-$0 * 86_400) })
        #expect(rule.matches(request, policy: PolicyTests.policy(), client: standing, at: now) == applies)
        #expect(!rule.matches(request, policy: PolicyTests.policy(), client: nil, at: now), "without the client's standing it never applies")
    }

    @Test func aClientStandsAsTheConfigurationSaysOrAsUnlisted() {
        var policy = PolicyTests.policy()
        let seen = clock.now
        #expect(policy.standing(of: "app", firstRequest: seen) == ClientStanding(registration: "listed", knownSince: seen))
        policy.clients["app"]?.registration = "marketplace"
        policy.clients["app"]?.registeredAt = Date(timeIntervalSince1970: 0)
        #expect(policy.standing(of: "app", firstRequest: seen) == ClientStanding(registration: "marketplace", knownSince: Date(timeIntervalSince1970: 0)))
        #expect(policy.standing(of: "other", firstRequest: nil) == ClientStanding(registration: "unlisted", knownSince: nil))
    }

    @Test func aRuleForOtherClientsLeavesTheRequestToTheApprovers() async throws {
        let service = service([AutomationRule(name: "crm", outcome: .approve, clients: ["crm"], origin: "automation[0]")])
        guard case .held(_, let approval) = try await admit(service, "orders:read") else { Issue.record("expected a hold"); return }
        #expect(approval.state == .pending)
        #expect(record.opened.withLock { $0 } == [approval.id])
    }
}

/// Shadow mode: the shadowed client's requests pass whatever the policy says, and what it would have
/// done is recorded; every other client is gated as ever.
@Suite struct ShadowModeTests {
    let store = InMemoryGateStore()

    func service(shadow: Set<String>) -> GateService {
        var policy = PolicyTests.policy()
        policy.shadowClients = shadow
        return GateService(policy: policy, store: store, observer: GateObservers([]), logger: Logger(label: "test"))
    }

    func request(_ scope: String) throws -> AuthorizationRequest {
        try AuthorizationRequest(
            method: .get,
            query: Substring("response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=s&scope=\(scope)"))
    }

    @Test func aShadowedClientPassesAndTheWouldBeDecisionIsRecorded() async throws {
        let shadowed = service(shadow: ["app"])
        #expect(try await shadowed.admit(request("orders:read"), binderHash: "b") == .forward)
        #expect(try await shadowed.admit(request("admin:org"), binderHash: "b") == .forward)
        #expect(try await shadowed.scopesBeyondApproval(ScopeSet(["orders:read", "admin:org"]), clientID: "app").isEmpty)
        #expect(try await store.approvalRequests(states: nil).isEmpty, "nobody is asked")
        let events = await store.auditEvents.map(\.type)
        #expect(events == ["policy.shadow", "policy.shadow", "policy.shadow"])
    }

    @Test func otherClientsAreGatedAsEver() async throws {
        let gated = service(shadow: ["someone-else"])
        guard case .held = try await gated.admit(request("orders:read"), binderHash: "b") else { Issue.record("expected a hold"); return }
        #expect(try await gated.admit(request("admin:org"), binderHash: "b") == .deny(ScopeSet(["admin:org"])))
        #expect(try await gated.scopesBeyondApproval(ScopeSet(["admin:org"]), clientID: "app") == ScopeSet(["admin:org"]))
    }
}
