import Crypto
import Foundation
import ScopeGateCore
import Testing
import _CryptoExtras

@testable import ScopeGateServer

/// The Bot Connector's token as the Bot Framework specifies it, each way of forging one refused.
@Suite struct BotConnectorTokenTests {
    static let appID = "11111111-2222-3333-4444-555555555555"
    static let serviceURL = "https://smba.trafficmanager.net/teams/"
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let signer = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    static let otherSigner = try! _RSA.Signing.PrivateKey(keySize: .bits2048)

    struct Keys: BotSigningKeySource {
        var keys: [String: BotSigningKey]
        func key(id: String) async -> BotSigningKey? { keys[id] }
    }

    static let validator = BotConnectorTokenValidator(
        keys: Keys(keys: [
            "k1": BotSigningKey(publicKey: signer.publicKey, endorsements: ["msteams"]),
            "k2": BotSigningKey(publicKey: signer.publicKey, endorsements: ["webchat"]),
        ]), appID: appID, issuer: "https://api.botframework.com")

    static func claims(
        iss: String = "https://api.botframework.com", aud: String = appID, exp: TimeInterval = 600, nbf: TimeInterval = -60,
        serviceURL: String? = Self.serviceURL
    ) -> [String: Any] {
        var claims: [String: Any] = [
            "iss": iss, "aud": aud, "exp": now.timeIntervalSince1970 + exp, "nbf": now.timeIntervalSince1970 + nbf,
        ]
        if let serviceURL { claims["serviceurl"] = serviceURL }
        return claims
    }

    static func token(header: [String: Any] = ["alg": "RS256", "kid": "k1", "typ": "JWT"], claims: [String: Any] = claims(),
        key: _RSA.Signing.PrivateKey = signer) throws -> String
    {
        let input = Base64URL.encode(try JSONSerialization.data(withJSONObject: header)) + "."
            + Base64URL.encode(try JSONSerialization.data(withJSONObject: claims))
        let signature = try key.signature(for: Data(input.utf8), padding: .insecurePKCS1v1_5)
        return input + "." + Base64URL.encode(signature.rawRepresentation)
    }

    func check(_ token: String?, serviceURL: String? = serviceURL, channel: String? = "msteams") async
        -> BotConnectorTokenValidator.Refusal?
    {
        do {
            try await Self.validator.validate(
                authorization: token.map { "Bearer " + $0 }, serviceURL: serviceURL, channelID: channel, now: Self.now)
            return nil
        } catch {
            return error
        }
    }

    @Test func aTokenSignedAsTheConnectorSignsIsAccepted() async throws {
        #expect(await check(try Self.token()) == nil)
        #expect(await check(try Self.token(), serviceURL: "https://smba.trafficmanager.net/teams") == nil, "one trailing slash aside")
    }

    @Test func everyForgeryIsRefused() async throws {
        #expect(await check(nil) == .missingHeader)
        #expect(await check("") == .missingHeader)
        #expect(await check("not.a.jwt") == .malformed)
        // alg none, unsigned.
        let unsigned = Base64URL.encode(try JSONSerialization.data(withJSONObject: ["alg": "none", "kid": "k1"])) + "."
            + Base64URL.encode(try JSONSerialization.data(withJSONObject: Self.claims())) + "."
        #expect(await check(unsigned) == .algorithm("none"))
        // HS256 keyed with the public key's bytes: the classic confusion; refused before any key is used.
        let header = Base64URL.encode(try JSONSerialization.data(withJSONObject: ["alg": "HS256", "kid": "k1"]))
        let body = Base64URL.encode(try JSONSerialization.data(withJSONObject: Self.claims()))
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data((header + "." + body).utf8), using: SymmetricKey(data: Self.signer.publicKey.derRepresentation))
        #expect(await check(header + "." + body + "." + Base64URL.encode(Data(mac))) == .algorithm("HS256"))
        #expect(await check(try Self.token(header: ["alg": "RS256", "kid": "unknown"])) == .unknownKey)
        #expect(await check(try Self.token(header: ["alg": "RS256"])) == .unknownKey)
        #expect(await check(try Self.token(key: Self.otherSigner)) == .badSignature)
        #expect(await check(try Self.token(header: ["alg": "RS256", "kid": "k2"])) == .notEndorsed, "a key endorsed for another channel")
        #expect(await check(try Self.token(claims: Self.claims(iss: "https://sts.windows.net/x/"))) == .issuer)
        #expect(await check(try Self.token(claims: Self.claims(aud: "99999999-2222-3333-4444-555555555555"))) == .audience)
        #expect(await check(try Self.token(claims: Self.claims(exp: -301))) == .expired)
        #expect(await check(try Self.token(claims: Self.claims(exp: -200))) == nil, "within five minutes of skew")
        #expect(await check(try Self.token(claims: Self.claims(nbf: 301))) == .notYetValid)
        #expect(await check(try Self.token(), serviceURL: "https://evil.example/teams/") == .serviceURL)
        #expect(await check(try Self.token(claims: Self.claims(serviceURL: nil))) == .serviceURL)
        #expect(await check(try Self.token(), serviceURL: nil) == .serviceURL)
        // A token whose claims were changed after signing.
        let parts = try Self.token().split(separator: ".")
        let forged = Base64URL.encode(try JSONSerialization.data(withJSONObject: Self.claims(aud: "x")))
        #expect(await check(parts[0] + "." + forged + "." + parts[2]) == .badSignature)
    }
}

/// Approvers see how the app stands: its registration label and since when it is known, or that the
/// configuration does not name it.
@Suite struct ClientStandingOnMessagesTests {
    @Test func slackTeamsAndThePageSayHowTheAppStands() throws {
        var content = try TeamsApprovalCardTests.content("orders:read")
        #expect(content.standingText == nil)
        content.clientStanding = ClientStanding(registration: "marketplace", knownSince: Date(timeIntervalSince1970: 1_748_822_400))
        #expect(content.standingText == "registered: marketplace, known since 2025-06-02 00:00:00 UTC")
        #expect(SlackApprovalMessageTests.json(SlackApprovalMessage(content)).contains("App: registered: marketplace, known since 2025-06-02"))
        #expect(TeamsApprovalCardTests.json(TeamsApprovalCard(content).card).contains("registered: marketplace, known since 2025-06-02"))
        content.clientStanding = ClientStanding(registration: ClientStanding.unlisted, knownSince: Date(timeIntervalSince1970: 1_796_000_000))
        #expect(content.standingText == "not in ScopeGate's configuration, first asked 2026-11-30 00:53:20 UTC")
        content.clientStanding = ClientStanding(registration: ClientStanding.listed, knownSince: nil)
        #expect(content.standingText == nil, "nothing known beyond what the message already says")
    }
}

@Suite struct TeamsApprovalCardTests {
    static func content(_ scopes: String, state: Decision? = nil, waiting: Int = 1, justification: String? = nil) throws
        -> ApprovalMessageContent
    {
        var request = try SlackApprovalMessageTests.request(scopes)
        if let state { request = try request.applying(state) }
        return ApprovalMessageContent(
            request: request, policy: SlackApprovalMessageTests.policy, justifications: justification.map { [$0] } ?? [],
            routeName: "everyone", confirmTiers: ["critical"], waiting: waiting)
    }

    static func json(_ value: JSONValue) -> String { String(decoding: value.encoded(), as: UTF8.self) }

    /// Every object of the card with its `type`.
    static func elements(_ value: Any) -> [[String: Any]] {
        if let object = value as? [String: Any] {
            return (object["type"] != nil ? [object] : []) + object.values.flatMap(elements)
        }
        if let array = value as? [Any] { return array.flatMap(elements) }
        return []
    }

    @Test func aPendingRequestCarriesWhatSlackShowsAndThreeActions() throws {
        let card = TeamsApprovalCard(try Self.content("orders:read", justification: "[click](https://phish.example) **now**")).card
        let object = try JSONSerialization.jsonObject(with: card.encoded()) as! [String: Any]
        #expect(object["version"] as? String == "1.5")
        let elements = Self.elements(object)
        let texts = elements.compactMap { $0["text"] as? String }
        #expect(texts.contains("orders:read"))
        #expect(texts.contains(" (elevated)"))
        #expect(texts.contains(" — Read <b>data</b>"))
        #expect(texts.contains("Already granted"))
        #expect(texts.contains("req123"))
        // Everything from the request or the configuration is a TextRun (plain text), never a TextBlock
        // that Teams would read as Markdown.
        let markdown = elements.filter { $0["type"] as? String == "TextBlock" }.compactMap { $0["text"] as? String }
        #expect(!markdown.contains { $0.contains("phish") || $0.contains("Evil") || $0.contains("<b>") })
        #expect(elements.contains { $0["type"] as? String == "TextRun" && ($0["text"] as? String)?.contains("phish") == true })
        let executes = elements.filter { $0["type"] as? String == "Action.Execute" }
        #expect(Set(executes.compactMap { $0["verb"] as? String }) == Set(TeamsApprovalCard.Verb.allCases.map(\.rawValue)))
        #expect(executes.allSatisfy { ($0["data"] as? [String: Any])?["request"] as? String == "req123" })
        // Deny asks first; an elevated approval does not.
        let top = try #require(object["actions"] as? [[String: Any]])
        #expect(top.map { $0["type"] as? String } == ["Action.Execute", "Action.Execute", "Action.ShowCard"])
    }

    @Test func aRequestForSeveralScopesOffersAChoiceSetAndAPartialOutcomeSaysWhatWasLeftOut() throws {
        let card = TeamsApprovalCard(try Self.content("orders:read orders:write")).card
        let object = try JSONSerialization.jsonObject(with: card.encoded()) as! [String: Any]
        let choice = try #require(Self.elements(object).first { $0["id"] as? String == TeamsApprovalCard.scopesInput })
        #expect(choice["type"] as? String == "Input.ChoiceSet")
        #expect(choice["isMultiSelect"] as? Bool == true)
        #expect(choice["value"] as? String == "orders:read,orders:write", "every scope starts ticked")
        #expect(!Self.json(TeamsApprovalCard(try Self.content("orders:read")).card).contains("\"isMultiSelect\""))
        let decided = try Self.content(
            "orders:read orders:write",
            state: Decision(
                outcome: .approved, actor: "teams:tenant/abc", at: Date(timeIntervalSince1970: 1_700_000_100), scopes: ScopeSet(["orders:write"])))
        #expect(Self.json(TeamsApprovalCard(decided).card).contains(", only orders:write; not orders:read."))
    }

    @Test func criticalScopesAndSeveralWaitingAskForConfirmation() throws {
        let critical = try JSONSerialization.jsonObject(with: TeamsApprovalCard(try Self.content("orders:write")).card.encoded())
        let top = try #require((critical as? [String: Any])?["actions"] as? [[String: Any]])
        #expect(top.allSatisfy { $0["type"] as? String == "Action.ShowCard" })
        let many = Self.json(TeamsApprovalCard(try Self.content("orders:read", waiting: 3)).card)
        #expect(many.contains("Approve once (all 3)"))
        #expect(many.contains("3 sign-ins wait on this request"))
    }

    @Test func aDecidedRequestShowsTheOutcomeAndNoActions() throws {
        let decided = try Self.content(
            "orders:read",
            state: Decision(outcome: .approved, actor: "teams:tenant/abc", at: Date(timeIntervalSince1970: 1_700_000_100)))
        let json = Self.json(TeamsApprovalCard(decided).card)
        #expect(!json.contains("Action.Execute"))
        #expect(json.contains("\"Approved\""))
        #expect(json.contains("by a Teams approver (abc) at 2023-11-14 22:15:00 UTC."))
        let activity = Self.json(TeamsApprovalCard(decided).activity(id: "1:act"))
        #expect(activity.contains(#""id":"1:act""#))
        #expect(activity.contains("application/vnd.microsoft.card.adaptive"))
    }
}

@Suite struct TeamsConfigurationTests {
    static let tenant = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    static let approver = "0f0f0f0f-1111-2222-3333-444444444444"

    static func parse(_ extra: String, environment: [String: String] = ["TEAMS": "secret"]) throws -> ScopeGateConfiguration {
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
                \(extra)
                """, baseDirectory: URL(fileURLWithPath: "/"), environment: environment)
    }

    static let teams = """
        teams:
          app_id: 11111111-2222-3333-4444-555555555555
          app_password_env: TEAMS
          tenant_id: \(tenant)
          service_url: https://smba.trafficmanager.net/teams/
        """

    @Test func readsTheBotAndRoutesThatReachTeams() throws {
        let configuration = try Self.parse(
            Self.teams + """

                routes:
                  - name: all
                    teams:
                      channel: "19:abc@thread.tacv2"
                      approvers: {users: [\(Self.approver.uppercased())]}
                default_route: all
                """)
        let teams = try #require(configuration.teams?.bot)
        #expect(teams.tokenURL.absoluteString == "https://login.microsoftonline.com/\(Self.tenant)/oauth2/v2.0/token")
        #expect(teams.openIDMetadataURL.absoluteString == "https://login.botframework.com/v1/.well-known/openidconfiguration")
        #expect(teams.issuer == "https://api.botframework.com")
        let reach = try #require(configuration.routing?.defaultRoute.reach(on: "teams"))
        #expect(reach.channel == "19:abc@thread.tacv2")
        #expect(reach.approverUsers == [Self.approver], "object ids compare lowercased")
        #expect(configuration.routing?.defaultRoute.reach(on: "slack") == nil)
        #expect(configuration.slack == nil)
    }

    @Test func aMultiTenantBotGetsItsTokensFromBotFramework() throws {
        let configuration = try Self.parse(
            Self.teams + "\n  multi_tenant: true\nroutes:\n  - name: a\n    teams: {channel: \"19:a@thread.tacv2\", approvers: {users: [\(Self.approver)]}}\ndefault_route: a")
        #expect(configuration.teams?.bot?.tokenURL.absoluteString == "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token")
    }

    @Test(arguments: [
        ("teams:\n  app_id: bot\n  app_password_env: TEAMS\n  tenant_id: \(tenant)\n  service_url: https://s.example/", "teams.app_id"),
        (teams.replacingOccurrences(of: "TEAMS", with: "MISSING"), "teams.app_password_env"),
        (teams + "\nroutes:\n  - name: a\n    teams: {channel: general, approvers: {users: [\(approver)]}}\ndefault_route: a", "routes[0].teams.channel"),
        (teams + "\nroutes:\n  - name: a\n    teams: {channel: \"19:a@thread.tacv2\", approvers: {users: [alice@example.com]}}\ndefault_route: a", "routes[0].teams.approvers.users[0]"),
        (teams + "\nroutes:\n  - name: a\n    teams: {channel: \"19:a@thread.tacv2\"}\ndefault_route: a", "routes[0].teams.approvers.users"),
        (teams + "\nroutes:\n  - name: a\n    teams: {channel: \"19:a@thread.tacv2\", approvers: {groups: [g]}}\ndefault_route: a", "routes[0].teams.approvers.groups"),
        (teams + "\nroutes:\n  - name: a\n    channel: C0A\n    approvers: {users: [U0A]}\ndefault_route: a", "routes[0].channel"),
        (teams + "\nroutes:\n  - name: a\ndefault_route: a", "routes[0].channel"),
        ("routes:\n  - name: a\n    teams: {channel: \"19:a@thread.tacv2\", approvers: {users: [\(approver)]}}\ndefault_route: a", "routes"),
    ])
    func refusesWhatCouldPostNowhereOrLetTheWrongPeopleDecide(yaml: String, key: String) {
        #expect {
            try Self.parse(yaml)
        } throws: { error in
            (error as? GateError)?.message.hasPrefix(key) == true
        }
    }
}

/// The Teams block the shipped example carries in comments is valid once uncommented.
@Suite struct TeamsExampleTests {
    @Test func theCommentedTeamsExampleIsAValidConfiguration() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("proxy-config/scopegate.yaml"), encoding: .utf8)
        let start = try #require(text.range(of: "# teams:\n"))
        let uncommented = text[start.lowerBound...].split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("# ") ? String(line.dropFirst(2)) : line == "#" ? "" : String(line)
        } as [String]
        // The example's audit keys are made by a script in certs/; this test needs none.
        let slackComment = try #require(text.range(of: "# Approvals in Slack"))
        var base = String(text[..<slackComment.lowerBound])
        let audit = try #require(base.range(of: "\naudit:"))
        let afterAudit = try #require(base.range(of: "\nadmin:", range: audit.upperBound..<base.endIndex))
        base.removeSubrange(audit.lowerBound..<afterAudit.lowerBound)
        let configuration = try ScopeGateConfiguration.parse(
            yaml: base + uncommented.joined(separator: "\n"), baseDirectory: root.appendingPathComponent("proxy-config"),
            environment: ["TEAMS_APP_PASSWORD": "x"], secrets: .deferred)
        let routing = try #require(configuration.routing)
        #expect(routing.routes.map(\.name) == ["critical", "everyone-else"])
        #expect(routing.routes.allSatisfy { $0.reach(on: "teams") != nil })
        #expect(configuration.teams?.bot?.serviceURL.absoluteString == "https://smba.trafficmanager.net/teams/")
    }
}

/// Teams without a bot: a route posts to a Workflows webhook and is decided on the approval page.
@Suite struct WorkflowsConfigurationTests {
    static let routes = """
        teams: {}
        sign_in:
          client_id: scopegate
          client_secret_env: SIGNIN
        routes:
          - name: all
            teams:
              webhook_env: HOOK
            approval_page:
              approvers: {users: [Alice@Example.com, "42"]}
        default_route: all
        """

    static func parse(_ yaml: String, environment: [String: String] = ["SIGNIN": "s", "HOOK": "https://prod.example/workflows/x?sig=secret"])
        throws -> ScopeGateConfiguration
    {
        try TeamsConfigurationTests.parse(
            yaml.replacingOccurrences(of: "clients:", with: "clients:") + "\nscopes:\n  - pattern: openid\n    auto: approve\n    tier: low",
            environment: environment)
    }

    @Test func aWebhookRouteNeedsNoBotAndIsDecidedOnThePage() throws {
        let configuration = try Self.parse(Self.routes)
        #expect(configuration.teams?.bot == nil)
        #expect(configuration.teams?.webhooks["all"]?.absoluteString == "https://prod.example/workflows/x?sig=secret")
        let route = try #require(configuration.routing?.defaultRoute)
        #expect(route.reach(on: "teams")?.channel == "workflow:all", "the store keeps the route's name, never the URL")
        #expect(route.reach(on: ChatReach.approvalPage)?.approverUsers == ["alice@example.com", "42"])
        #expect(configuration.signIn?.scopes.tokens == ["openid"])
    }

    @Test(arguments: [
        (routes.replacingOccurrences(of: "    approval_page:\n      approvers: {users: [Alice@Example.com, \"42\"]}\n", with: ""), "routes[0].approval_page"),
        (routes.replacingOccurrences(of: "sign_in:\n  client_id: scopegate\n  client_secret_env: SIGNIN\n", with: ""), "sign_in"),
        (routes.replacingOccurrences(of: "webhook_env: HOOK", with: "webhook_env: HOOK\n      channel: \"19:a@thread.tacv2\""), "routes[0].teams.webhook_env"),
        (routes.replacingOccurrences(of: "client_secret_env: SIGNIN", with: "client_secret_env: SIGNIN\n  scopes: [openid, orders:read]"), "sign_in.scopes"),
    ])
    func refusesWhatNobodyCouldDecide(yaml: String, key: String) {
        #expect {
            try Self.parse(yaml)
        } throws: { error in
            (error as? GateError)?.message.hasPrefix(key) == true
        }
    }

    @Test func aWebhookThatIsNotHTTPSIsRefused() {
        #expect(throws: GateError.self) {
            try Self.parse(Self.routes, environment: ["SIGNIN": "s", "HOOK": "http://prod.example/workflows/x"])
        }
    }

    @Test func theWebhookCardLinksToThePageAndTheDecisionCarriesNoLink() throws {
        let pending = TeamsApprovalCard(try TeamsApprovalCardTests.content("orders:read"))
            .workflowActivity(approvalURL: "https://login.example/_scopegate/approvals/req123")
        let json = TeamsApprovalCardTests.json(pending)
        #expect(json.contains(#""version":"1.4""#))
        #expect(json.contains(#""type":"Action.OpenUrl""#) && json.contains("https://login.example/_scopegate/approvals/req123"))
        #expect(!json.contains("Action.Execute"))
        #expect(json.contains(#""contentUrl":null"#))
        let decided = TeamsApprovalCard(
            try TeamsApprovalCardTests.content(
                "orders:read", state: Decision(outcome: .denied, actor: "page:alice@example.com", at: Date(timeIntervalSince1970: 1_700_000_000)))
        ).workflowActivity(approvalURL: "https://login.example/_scopegate/approvals/req123")
        #expect(!TeamsApprovalCardTests.json(decided).contains("Action.OpenUrl"))
    }

    @Test func approversAreNamedBySubjectOrVerifiedEmail() {
        let verified = Approver(subject: "42", email: "Alice@Example.com", emailVerified: true, name: "Alice", signedInAt: Date())
        #expect(verified.isNamed(by: "alice@example.com"))
        #expect(verified.isNamed(by: "42"))
        #expect(!verified.isNamed(by: "4"))
        let unverified = Approver(subject: "43", email: "alice@example.com", emailVerified: false, name: nil, signedInAt: Date())
        #expect(!unverified.isNamed(by: "alice@example.com"), "an unverified email names nobody")
        #expect(unverified.actor == "page:43")
        #expect(verified.actor == "page:Alice@Example.com")
    }
}

@Suite struct EscalationConfigurationTests {
    static func parse(_ tiers: String) throws -> ScopeGateConfiguration {
        try TeamsConfigurationTests.parse(
            tiers + """

                slack:
                  team_id: T0TEAM
                  bot_token_env: BOT
                  signing_secret_env: SECRET
                routes:
                  - name: leads
                    channel: C0LEADS
                    approvers: {users: [U0A]}
                default_route: leads
                approvals:
                  timeout: 1h
                """, environment: ["BOT": "xoxb-1", "SECRET": "s"])
    }

    @Test func aTierEscalatesToANamedRouteBeforeItExpires() throws {
        let configuration = try Self.parse("tiers:\n  - name: elevated\n    escalate_after: 30m\n    escalate_to: leads")
        let escalation = try #require(configuration.policy.tiers["elevated"]?.escalation)
        #expect(escalation.after == .seconds(1800) && escalation.route == "leads")
    }

    @Test(arguments: [
        ("tiers:\n  - name: elevated\n    escalate_after: 30m\n    escalate_to: nobody", "tiers[0].escalate_to"),
        ("tiers:\n  - name: elevated\n    escalate_after: 2h\n    escalate_to: leads", "tiers[0].escalate_after"),
        ("tiers:\n  - name: elevated\n    escalate_to: leads", "tiers[0].escalate_after"),
        ("tiers:\n  - name: elevated\n    escalate_after: 30m", "tiers[0].escalate_to"),
        ("tiers:\n  - name: elevated\n    quorum: 0", "tiers[0].quorum"),
    ])
    func refusesEscalationsThatCouldNotHappen(tiers: String, key: String) {
        #expect {
            try Self.parse(tiers)
        } throws: { error in
            (error as? GateError)?.message.hasPrefix(key) == true
        }
    }
}

/// The example policy for an organisation (`proxy-config/example-organisation.yaml`) is valid and
/// decides as the README shows.
@Suite struct OrganisationExampleTests {
    static func configuration() throws -> ScopeGateConfiguration {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try ScopeGateConfiguration.load(
            path: root.appendingPathComponent("proxy-config/example-organisation.yaml").path, environment: [:], secrets: .deferred)
    }

    static func question(_ client: String, _ scopes: String, policy: Policy) throws -> (Policy.Evaluation, ApprovalRequest?) {
        let evaluation = policy.evaluate(scopes: try ScopeSet(parsing: scopes), clientID: client, granted: [])
        guard case .hold(let unapproved, let granted) = evaluation else { return (evaluation, nil) }
        return (evaluation, ApprovalRequest(id: "q", clientID: client, scopes: unapproved, alreadyGranted: granted, createdAt: Date(), expiresAt: Date()))
    }

    @Test func itDecidesAsTheReadmeShows() throws {
        let configuration = try Self.configuration()
        let policy = configuration.policy
        let routing = try #require(configuration.routing)
        #expect(!configuration.warnings.contains { $0.hasPrefix("route ") }, "every route can reach its quorum")

        let (_, crm) = try Self.question("salesforce-sync", "openid crm:contacts:read crm:contacts:write", policy: policy)
        #expect(routing.route(for: try #require(crm), policy: policy).name == "crm")
        #expect(policy.automation(for: crm!) == nil)

        let (_, production) = try Self.question("release-bot", "openid ci:read ci:deploy:production", policy: policy)
        #expect(routing.route(for: try #require(production), policy: policy).name == "production")
        #expect(policy.quorum(of: production!) == Quorum(approve: 2, deny: 1))

        let (_, sales) = try Self.question("bi-dashboards", "warehouse:read:aggregates warehouse:read:sales", policy: policy)
        #expect(policy.automation(for: try #require(sales))?.name == "first-party-reads")

        let (_, pii) = try Self.question("bi-dashboards", "warehouse:read:pii", policy: policy)
        #expect(policy.automation(for: try #require(pii)) == nil, "personal data is never approved by automation")
        #expect(routing.route(for: pii!, policy: policy).name == "data-protection")

        let (_, staging) = try Self.question("intern-project", "openid ci:deploy:staging", policy: policy)
        #expect(policy.automation(for: try #require(staging))?.outcome == .deny)

        // An app nobody here registered gets nothing critical in its first month; a marketplace app
        // registered long ago, or a first-party one, is asked about as usual.
        let (_, outside) = try Self.question("new-tool", "openid warehouse:read:pii", policy: policy)
        let now = Date()
        let newTool = policy.standing(of: "new-tool", firstRequest: now)
        #expect(policy.automation(for: try #require(outside), client: newTool, at: now)?.name == "no-critical-for-new-outside-apps")
        #expect(policy.automation(for: outside!, client: newTool, at: now.addingTimeInterval(31 * 86_400)) == nil)
        let (_, marketplace) = try Self.question("salesforce-sync", "warehouse:read:pii", policy: policy)
        #expect(policy.standing(of: "salesforce-sync", firstRequest: now).registration == "marketplace")
        #expect(policy.automation(for: try #require(marketplace), client: policy.standing(of: "salesforce-sync", firstRequest: now), at: now) == nil)
        #expect(policy.automation(for: pii!, client: policy.standing(of: "bi-dashboards", firstRequest: now), at: now) == nil)

        let (admin, _) = try Self.question("salesforce-sync", "admin:users", policy: policy)
        #expect(admin == .deny(ScopeSet(["admin:users"])))
        #expect(policy.tiers["critical"]?.escalation?.route == "security-leads")
    }
}

@Suite struct TierApprovalButtonsTests {
    @Test func onlyTheApprovalsTheTierAllowsAreOffered() throws {
        var policy = SlackApprovalMessageTests.policy
        var elevated = Policy.Tier(name: "elevated", grantLifetime: nil)
        elevated.allowsStanding = false
        policy.tiers["elevated"] = elevated
        let request = try SlackApprovalMessageTests.request("orders:read")
        let slack = SlackApprovalMessageTests.json(
            SlackApprovalMessage(request: request, policy: policy, justifications: [], routeName: "r", confirmTiers: []))
        #expect(!slack.contains("\"scopegate_approve\"") && slack.contains("scopegate_approve_once") && slack.contains("scopegate_deny"))
        let card = TeamsApprovalCardTests.json(
            TeamsApprovalCard(
                ApprovalMessageContent(
                    request: request, policy: policy, justifications: [], routeName: "r", confirmTiers: [], waiting: 1)
            ).card)
        #expect(!card.contains("\"scopegate_approve\"") && card.contains("scopegate_approve_once"))
    }
}
