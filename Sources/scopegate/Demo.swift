import ArgumentParser
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import ScopeGateAudit
import ScopeGateCore
import ScopeGateDemo
import ScopeGateServer
import ServiceLifecycle

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the whole loop locally: a demo IdP, ScopeGate in front of it, a demo app, a demo Slack and a demo Teams.")

    @Option(help: "The first of six consecutive loopback ports (IdP, ScopeGate, admin API, demo app, demo Slack, demo Teams).")
    var portBase: Int = 9400

    @Option(help: "Where the demo keeps its configuration and SQLite file (default: a new temporary folder).")
    var directory: String?

    func run() async throws {
        let logger = Logs.make()
        let folder = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("scopegate-demo-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let (idpPort, gatePort, adminPort, appPort) = (portBase, portBase + 1, portBase + 2, portBase + 3)
        let slackPort = portBase + 4
        let gateURL = "http://127.0.0.1:\(gatePort)"
        let appURL = "http://127.0.0.1:\(appPort)"
        let slackURL = "http://127.0.0.1:\(slackPort)"
        let teamsURL = "http://127.0.0.1:\(portBase + 5)"
        let configPath = folder + "/scopegate.yaml"
        // The demo Slack's secrets, made anew for each run and read by ScopeGate from files, as a
        // deployment would read them.
        let botToken = RandomID.make(bytes: 24)
        let signingSecret = RandomID.make()
        try botToken.write(toFile: folder + "/slack-bot-token", atomically: true, encoding: .utf8)
        try signingSecret.write(toFile: folder + "/slack-signing-secret", atomically: true, encoding: .utf8)
        let teamsPassword = RandomID.make(bytes: 24)
        try teamsPassword.write(toFile: folder + "/teams-app-password", atomically: true, encoding: .utf8)
        // The audit log's signing key, made once per demo folder.
        let keyring = AuditKeyring(directory: URL(fileURLWithPath: folder + "/audit-keys"))
        if (try? keyring.signingKey()) == nil { try keyring.generate(.es256) }
        try DemoConfiguration.yaml(
            idpPort: idpPort, gatePort: gatePort, adminPort: adminPort, appURL: appURL, slackURL: slackURL, teamsURL: teamsURL)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let configuration = try ScopeGateConfiguration.load(path: configPath)

        let idp = DemoIdentityProvider(issuer: gateURL)
        let idpReady = AsyncStream<Void>.makeStream()
        let idpTask = Task {
            try await Application(
                router: idp.router(), configuration: .init(address: .hostname("127.0.0.1", port: idpPort)),
                onServerRunning: { _ in idpReady.continuation.yield() }, logger: logger
            ).runService()
        }
        var readiness = idpReady.stream.makeAsyncIterator()
        _ = await readiness.next()

        let (gate, services) = try await ScopeGateApplication.prepare(configuration: configuration, logger: logger)
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
        let client = DemoClientApp(
            clientID: "demo-app", baseURL: appURL, gatewayURL: gateURL,
            approvals: ServiceApprovals(service: gate.service), httpClient: httpClient)
        let slack = DemoSlack(
            teamID: DemoConfiguration.slackTeam, botToken: botToken, signingSecret: signingSecret,
            interactionURL: gateURL + "/_scopegate/slack/interactions",
            members: [
                .init(id: "U0ALICE", name: "Alice (approver)"), .init(id: "U0BOB", name: "Bob (security group)"),
                .init(id: "U0MALLORY", name: "Mallory (not an approver)"),
            ],
            groups: ["S0SECURITY": ["U0BOB"]], httpClient: httpClient)
        let slackApp = Application(
            router: slack.router(), configuration: .init(address: .hostname("127.0.0.1", port: slackPort)), logger: logger)
        let teams = try DemoTeams(
            appID: DemoConfiguration.teamsApp, appPassword: teamsPassword, tenantID: DemoConfiguration.teamsTenant,
            baseURL: teamsURL, messagingURL: gateURL + "/_scopegate/teams/messages",
            members: [
                .init(id: DemoConfiguration.teamsAlice, name: "Alice (approver)"),
                .init(id: DemoConfiguration.teamsBob, name: "Bob (security)"),
                .init(id: DemoConfiguration.teamsMallory, name: "Mallory (not an approver)"),
            ], httpClient: httpClient)
        let teamsApp = Application(
            router: teams.router(), configuration: .init(address: .hostname("127.0.0.1", port: portBase + 5)), logger: logger)
        let clientApp = Application(
            router: client.router(), configuration: .init(address: .hostname("127.0.0.1", port: appPort)),
            onServerRunning: { _ in
                // Written straight to the file descriptor: `print` is block-buffered when the output is
                // not a terminal, and these lines are what a user needs first.
                FileHandle.standardOutput.write(Data(
                    """

                    ScopeGate demo is running.
                      1. Open \(appURL) and pick what the demo app asks for.
                      2. A held request shows ScopeGate's waiting page. Decide it in the demo Slack at
                         \(slackURL) or the demo Teams at \(teamsURL) (as it would be decided in Slack
                         or Teams), on the approvals page \(appURL)/approvals, or from another terminal:
                           swift run scopegate requests list --config \(configPath)
                           swift run scopegate requests approve <id> --config \(configPath)
                      3. The waiting page moves on by itself; the app shows the token's scopes or the denial.
                      4. Every step is in the signed audit log:
                           swift run scopegate audit tail --config \(configPath)
                           swift run scopegate audit verify --config \(configPath)
                    The demo IdP is at http://127.0.0.1:\(idpPort), ScopeGate at \(gateURL). Ctrl-C stops everything.

                    """.utf8))
            }, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: services + [slackApp, teamsApp, clientApp, HTTPClientService(client: httpClient)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        idpTask.cancel()
    }
}

/// Decisions from the demo's approvals page, through the same service the server uses.
struct ServiceApprovals: DemoApprovals {
    let service: GateService

    func pending() async throws -> [DemoPendingRequest] {
        var result: [DemoPendingRequest] = []
        for request in try await service.store.approvalRequests(states: [.pending]) {
            let holds = try await service.store.holds(approvalRequestID: request.id)
            result.append(
                DemoPendingRequest(
                    id: request.id, clientName: service.policy.displayName(of: request.clientID),
                    scopes: request.scopes.tokens, justifications: holds.compactMap(\.justification)))
        }
        return result
    }

    func approve(_ id: String, once: Bool) async throws {
        try await service.approve(id, actor: "demo:approvals-page", once: once)
    }

    func deny(_ id: String) async throws {
        try await service.deny(id, actor: "demo:approvals-page", reason: "denied on the demo approvals page")
    }
}

enum DemoConfiguration {
    static let slackTeam = "T0DEMO"
    static let teamsApp = "5c0a7e3d-6f1b-4d2e-9a8c-0b1d2e3f4a5b"
    static let teamsTenant = "d3e2f1a0-b9c8-4d7e-8f6a-5b4c3d2e1f00"
    static let teamsAlice = "a11ce000-0000-4000-8000-000000000001"
    static let teamsBob = "b0b00000-0000-4000-8000-000000000002"
    static let teamsMallory = "ba110000-0000-4000-8000-000000000003"

    static func yaml(idpPort: Int, gatePort: Int, adminPort: Int, appURL: String, slackURL: String, teamsURL: String) -> String {
        """
        # Written by `scopegate demo`.
        public_url: http://127.0.0.1:\(gatePort)
        listen:
          public: 127.0.0.1:\(gatePort)
          admin: 127.0.0.1:\(adminPort)
        upstream:
          url: http://127.0.0.1:\(idpPort)
        store:
          path: scopegate.sqlite
        approvals:
          timeout: 10m
        scopes:
          - pattern: openid
            auto: approve
            tier: low
            description: Know who you are
          - pattern: profile
            auto: approve
            tier: low
            description: See your name and picture
          - pattern: "*:read"
            auto: ask
            tier: elevated
            description: Read your organisation's data
          - pattern: "*:write"
            auto: ask
            tier: critical
            description: Change your organisation's data
          - pattern: "admin:*"
            auto: deny
            tier: critical
            description: Administer the organisation
        clients:
          - id: demo-app
            name: Demo App
            owner: the ScopeGate demo
            redirect_uris:
              - \(appURL)/callback
        audit:
          keys: audit-keys
          checkpoint_every: 20
          checkpoint_interval: 1m
        slack:
          team_id: \(slackTeam)
          bot_token_file: slack-bot-token
          signing_secret_file: slack-signing-secret
          api_url: \(slackURL)/api
        teams:
          app_id: \(teamsApp)
          app_password_file: teams-app-password
          tenant_id: \(teamsTenant)
          service_url: \(teamsURL)/teams/
          authority: \(teamsURL)
          openid_metadata: \(teamsURL)/v1/.well-known/openidconfiguration
        routes:
          - name: critical
            match:
              tiers: [critical]
            channel: C0SECURITY
            approvers:
              groups: [S0SECURITY]
            teams:
              channel: "19:security@thread.tacv2"
              approvers:
                users: [\(teamsBob)]
          - name: everyone
            channel: C0APPROVALS
            approvers:
              users: [U0ALICE]
            teams:
              channel: "19:approvals@thread.tacv2"
              approvers:
                users: [\(teamsAlice)]
        default_route: everyone
        """
    }
}
