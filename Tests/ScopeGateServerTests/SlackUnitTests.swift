import Foundation
import ScopeGateCore
import Testing

@testable import ScopeGateServer

@Suite struct SlackSignatureTests {
    struct Vector: Decodable {
        var signing_secret: String
        var timestamp: String
        var body: String
        var expected_signature: String
    }

    static let testsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let sharedCopy = testsFolder.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("shared/vectors/slack-signing.json")

    /// Slack's worked example: the copy kept with the tests (identical to the shared vectors, checked
    /// below whenever those are beside the repository).
    static func vector() throws -> Vector {
        try JSONDecoder().decode(Vector.self, from: Data(contentsOf: testsFolder.appendingPathComponent("Vectors/slack-signing.json")))
    }

    @Test func theKeptCopyIsTheSharedVector() throws {
        guard let shared = try? Data(contentsOf: Self.sharedCopy) else { return }
        #expect(shared == (try Data(contentsOf: Self.testsFolder.appendingPathComponent("Vectors/slack-signing.json"))))
    }

    @Test func matchesSlacksWorkedExample() throws {
        let vector = try Self.vector()
        let signature = SlackSignature(signingSecret: vector.signing_secret)
        #expect(signature.signature(timestamp: vector.timestamp, body: Array(vector.body.utf8)) == vector.expected_signature)
        let then = Date(timeIntervalSince1970: TimeInterval(Int(vector.timestamp)!) + 10)
        #expect(throws: Never.self) {
            try signature.verify(
                timestamp: vector.timestamp, signature: vector.expected_signature, body: Array(vector.body.utf8), now: then)
        }
    }

    @Test func refusesAlteredStaleUnsignedAndForeignRequests() throws {
        let vector = try Self.vector()
        let signature = SlackSignature(signingSecret: vector.signing_secret)
        let body = Array(vector.body.utf8)
        let sent = TimeInterval(Int(vector.timestamp)!)
        let now = Date(timeIntervalSince1970: sent + 1)
        #expect(throws: SlackSignature.Failure.badSignature) {
            try signature.verify(timestamp: vector.timestamp, signature: vector.expected_signature, body: body + Array("&x=1".utf8), now: now)
        }
        #expect(throws: SlackSignature.Failure.staleTimestamp) {
            try signature.verify(
                timestamp: vector.timestamp, signature: vector.expected_signature, body: body,
                now: Date(timeIntervalSince1970: sent + 301))
        }
        #expect(throws: SlackSignature.Failure.staleTimestamp) {
            try signature.verify(
                timestamp: vector.timestamp, signature: vector.expected_signature, body: body,
                now: Date(timeIntervalSince1970: sent - 301))
        }
        #expect(throws: SlackSignature.Failure.missingHeaders) {
            try signature.verify(timestamp: nil, signature: vector.expected_signature, body: body, now: now)
        }
        #expect(throws: SlackSignature.Failure.missingHeaders) {
            try signature.verify(timestamp: vector.timestamp, signature: nil, body: body, now: now)
        }
        #expect(throws: SlackSignature.Failure.missingHeaders) {
            try signature.verify(timestamp: "+1531420618", signature: vector.expected_signature, body: body, now: now)
        }
        let foreign = SlackSignature(signingSecret: "another-secret")
        #expect(throws: SlackSignature.Failure.badSignature) {
            try foreign.verify(timestamp: vector.timestamp, signature: vector.expected_signature, body: body, now: now)
        }
        #expect(throws: SlackSignature.Failure.badSignature) {
            try signature.verify(
                timestamp: vector.timestamp, signature: vector.expected_signature.uppercased(), body: body, now: now)
        }
    }
}

@Suite struct SlackApprovalMessageTests {
    static let policy = Policy(
        rules: [
            .init(pattern: GlobPattern("openid"), auto: .approve, tier: "low", description: "Know who you are", origin: "scopes[0]"),
            .init(pattern: GlobPattern("*:read"), auto: .ask, tier: "elevated", description: "Read <b>data</b>", origin: "scopes[1]"),
            .init(pattern: GlobPattern("*:write"), auto: .ask, tier: "critical", origin: "scopes[2]"),
        ],
        clients: [.init(id: "app", name: "Evil <@U0BOSS> <!channel> <https://evil.example|click>", redirectURIs: [])],
        tiers: [.init(name: "low", grantLifetime: nil), .init(name: "elevated", grantLifetime: nil), .init(name: "critical", grantLifetime: nil)],
        defaultTier: "elevated", approvalTimeout: .seconds(600))

    static func request(_ scopes: String) throws -> ApprovalRequest {
        ApprovalRequest(
            id: "req123", clientID: "app", scopes: try ScopeSet(parsing: scopes), alreadyGranted: try ScopeSet(parsing: "openid"),
            createdAt: Date(timeIntervalSince1970: 1_700_000_000), expiresAt: Date(timeIntervalSince1970: 1_700_000_600))
    }

    static func json(_ message: SlackApprovalMessage) -> String {
        let body = message.body
        return body.text + "\n" + String(decoding: body.blocks.encoded(), as: UTF8.self)
    }

    /// Every text object in the blocks, as (type, text).
    static func textObjects(_ value: Any) -> [(String, String)] {
        if let object = value as? [String: Any] {
            var found: [(String, String)] = []
            if let type = object["type"] as? String, let text = object["text"] as? String,
                type == "plain_text" || type == "mrkdwn"
            {
                found.append((type, text))
            }
            for (_, member) in object { found += textObjects(member) }
            return found
        }
        if let array = value as? [Any] { return array.flatMap(textObjects) }
        return []
    }

    @Test func nothingFromTheRequestCanMentionLinkOrFormat() throws {
        let justification = "<!here> please <https://phish.example|approve> me <@U0ADMIN>"
        let message = SlackApprovalMessage(
            request: try Self.request("orders:read"), policy: Self.policy, justifications: [justification],
            routeName: "everyone", confirmTiers: ["critical"])
        let body = message.body
        let blocks = try JSONSerialization.jsonObject(with: body.blocks.encoded())
        let texts = Self.textObjects(blocks)
        let injected = ["<@U0BOSS>", "<!channel>", "<https://evil", "<!here>", "<https://phish", "<@U0ADMIN>", "<b>"]
        // Slack parses mrkdwn objects and the top-level text: nothing from the request survives there.
        for text in texts.filter({ $0.0 == "mrkdwn" }).map(\.1) + [body.text] {
            for sequence in injected { #expect(!text.contains(sequence), "\(sequence) survived in \(text)") }
        }
        #expect(texts.contains { $0.0 == "mrkdwn" && $0.1.contains("Evil &lt;@U0BOSS&gt;") })
        #expect(texts.contains { $0.0 == "mrkdwn" && $0.1.contains("Read &lt;b&gt;data&lt;/b&gt;") })
        // The justification is plain text, which Slack shows as it is, never as a mention or link.
        #expect(texts.contains { $0.0 == "plain_text" && $0.1.contains(justification) })
        #expect(!texts.contains { $0.0 == "mrkdwn" && $0.1.contains("phish") })
        #expect(!Self.json(message).contains(#""verbatim":false"#))
    }

    @Test func aPendingRequestShowsScopesButtonsAndConfirmsDenial() throws {
        let message = SlackApprovalMessage(
            request: try Self.request("orders:read"), policy: Self.policy, justifications: [], routeName: "everyone",
            confirmTiers: ["critical"])
        let json = Self.json(message)
        #expect(json.contains("`orders:read` (elevated)"))
        #expect(json.contains("*Already granted*"))
        #expect(json.contains("`openid` (low)"))
        #expect(json.contains("req123"))
        for action in SlackApprovalMessage.Action.allCases { #expect(json.contains(action.rawValue)) }
        #expect(json.contains("Deny this request?"), "Deny asks for confirmation")
        #expect(!json.contains("Approve critical scopes?"), "an elevated approval needs no confirmation")
        #expect(json.contains("has not given a reason yet"))
        #expect(json.contains("Route: everyone"))
    }

    @Test func aRequestForSeveralScopesOffersCheckboxesAndAPartialOutcomeSaysWhatWasLeftOut() throws {
        let message = SlackApprovalMessage(
            request: try Self.request("orders:read orders:write"), policy: Self.policy, justifications: [], routeName: "everyone",
            confirmTiers: [])
        let blocks = try #require(try JSONSerialization.jsonObject(with: message.body.blocks.encoded()) as? [[String: Any]])
        let checkboxes = try #require(blocks.first { $0["block_id"] as? String == "scopegate_scopes" }?["elements"] as? [[String: Any]])
        #expect(checkboxes.first?["type"] as? String == "checkboxes")
        #expect((checkboxes.first?["options"] as? [[String: Any]])?.compactMap { $0["value"] as? String } == ["orders:read", "orders:write"])
        #expect((checkboxes.first?["initial_options"] as? [Any])?.count == 2)
        // A single scope is approved or not: no checkboxes.
        let single = SlackApprovalMessage(
            request: try Self.request("orders:read"), policy: Self.policy, justifications: [], routeName: "everyone", confirmTiers: [])
        #expect(!Self.json(single).contains(SlackApprovalMessage.scopesAction))

        let decided = try Self.request("orders:read orders:write").applying(
            Decision(
                outcome: .approved, actor: "slack:T0TEAM/U0ALICE", at: Date(timeIntervalSince1970: 1_700_000_100),
                scopes: ScopeSet(["orders:read"])))
        let json = Self.json(SlackApprovalMessage(request: decided, policy: Self.policy, justifications: [], routeName: "everyone", confirmTiers: []))
        #expect(json.contains("only `orders:read`; not `orders:write`"))
        #expect(!json.contains(SlackApprovalMessage.scopesAction))
    }

    @Test func theTickedScopesComeFromTheClicksState() throws {
        func payload(_ state: String?) throws -> SlackInteractions.Payload {
            let text = #"{"type":"block_actions","actions":[{"action_id":"scopegate_approve","value":"r"}]"#
                + (state.map { #","state":{"values":{"scopegate_scopes":{"scopegate_scopes":"# + $0 + "}}}" } ?? "") + "}"
            return try JSONDecoder().decode(SlackInteractions.Payload.self, from: Data(text.utf8))
        }
        #expect(try payload(nil).ticked() == nil, "a message without checkboxes approves every scope")
        let ticked = try payload(#"{"type":"checkboxes","selected_options":[{"text":{"type":"plain_text","text":"b"},"value":"b"},{"value":"a"}]}"#)
        #expect(try ticked.ticked() == ScopeSet(["a", "b"]))
        #expect(throws: GateError.self) { try payload(#"{"type":"checkboxes","selected_options":[]}"#).ticked() }
    }

    @Test func criticalApprovalsAskForConfirmation() throws {
        let message = SlackApprovalMessage(
            request: try Self.request("orders:write"), policy: Self.policy, justifications: [], routeName: "critical",
            confirmTiers: ["critical"])
        #expect(Self.json(message).contains("Approve critical scopes?"))
    }

    @Test func aDecidedRequestShowsTheOutcomeInsteadOfButtons() throws {
        let decided = try Self.request("orders:read").applying(
            Decision(outcome: .approved, actor: "slack:T0TEAM/U0ALICE", at: Date(timeIntervalSince1970: 1_700_000_100)))
        let json = Self.json(
            SlackApprovalMessage(request: decided, policy: Self.policy, justifications: [], routeName: "everyone", confirmTiers: []))
        #expect(!json.contains("scopegate_approve"))
        #expect(json.contains("*Approved* by <@U0ALICE>"))
        let denied = try Self.request("orders:read").applying(
            Decision(outcome: .denied, actor: "cli:<!channel>", at: Date(timeIntervalSince1970: 1_700_000_100)))
        let deniedJSON = Self.json(
            SlackApprovalMessage(request: denied, policy: Self.policy, justifications: [], routeName: "everyone", confirmTiers: []))
        #expect(deniedJSON.contains("*Denied* by &lt;!channel&gt; (command line)"))
    }
}

@Suite struct SlackConfigurationTests {
    static func parse(_ slack: String) throws -> ScopeGateConfiguration {
        try ScopeGateConfiguration.parse(
            yaml: """
                public_url: https://login.example
                upstream:
                  url: http://127.0.0.1:9000
                store:
                  path: /tmp/x.sqlite
                clients:
                  - id: app
                    redirect_uris: ["https://app.example/cb"]
                \(slack)
                """, baseDirectory: URL(fileURLWithPath: "/"), environment: ["BOT": "xoxb-1", "SECRET": "s3cr3t"])
    }

    static let header = """
        slack:
          team_id: T0TEAM
          bot_token_env: BOT
          signing_secret_env: SECRET
        """

    @Test func readsRoutesInOrderWithADefault() throws {
        let configuration = try Self.parse(
            Self.header + """

                routes:
                  - name: prod
                    match: {scopes: ["*:write"], tiers: [critical], clients: [app]}
                    channel: C0PROD
                    approvers: {groups: [S0SEC]}
                  - name: all
                    channel: C0ALL
                    dm: true
                    approvers: {users: [U0A, W0B]}
                default_route: all
                """)
        let slack = try #require(configuration.slack)
        let routing = try #require(configuration.routing)
        #expect(routing.routes.map(\.name) == ["prod", "all"])
        #expect(routing.defaultRoute.name == "all")
        #expect(routing.defaultRoute.reach(on: "slack")?.destinations == ["C0ALL", "U0A", "W0B"])
        #expect(routing.defaultRoute.reach(on: "teams") == nil)
        #expect(slack.apiURL.absoluteString == "https://slack.com/api")
        #expect(configuration.confirmTiers == ["critical"])
    }

    @Test(arguments: [
        ("routes:\n  - name: a\n    channel: C0A\n    approvers: {users: [U0A]}", "default_route"),
        ("routes:\n  - name: a\n    channel: C0A\ndefault_route: a", "routes[0].approvers"),
        ("routes:\n  - name: a\n    channel: C0A\n    approvers: {users: [alice]}\ndefault_route: a", "routes[0].approvers.users[0]"),
        ("routes:\n  - name: a\n    channel: \"#approvals\"\n    approvers: {users: [U0A]}\ndefault_route: a", "routes[0].channel"),
        ("routes:\n  - name: a\n    match: {tiers: [severe]}\n    channel: C0A\n    approvers: {users: [U0A]}\ndefault_route: a", "routes[0].match.tiers[0]"),
        ("routes:\n  - name: a\n    match: {clients: [ghost]}\n    channel: C0A\n    approvers: {users: [U0A]}\ndefault_route: a", "routes[0].match.clients[0]"),
        ("routes:\n  - name: a\n    channel: C0A\n    approvers: {users: [U0A]}\ndefault_route: b", "default_route"),
    ])
    func refusesPoliciesWhereARequestCouldReachNoApprover(routes: String, key: String) {
        #expect {
            try Self.parse(Self.header + "\n" + routes)
        } throws: { error in
            (error as? GateError)?.message.hasPrefix(key) == true
        }
    }

    @Test func refusesMissingSecretsAndRoutesWithoutSlack() {
        #expect(throws: GateError.self) {
            try Self.parse("slack:\n  team_id: T0TEAM\n  bot_token_env: MISSING\n  signing_secret_env: SECRET\nroutes: []")
        }
        #expect(throws: GateError.self) {
            try Self.parse("routes:\n  - name: a\n    channel: C0A\n    approvers: {users: [U0A]}\ndefault_route: a")
        }
    }
}

/// Only `serve` needs the secrets a configuration names: every other command reads it with secrets
/// deferred, a missing one a warning, so that an auditor needs neither the admin token nor Slack's.
@Suite struct DeferredSecretsTests {
    static let yaml = """
        public_url: https://login.example
        upstream:
          url: http://127.0.0.1:9000
        store:
          path: /tmp/x.sqlite
        admin:
          token_env: ADMIN
        clients:
          - id: app
            redirect_uris: ["https://app.example/cb"]
        slack:
          team_id: T0TEAM
          bot_token_env: BOT
          signing_secret_file: /nonexistent/signing-secret
        routes:
          - name: all
            channel: C0ALL
            approvers: {users: [U0A]}
        default_route: all
        """

    @Test func missingSecretsAreErrorsToServeAndWarningsToTheRest() throws {
        #expect(throws: GateError.self) {
            try ScopeGateConfiguration.parse(yaml: Self.yaml, baseDirectory: URL(fileURLWithPath: "/"), environment: [:])
        }
        let deferred = try ScopeGateConfiguration.parse(
            yaml: Self.yaml, baseDirectory: URL(fileURLWithPath: "/"), environment: [:], secrets: .deferred)
        #expect(deferred.warnings.count == 3)
        #expect(deferred.warnings.contains { $0.hasPrefix("admin.token_env names the environment variable ADMIN") })
        #expect(deferred.warnings.contains { $0.hasPrefix("slack.bot_token_env") })
        #expect(deferred.warnings.contains { $0.hasPrefix("slack.signing_secret_file") })
        #expect(deferred.warnings.allSatisfy { !$0.contains("xoxb") }, "no secret, real or stand-in, in a message")
        let present = try ScopeGateConfiguration.parse(
            yaml: Self.yaml.replacingOccurrences(of: "signing_secret_file: /nonexistent/signing-secret", with: "signing_secret_env: SECRET"),
            baseDirectory: URL(fileURLWithPath: "/"),
            environment: ["ADMIN": String(repeating: "a", count: 20), "BOT": "xoxb-1", "SECRET": "s"], secrets: .deferred)
        #expect(present.warnings.isEmpty)
        #expect(present.adminToken == String(repeating: "a", count: 20))
    }
}
