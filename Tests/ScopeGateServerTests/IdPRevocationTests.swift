import AsyncHTTPClient
import Foundation
import Logging
import ScopeGateAudit
import ScopeGateCore
import ScopeGateStore
import Synchronization
import Testing

@testable import ScopeGateServer

/// A revoked grant also revokes the client's tokens at the IdP (Keycloak's admin API, Okta's
/// management API), read from the audit log: nothing is lost to an outage or a restart, a refusal
/// for good is recorded, and every outcome is in the audit log.
@Suite struct IdPRevocationTests {
    final class Clock: Sendable {
        let current = Mutex(Date(timeIntervalSince1970: 1_900_000_000))
        func now() -> Date { current.withLock { $0 } }
        func advance(_ seconds: Double) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
    }

    static func store() throws -> SQLiteGateStore {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sg-\(UUID().uuidString)/gate.sqlite").path
        return try SQLiteGateStore(path: path, audit: AuditSigner(key: .generate(.es256), issuer: "http://127.0.0.1"))
    }

    /// Approves `scopes` for `client` (standing grants) through the store, as a decision would.
    static func grant(_ store: SQLiteGateStore, _ client: String, _ scopes: [String], at now: Date) async throws {
        let draft = HoldDraft(
            clientID: client, binderHash: UUID().uuidString, method: .get, encodedParameters: "client_id=\(client)",
            requestedScopes: ScopeSet(scopes), unapproved: ScopeSet(scopes), alreadyGranted: ScopeSet([String]()))
        let opened = try await store.openHold(draft, at: now, expiresAt: now.addingTimeInterval(600))
        _ = try await store.decide(
            opened.request.id, Decision(outcome: .approved, actor: "cli:alice", at: now),
            grants: scopes.map {
                Grant(clientID: client, scope: $0, approvedBy: "cli:alice", grantedAt: now, expiresAt: nil, approvalRequestID: opened.request.id)
            })
    }

    static func settings(_ kind: ScopeGateConfiguration.IdPRevocationSettings.Kind, _ fake: FakeIdPAdmin, appIDs: [String: String] = [:])
        -> ScopeGateConfiguration.IdPRevocationSettings
    {
        .init(kind: kind, baseURL: URL(string: fake.url)!, onExpiry: false, appIDs: appIDs)
    }

    static let keycloak = ScopeGateConfiguration.IdPRevocationSettings.Kind.keycloak(
        realm: FakeIdPAdmin.realm, adminRealm: FakeIdPAdmin.realm, clientID: FakeIdPAdmin.adminClientID, clientSecret: FakeIdPAdmin.adminSecret)

    /// Runs `body` with a revocation service for `settings` over `store`, and an HTTP client.
    static func with(
        _ store: SQLiteGateStore, _ settings: ScopeGateConfiguration.IdPRevocationSettings, clock: Clock,
        _ body: (IdPRevocationService) async throws -> Void
    ) async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let service = IdPRevocationService(
            store: store, revoker: ScopeGateApplication.revoker(settings, client: client, now: { clock.now() }), settings: settings,
            logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, now: { clock.now() })
        do {
            try await body(service)
        } catch {
            try await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    static func events(_ store: SQLiteGateStore, _ type: String) async throws -> [[String: Any]] {
        try await store.auditEntries(event: type).compactMap { ChatNotices.payload(of: $0.jws) }
    }

    @Test func aRevokedGrantSetsTheClientsNotBeforeAtKeycloakAndIsAudited() async throws {
        let store = try Self.store()
        let clock = Clock()
        try await FakeIdPAdmin.with { fake in
            try await Self.with(store, Self.settings(Self.keycloak, fake), clock: clock) { service in
                try await Self.grant(store, "crm", ["contacts:write", "contacts:read"], at: clock.now())
                await service.pass()
                #expect(fake.calls.isEmpty, "granting is not revoking")

                #expect(try await store.revokeGrant(clientID: "crm", scope: "contacts:write", actor: "admin:ops", at: clock.now()))
                clock.advance(1)
                await service.pass()
                #expect(fake.notBefore == ["6f1d3c2a-0000-4000-8000-000000000001": 1_900_000_001])
                let put = try #require(fake.calls.last)
                #expect(put.method == "PUT" && put.path == "/admin/realms/acme/clients/6f1d3c2a-0000-4000-8000-000000000001")
                #expect(put.authorization == "Bearer admin-token-1")
                let recorded = try await Self.events(store, "idp.tokens_revoked")
                #expect(recorded.count == 1)
                let data = try #require(recorded.first?["data"] as? [String: Any])
                #expect(recorded.first?["client_id"] as? String == "crm")
                #expect(data["idp"] as? String == "keycloak" && data["scopes"] as? [String] == ["contacts:write"])
                #expect(data["cause"] as? String == "grant.revoked")

                // A second revocation reuses the admin token and the client's internal id.
                #expect(try await store.revokeGrant(clientID: "crm", scope: "contacts:read", actor: "admin:ops", at: clock.now()))
                clock.advance(5)
                await service.pass()
                #expect(fake.notBefore.values.first == 1_900_000_006)
                #expect(fake.issuedTokens == 1)
                #expect(fake.calls.filter { $0.method == "GET" }.count == 1)
                #expect(try await Self.events(store, "idp.tokens_revoked").count == 2)
                await service.pass()
                #expect(fake.calls.filter { $0.method == "PUT" }.count == 2, "nothing is revoked twice")
            }
        }
    }

    @Test func anIdPThatIsDownOrRefusesScopeGateIsTriedAgainAndARestartLosesNothing() async throws {
        let store = try Self.store()
        let clock = Clock()
        try await FakeIdPAdmin.with { fake in
            let settings = Self.settings(Self.keycloak, fake)
            try await Self.with(store, settings, clock: clock) { service in
                try await Self.grant(store, "crm", ["contacts:write"], at: clock.now())
                await service.pass()
                fake.fail("/admin/realms/acme/clients/", with: [.status(503), .status(403)])
                #expect(try await store.revokeGrant(clientID: "crm", scope: "contacts:write", actor: "admin:ops", at: clock.now()))
                await service.pass()
                #expect(fake.notBefore.isEmpty)
                await service.pass()
                #expect(fake.calls.filter { $0.method == "PUT" }.count == 1, "it waits before trying again")
                clock.advance(6)
                await service.pass()
                #expect(fake.calls.filter { $0.method == "PUT" }.count == 2)
                #expect(fake.notBefore.isEmpty, "403: the service account may not manage clients yet")
                #expect(try await Self.events(store, "idp.tokens_revoked").isEmpty)
                #expect(try await Self.events(store, "idp.revocation_failed").isEmpty, "a refusal an operator can fix is not the end")
            }
            // ScopeGate restarts while the revocation is still owed.
            try await Self.with(store, settings, clock: clock) { service in
                await service.pass()
                #expect(fake.notBefore.count == 1)
                let revoked = try await Self.events(store, "idp.tokens_revoked")
                #expect(revoked.count == 1)
            }
            try await Self.with(store, settings, clock: clock) { service in
                await service.pass()
                #expect(fake.calls.filter { $0.method == "PUT" }.count == 3, "a restart after the revocation does not repeat it")
            }
        }
    }

    @Test func aClientTheIdPDoesNotKnowIsRecordedAsFailedAndTheNextStillGoes() async throws {
        let store = try Self.store()
        let clock = Clock()
        try await FakeIdPAdmin.with { fake in
            try await Self.with(store, Self.settings(Self.keycloak, fake), clock: clock) { service in
                try await Self.grant(store, "ghost", ["a:read"], at: clock.now())
                try await Self.grant(store, "crm", ["a:read"], at: clock.now())
                await service.pass()
                _ = try await store.revokeGrant(clientID: "ghost", scope: "a:read", actor: "admin:ops", at: clock.now())
                _ = try await store.revokeGrant(clientID: "crm", scope: "a:read", actor: "admin:ops", at: clock.now())
                await service.pass()
                let failed = try await Self.events(store, "idp.revocation_failed")
                #expect(failed.count == 1)
                #expect(failed.first?["client_id"] as? String == "ghost")
                #expect((failed.first?["data"] as? [String: Any])?["error"] as? String == "client_not_found")
                #expect(fake.notBefore.count == 1)
                #expect(try await Self.events(store, "idp.tokens_revoked").map { $0["client_id"] as? String } == ["crm"])
            }
        }
    }

    @Test func oktaRevokesTheAppsTokensByItsAppIDAndWaitsOutItsRateLimit() async throws {
        let store = try Self.store()
        let clock = Clock()
        try await FakeIdPAdmin.with { fake in
            let settings = Self.settings(.okta(apiToken: FakeIdPAdmin.oktaToken), fake, appIDs: ["crm": "0oacrm"])
            try await Self.with(store, settings, clock: clock) { service in
                try await Self.grant(store, "crm", ["a:read"], at: clock.now())
                try await Self.grant(store, "unknown-app", ["a:read"], at: clock.now())
                await service.pass()
                fake.fail("/api/v1/apps/", with: [.rateLimited(resetAt: Int64(clock.now().timeIntervalSince1970) + 30)])
                _ = try await store.revokeGrant(clientID: "crm", scope: "a:read", actor: "admin:ops", at: clock.now())
                await service.pass()
                #expect(fake.oktaRevoked.isEmpty)
                clock.advance(10)
                await service.pass()
                #expect(fake.calls.count == 1, "Okta said when calls may resume")
                clock.advance(3600)
                await service.pass()
                #expect(fake.oktaRevoked == ["0oacrm"])
                #expect(fake.calls.last?.authorization == "SSWS \(FakeIdPAdmin.oktaToken)")
                #expect(fake.calls.last?.method == "DELETE" && fake.calls.last?.path == "/api/v1/apps/0oacrm/tokens")

                _ = try await store.revokeGrant(clientID: "unknown-app", scope: "a:read", actor: "admin:ops", at: clock.now())
                await service.pass()
                let failed = try await Self.events(store, "idp.revocation_failed")
                #expect((failed.first?["data"] as? [String: Any])?["error"] as? String == "app_not_found")
                #expect((failed.first?["data"] as? [String: Any])?["idp"] as? String == "okta")
            }
        }
    }

    @Test func lapsedGrantsRevokeOnlyWhenConfiguredAndOneClientsRunIsOneCall() throws {
        let rows = [
            try ChatNoticesTests.row(1, "grant.revoked", client: "crm", ["scope": "a:write", "actor": "admin:ops"]),
            try ChatNoticesTests.row(2, "grant.revoked", client: "crm", ["scope": "b:write", "actor": "admin:ops"]),
            try ChatNoticesTests.row(3, "grant.expired", client: "crm", ["scope": "c:read"]),
            try ChatNoticesTests.row(4, "grant.expired", client: "ci", ["scope": "deploy"]),
            try ChatNoticesTests.row(5, "decision", client: "ci", ["outcome": "approved"]),
            try ChatNoticesTests.row(6, "grant.revoked", client: "crm", ["scope": "a:read", "actor": "admin:ops"]),
        ]
        #expect(
            IdPRevocationService.revocations(from: rows, onExpiry: false) == [
                .init(clientID: "crm", scopes: ["a:write", "b:write", "a:read"], cause: "grant.revoked", through: 6)
            ])
        #expect(
            IdPRevocationService.revocations(from: rows, onExpiry: true) == [
                .init(clientID: "crm", scopes: ["a:write", "b:write", "c:read"], cause: "grant.revoked", through: 3),
                .init(clientID: "ci", scopes: ["deploy"], cause: "grant.expired", through: 4),
                .init(clientID: "crm", scopes: ["a:read"], cause: "grant.revoked", through: 6),
            ])
    }

    @Test func theConfigurationNamesWhatIsMissing() throws {
        func check(_ extra: String, environment: [String: String] = ["KC_SECRET": "x"]) throws -> ScopeGateConfiguration {
            let keys = FileManager.default.temporaryDirectory.appendingPathComponent("sg-keys-\(UUID().uuidString)")
            try AuditKeyring(directory: keys).generate(.es256)
            let yaml = """
                public_url: https://login.example
                upstream:
                  url: http://127.0.0.1:9000
                store:
                  path: /tmp/x.sqlite
                audit:
                  keys: \(keys.path)
                clients:
                  - id: crm
                    idp_app_id: 0oacrm
                """ + "\n" + extra
            return try ScopeGateConfiguration.parse(yaml: yaml, baseDirectory: URL(fileURLWithPath: "/tmp"), environment: environment)
        }
        func message(_ extra: String) -> String? {
            do {
                _ = try check(extra)
                return nil
            } catch {
                return (error as? GateError)?.message
            }
        }
        let configured = try check(
            """
            idp_revocation:
              kind: keycloak
              realm: acme
              client_id: scopegate-revocation
              client_secret_env: KC_SECRET
            """)
        let settings = try #require(configured.idpRevocation)
        #expect(settings.baseURL.absoluteString == "http://127.0.0.1:9000", "the upstream's URL unless another is named")
        #expect(settings.appIDs == ["crm": "0oacrm"])
        guard case .keycloak(let realm, let adminRealm, _, let secret) = settings.kind else {
            Issue.record("kind")
            return
        }
        #expect(realm == "acme" && adminRealm == "acme" && secret == "x")
        #expect(message("idp_revocation:\n  kind: keycloak\n  client_id: a\n  client_secret_env: KC_SECRET")?.hasPrefix("idp_revocation.realm is required") == true)
        #expect(message("idp_revocation:\n  kind: keycloak\n  realm: acme\n  client_id: a")?.hasPrefix("idp_revocation.client_secret_env or") == true)
        #expect(message("idp_revocation:\n  kind: okta\n  api_token_env: KC_SECRET")?.hasPrefix("idp_revocation.url is required") == true)
        #expect(message("idp_revocation:\n  kind: entra")?.hasPrefix("idp_revocation.kind must be keycloak or okta") == true)
        let withoutAudit = """
            public_url: https://login.example
            upstream:
              url: http://127.0.0.1:9000
            store:
              path: /tmp/x.sqlite
            idp_revocation:
              kind: okta
              url: https://acme.okta.com
              api_token_env: T
            """
        #expect {
            try ScopeGateConfiguration.parse(yaml: withoutAudit, baseDirectory: URL(fileURLWithPath: "/tmp"), environment: ["T": "t"])
        } throws: { error in
            (error as? GateError)?.message.hasPrefix("idp_revocation needs an audit section") == true
        }
    }
}
