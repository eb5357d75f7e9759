import Foundation
import ScopeGateAudit
import ScopeGateCore
import ScopeGateStore
import Synchronization
import Testing

@testable import ScopeGateServer

/// A reload (SIGHUP) puts a new policy in force at once, audited with its digest; an invalid file, or
/// one that changes what only a restart applies, is refused and the policy in force stays.
@Suite struct PolicyReloadTests {
    /// The harness's configuration with `rules` as the scope rules.
    static func yaml(_ places: GateHarness.ConfigPlaces, rules: String, extra: String = "") -> String {
        """
        public_url: http://127.0.0.1:\(places.publicPort)
        listen:
          public: 127.0.0.1:\(places.publicPort)
          admin: 127.0.0.1:\(places.adminPort)
        upstream:
          url: \(places.upstreamURL)
          host_header: public
        store:
          path: \(places.storePath)
        admin:
          token_env: SG_TEST_ADMIN_TOKEN
        scopes:
        \(rules)
        clients:
          - id: app
            name: App
            redirect_uris: ["https://app.example/cb"]
        \(extra)
        """
    }

    static let asking = """
          - {pattern: openid, auto: approve, tier: low}
          - {pattern: "*:read", auto: ask, tier: elevated}
        """
    static let approving = """
          - {pattern: openid, auto: approve, tier: low}
          - {pattern: "orders:read", auto: approve, tier: low}
          - {pattern: "*:read", auto: ask, tier: elevated}
        """

    static func parse(_ text: String) -> Result<ScopeGateConfiguration, GateError> {
        do {
            return .success(
                try ScopeGateConfiguration.parse(
                    yaml: text, baseDirectory: URL(fileURLWithPath: "/"), environment: ["SG_TEST_ADMIN_TOKEN": GateHarness.adminToken]))
        } catch {
            return .failure(error)
        }
    }

    static let authorize = "/o/authorize/?response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=s&scope=openid%20orders:read"

    @Test func aReloadChangesWhatIsHeldAtOnceAndIsAudited() async throws {
        let signer = AuditSigner(key: .generate(.es256), issuer: "http://127.0.0.1")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sg-\(UUID().uuidString)/gate.sqlite").path
        let store = try SQLiteGateStore(path: path, audit: signer)
        let places = Mutex<GateHarness.ConfigPlaces?>(nil)
        try await GateHarness.with(
            store: store, auditSigner: signer,
            configuration: { given in
                places.withLock { $0 = given }
                return Self.yaml(given, rules: Self.asking)
            }
        ) { h in
            let given = try #require(places.withLock { $0 })
            #expect(try await h.send(.GET, Self.authorize).status == 303, "held: sent to the waiting page")
            #expect(h.upstream.received(at: GateHarness.authorizePath).isEmpty)

            let before = h.gate.live.generation.digest
            let outcome = await h.gate.reloadPolicy(Self.parse(Self.yaml(given, rules: Self.approving)))
            guard case .applied(let digest) = outcome else {
                Issue.record("expected the policy to be applied, got \(outcome)")
                return
            }
            #expect(digest != before && h.gate.live.generation.digest == digest)
            #expect(try await h.send(.GET, Self.authorize).status == 200, "now approved by policy: the IdP answers")
            #expect(h.upstream.received(at: GateHarness.authorizePath).count == 1)

            let reloaded = try await store.auditEntries(event: "config.reloaded").compactMap { ChatNotices.payload(of: $0.jws) }
            let data = try #require(reloaded.first?["data"] as? [String: Any])
            #expect(data["policy_sha256"] as? String == digest && data["previous_policy_sha256"] as? String == before)
            #expect(await h.gate.reloadPolicy(Self.parse(Self.yaml(given, rules: Self.approving))) == .unchanged)

            // An invalid file: refused, recorded, and the policy in force stays.
            let invalid = await h.gate.reloadPolicy(Self.parse(Self.yaml(given, rules: "      - {pattern: openid, auto: maybe}")))
            guard case .refused(let reason) = invalid else {
                Issue.record("expected a refusal, got \(invalid)")
                return
            }
            #expect(reason.contains("scopes[0].auto"))
            #expect(h.gate.live.generation.digest == digest)
            #expect(try await store.auditEntries(event: "config.reload_refused").count == 1)

            // A change that only a restart applies: refused as a whole, even with a new policy in it.
            let moved = await h.gate.reloadPolicy(
                Self.parse(Self.yaml(given, rules: Self.asking, extra: "approvals:\n  new_holds_per_minute: {total: 5}")))
            guard case .refused(let restart) = moved else {
                Issue.record("expected a refusal, got \(moved)")
                return
            }
            #expect(restart.contains("take a restart"))
            #expect(try await h.send(.GET, Self.authorize).status == 200, "the reloaded policy still decides")
        }
    }

    @Test func whatARestartAppliesIsToldApartFromThePolicy() throws {
        let places = GateHarness.ConfigPlaces(upstreamURL: "http://127.0.0.1:9", publicPort: 1, adminPort: 2, storePath: "/tmp/x.sqlite")
        let base = try Self.parse(Self.yaml(places, rules: Self.asking)).get()
        let policy = try Self.parse(
            Self.yaml(places, rules: Self.approving, extra: "approvals:\n  timeout: 5m\nautomation:\n  - {name: r, decide: deny, tiers: [elevated]}")
        ).get()
        #expect(policy.restartSignature == base.restartSignature, "rules, automation and the approval timeout are the policy")
        var other = places
        other.upstreamURL = "http://127.0.0.1:10"
        #expect(try Self.parse(Self.yaml(other, rules: Self.asking)).get().restartSignature != base.restartSignature)
        let appID = try Self.parse(Self.yaml(places, rules: Self.asking).replacingOccurrences(of: "    name: App", with: "    name: App\n    idp_app_id: 0oa1")).get()
        #expect(appID.restartSignature != base.restartSignature, "an app's id at the IdP is read once, at start")
    }
}
