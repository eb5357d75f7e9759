import Foundation
import ScopeGateAudit
import ScopeGateCore
import Testing

@testable import ScopeGateServer

@Suite struct ConfigurationTests {
    let base = """
        public_url: https://idp.example.com
        upstream:
          url: http://10.0.0.5:8080
        store:
          path: gate.sqlite
        """

    func parse(_ yaml: String, environment: [String: String] = [:]) throws -> ScopeGateConfiguration {
        try ScopeGateConfiguration.parse(yaml: yaml, baseDirectory: URL(fileURLWithPath: "/etc/scopegate"), environment: environment)
    }

    func message(_ yaml: String) -> String {
        do {
            _ = try parse(yaml)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func clientsRegistrationAndAgeAreReadAndRulesOnThemChecked() throws {
        let clients = base + """

            clients:
              - id: crm
                registration: admin
                registered: 2024-03-01
              - id: portal-app
                registration: dynamic
                registered: 2026-11-30T12:00:00Z
            """
        let configuration = try parse(
            clients + """

                automation:
                  - name: established-admin-apps
                    decide: approve
                    tiers: [low]
                    client_registration: [admin]
                    client_min_age: 90d
                  - name: new-apps-no-critical
                    decide: deny
                    tiers: [critical]
                    client_registration: [dynamic, unlisted]
                    client_max_age: 7d
                """)
        let policy = configuration.policy
        #expect(policy.clients["crm"]?.registration == "admin")
        #expect(policy.clients["crm"]?.registeredAt == Date(timeIntervalSince1970: 1_709_251_200))
        #expect(policy.clients["portal-app"]?.registeredAt == Date(timeIntervalSince1970: 1_796_040_000))
        #expect(policy.automation.map(\.registrations) == [["admin"], ["dynamic", "unlisted"]])
        #expect(policy.automation[0].minimumClientAge == .seconds(90 * 86_400) && policy.automation[1].maximumClientAge == .seconds(7 * 86_400))
        #expect(policy.automationLooksAtClients)

        #expect(message(clients + "\nautomation:\n  - name: r\n    decide: approve\n    client_registration: [admn]").contains(
            "automation[0].client_registration[0] names 'admn', which no client's registration is"))
        #expect(message(clients + "\nautomation:\n  - name: r\n    decide: deny\n    client_min_age: 7d\n    client_max_age: 1d").contains(
            "automation[0].client_max_age must be longer than client_min_age"))
        #expect(message(base + "\nclients:\n  - id: a\n    registered: last week").contains("clients[0].registered must be a date"))
        #expect(message(base + "\nclients:\n  - id: a\n    registration: Unlisted").contains("clients[0].registration must be a lower-case label"))
        #expect(message(base + "\nclients:\n  - id: a\n    registration: unlisted").contains("clients[0].registration must be a lower-case label"))
    }

    /// The example deployment (deploy/compose) is a valid configuration for both replicas, on
    /// PostgreSQL, and its load balancer checks the admin listener the configuration opens.
    @Test func theComposeExampleIsValidAndItsHealthChecksMatchIt() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let example = root.appendingPathComponent("deploy/compose")
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("sg-compose-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: example.appendingPathComponent("scopegate.yaml"), to: copy.appendingPathComponent("scopegate.yaml"))
        try AuditKeyring(directory: copy.appendingPathComponent("audit")).generate(.es256)
        let configuration = try ScopeGateConfiguration.load(
            path: copy.appendingPathComponent("scopegate.yaml").path,
            environment: [
                "SCOPEGATE_POSTGRES_URL": "postgres://scopegate:secret@postgres:5432/scopegate?sslmode=disable",
                "SCOPEGATE_ADMIN_TOKEN": String(repeating: "a", count: 32), "SCOPEGATE_METRICS_TOKEN": String(repeating: "m", count: 32),
            ])
        #expect(configuration.postgresURL != nil && configuration.storeDescription == "postgres://postgres:5432/scopegate")
        #expect(configuration.warnings.isEmpty, "\(configuration.warnings)")
        let haproxy = try String(contentsOf: example.appendingPathComponent("haproxy.cfg"), encoding: .utf8)
        #expect(haproxy.contains("option httpchk GET /readyz"))
        #expect(haproxy.contains("check port \(configuration.adminAddress.port)"))
        #expect(haproxy.contains("scopegate-a:\(configuration.publicAddress.port)") && haproxy.contains("scopegate-b:\(configuration.publicAddress.port)"))
        let compose = try String(contentsOf: example.appendingPathComponent("compose.yaml"), encoding: .utf8)
        #expect(compose.contains("SCOPEGATE_POSTGRES_URL:") && compose.contains("./audit:/etc/scopegate/audit:ro"))
    }

    /// Every mistake names its key and the line it is on (or, for a missing key, the line of the section
    /// it belongs in).
    @Test func mistakesNameTheirLine() {
        let yaml = base + """

            scopes:
              - pattern: openid
                auto: approve
              - pattern: "*:read"
                auto: ask
                tier: secret
            """
        #expect(message(yaml).contains("scopes[1].tier names the undefined tier 'secret'"))
        #expect(message(yaml).hasSuffix(", line 11"), "\(message(yaml))")
        #expect(message(base.replacingOccurrences(of: "  url: http://10.0.0.5:8080", with: "  url: ftp://x")).hasSuffix(", line 3"))
        #expect(message(base.replacingOccurrences(of: "  url: http://10.0.0.5:8080", with: "  connect_timeout: 5s")).hasSuffix(", line 2"))
    }

    @Test func aKeyScopeGateDoesNotReadIsRefused() {
        // `expose` misspelt would leave every path of the IdP exposed.
        let misspelt = base.replacingOccurrences(of: "store:", with: "  expos: [\"/realms/\"]\nstore:")
        #expect(message(misspelt).contains("upstream.expos is not a ScopeGate setting"))
        #expect(message(base + "\nscopes:\n  - pattern: x\n    atuo: deny").contains("scopes[0].atuo"))
        #expect(message(base + "\nadmin:").contains("admin is not a ScopeGate setting, or has no value"))
        #expect(message(base + "\nscopes:\n  - pattern: x\n    auto: deny") == "no error")
    }

    @Test func ruleKindsAreCheckedAndNameTheirPermissions() throws {
        let configuration = try parse(base + "\nscopes:\n  - pattern: \"https://api.example/*\"\n    kind: resource\n    auto: approve")
        #expect(configuration.policy.rule(for: "@resource:https://api.example/v1", clientID: "x").auto == .approve)
        #expect(configuration.policy.rule(for: "https://api.example/v1", clientID: "x").auto == .ask, "a scope is not a resource")
        #expect(message(base + "\nscopes:\n  - pattern: x\n    kind: tenant").contains("scopes[0].kind"))
        #expect(message(base + "\nscopes:\n  - pattern: \"@claim:email\"").contains("set kind"))
    }

    @Test func aMinimalConfigurationHasSafeDefaults() throws {
        let configuration = try parse(base)
        #expect(configuration.adminToken == nil)
        #expect(configuration.adminAddress.host == "127.0.0.1")
        #expect(configuration.storePath == "/etc/scopegate/gate.sqlite")
        #expect(configuration.policy.rule(for: "anything", clientID: "x").auto == .ask)
        #expect(configuration.hostHeader == .public)
    }

    @Test(arguments: [
        ("store:\n  path: x\npublic_url: https://a.example", "upstream.url is missing"),
        ("upstream:\n  url: ftp://x\npublic_url: https://a.example\nstore:\n  path: x", "upstream.url must be an http or https URL"),
        ("scopes:\n  - pattern: a\n    auto: maybe", "scopes[0].auto must be approve, deny or ask"),
        ("scopes:\n  - pattern: a\n    tier: secret", "scopes[0].tier names the undefined tier 'secret'"),
        ("scopes:\n  - pattern: \"a b\"", "scopes[0].pattern must be a scope token"),
        ("approvals:\n  timeout: soon", "approvals.timeout must be a positive duration"),
        ("admin:\n  token_env: SG_NOT_SET_ANYWHERE", "admin.token_env names the environment variable SG_NOT_SET_ANYWHERE, which is not set"),
        ("clients:\n  - id: a\n    redirect_uris: [\"/relative\"]", "clients[0].redirect_uris[0] must be an absolute URI"),
    ])
    func mistakesNameTheirKey(_ addition: String, _ expected: String) {
        let yaml = addition.hasPrefix("store:") || addition.hasPrefix("upstream:") ? addition : base + "\n" + addition
        #expect(message(yaml).contains(expected), "got: \(message(yaml))")
    }

    @Test func aShortAdminTokenIsRefused() {
        #expect(throws: GateError.self) {
            try parse(base + "\nadmin:\n  token_env: T", environment: ["T": "short"])
        }
    }

    @Test func theShippedExampleConfigurationIsValid() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("proxy-config/scopegate.yaml")
        // Its audit keys are made by certs/make-dev-audit-key.sh; here, a new pair in a folder of the test's.
        let keys = FileManager.default.temporaryDirectory.appendingPathComponent("sg-\(UUID().uuidString)/audit")
        _ = try AuditKeyring(directory: keys).generate(.es256)
        let yaml = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "keys: ../certs/audit", with: "keys: \(keys.path)")
        let configuration = try ScopeGateConfiguration.parse(
            yaml: yaml, source: url.path, baseDirectory: url.deletingLastPathComponent(),
            environment: ["SCOPEGATE_ADMIN_TOKEN": String(repeating: "t", count: 32)])
        #expect(!configuration.policy.rules.isEmpty)
        #expect(configuration.blockUnhandledEndpoints)
        #expect(configuration.exposedPaths == ["/realms/acme/", "/resources/"])
        #expect(configuration.policy.shadowedDenials() == [])
        #expect(configuration.policy.evaluate(scopes: ScopeSet(["admin:read"]), clientID: "crm-sync", granted: []) == .deny(ScopeSet(["admin:read"])))
    }
}
