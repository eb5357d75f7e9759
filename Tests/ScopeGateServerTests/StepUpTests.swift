import Foundation
import ScopeGateCore
import Testing

@testable import ScopeGateServer

/// A tier whose approvers confirm with a fresh sign-in: how recent is recent enough, what the
/// configuration requires for it, and what chat shows instead of decision buttons.
@Suite struct StepUpTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func aSignInCountsWithinItsAgeAndClassOnly() {
        let stepUp = StepUp(maxAge: .seconds(300))
        #expect(stepUp.admits(authTime: now - 10, acr: nil, at: now))
        #expect(stepUp.admits(authTime: now - 300 - StepUp.skew, acr: nil, at: now), "clocks may differ a little")
        #expect(!stepUp.admits(authTime: now - 301 - StepUp.skew, acr: nil, at: now))
        #expect(!stepUp.admits(authTime: nil, acr: nil, at: now), "an ID token without auth_time proves nothing")
        #expect(!stepUp.admits(authTime: now + 3600, acr: nil, at: now), "a sign-in from the future is not believed")
        let strong = StepUp(maxAge: .seconds(300), acr: ["urn:mfa", "gold"])
        #expect(strong.admits(authTime: now, acr: "gold", at: now))
        #expect(!strong.admits(authTime: now, acr: "silver", at: now))
        #expect(!strong.admits(authTime: now, acr: nil, at: now))
    }

    static let configuration = """
        tiers:
          - name: low
          - name: elevated
            step_up:
              max_age: 10m
              acr_values: [urn:mfa]
          - name: critical
        teams: {}
        sign_in:
          client_id: scopegate
          client_secret_env: SIGNIN
        routes:
          - name: all
            teams:
              webhook_env: HOOK
            approval_page:
              approvers: {users: [alice@example.com]}
        default_route: all
        """

    @Test func thePolicyDigestTheAuditLogRecordsCoversStepUpAndRequesters() throws {
        let with = try WorkflowsConfigurationTests.parse(Self.configuration).policyDigest
        let without = try WorkflowsConfigurationTests.parse(
            Self.configuration.replacingOccurrences(of: "    step_up:\n      max_age: 10m\n      acr_values: [urn:mfa]\n", with: "")
        ).policyDigest
        let stricter = try WorkflowsConfigurationTests.parse(Self.configuration.replacingOccurrences(of: "10m", with: "5m")).policyDigest
        let identified = try WorkflowsConfigurationTests.parse("approvals:\n  identify_requesters: true\n" + Self.configuration).policyDigest
        #expect(Set([with, without, stricter, identified]).count == 4)
    }

    @Test func theTierReadsItsStepUp() throws {
        let parsed = try WorkflowsConfigurationTests.parse(Self.configuration)
        #expect(parsed.policy.tiers["elevated"]?.stepUp == StepUp(maxAge: .seconds(600), acr: ["urn:mfa"]))
        #expect(parsed.policy.tiers["critical"]?.stepUp == nil)
    }

    @Test(arguments: [
        // A route its requests can take without an approval page: nobody could decide them.
        (
            configuration.replacingOccurrences(
                of: "teams: {}", with: "slack:\n  team_id: T0TEAM\n  bot_token_env: SIGNIN\n  signing_secret_env: SIGNIN"
            ).replacingOccurrences(
                of: "routes:\n", with: "routes:\n  - name: chat\n    channel: C0A\n    approvers: {users: [U0A]}\n"
            ).replacingOccurrences(of: "teams:\n      webhook_env: HOOK", with: "channel: C0B\n    approvers: {users: [U0B]}"),
            "tiers[1].step_up needs an approval_page on every route its requests can take, and route chat has none"
        ),
        (configuration.replacingOccurrences(of: "max_age: 10m", with: "max_age: 2d"), "tiers[1].step_up.max_age"),
        (configuration.replacingOccurrences(of: "[urn:mfa]", with: "[\"two words\"]"), "tiers[1].step_up.acr_values[0]"),
    ])
    func refusesAStepUpNobodyCouldMeet(yaml: String, key: String) {
        #expect {
            try WorkflowsConfigurationTests.parse(yaml)
        } throws: { error in
            (error as? GateError)?.message.hasPrefix(key) == true
        }
    }

    @Test func chatShowsALinkToThePageInsteadOfButtons() throws {
        let parsed = try WorkflowsConfigurationTests.parse(Self.configuration)
        let request = ApprovalRequest(
            id: "ar_1", clientID: "app", scopes: ScopeSet(["orders:read", "orders:write"]), alreadyGranted: ScopeSet([String]()),
            createdAt: now, expiresAt: now + 600)
        let policy = parsed.policy
        #expect(policy.tier(of: request) == "elevated")
        let content = ApprovalMessageContent(
            request: request, policy: policy, justifications: [], routeName: "all", confirmTiers: [], waiting: 1,
            publicURL: URL(string: "https://login.example/"))
        #expect(content.stepUpURL == "https://login.example/_scopegate/approvals/ar_1")
        let slack = String(decoding: SlackApprovalMessage(content).body.blocks.encoded(), as: UTF8.self)
        #expect(slack.contains("https://login.example/_scopegate/approvals/ar_1"))
        for action in SlackApprovalMessage.Action.allCases { #expect(!slack.contains(action.rawValue)) }
        #expect(!slack.contains(SlackApprovalMessage.scopesAction), "the page offers the choice of scopes")
        let teams = String(decoding: TeamsApprovalCard(content).card.encoded(), as: UTF8.self)
        #expect(teams.contains("Action.OpenUrl") && !teams.contains("Action.Execute"))
        // Decided, it shows the outcome and no link.
        let decided = try request.applying(Decision(outcome: .approved, actor: "page:alice@example.com", at: now))
        var after = content
        after.request = decided
        #expect(after.stepUpURL == nil)
    }
}
