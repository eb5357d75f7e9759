import Foundation
import ScopeGateAudit
import ScopeGateCore
import Testing

@testable import ScopeGateServer

/// The shipped example configuration (`proxy-config/scopegate.yaml`, which fronts a Keycloak realm)
/// against a stock Keycloak realm's discovery document, as Keycloak 24–26 publish it with their defaults:
/// dynamic client registration, CIBA, PAR, the device flow and `mtls_endpoint_aliases` all advertised.
/// Only the addresses are changed (the IdP, the listeners, the store, the audit keys); the public URL,
/// the policy and the upstream settings are the example's own.
@Suite(.serialized) struct KeycloakExampleTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let realm = "/realms/acme"
    static let protocolPath = realm + "/protocol/openid-connect"

    static func discovery() throws -> (path: String, document: String) {
        let fixture = root.appendingPathComponent("Tests/ScopeGateServerTests/Fixtures/keycloak-realm-openid-configuration.json")
        return (realm + "/.well-known/openid-configuration", try String(contentsOf: fixture, encoding: .utf8))
    }

    /// The example, pointed at the harness's upstream, ports, store and a new audit key.
    static func example(_ places: GateHarness.ConfigPlaces, keys: String) throws -> String {
        var yaml = try String(contentsOf: root.appendingPathComponent("proxy-config/scopegate.yaml"), encoding: .utf8)
        let replacements = [
            ("url: http://keycloak.internal:8080", "url: \(places.upstreamURL)"),
            ("public: 0.0.0.0:8080", "public: 127.0.0.1:\(places.publicPort)"),
            ("admin: 127.0.0.1:8081", "admin: 127.0.0.1:\(places.adminPort)"),
            ("path: /var/lib/scopegate/scopegate.sqlite", "path: \(places.storePath)"),
            ("keys: ../certs/audit", "keys: \(keys)"),
        ]
        for (old, new) in replacements {
            guard yaml.contains(old) else { throw HarnessError("the example no longer has '\(old)'") }
            yaml = yaml.replacingOccurrences(of: old, with: new)
        }
        return yaml
    }

    static func withExample(_ body: @Sendable (GateHarness) async throws -> Void) async throws {
        let keys = FileManager.default.temporaryDirectory.appendingPathComponent("sg-\(UUID().uuidString)/audit")
        _ = try AuditKeyring(directory: keys).generate(.es256)
        try await GateHarness.with(
            configuration: { try! example($0, keys: keys.path) }, discovery: try discovery(),
            environment: ["SCOPEGATE_ADMIN_TOKEN": String(repeating: "t", count: 32)], body)
    }

    @Test func theExampleStartsAndGatesEveryEndpointKeycloakAdvertises() async throws {
        try await Self.withExample { h in
            let metadata = h.gate.metadata
            #expect(metadata.authorizationPath == Self.protocolPath + "/auth")
            #expect(metadata.tokenPath == Self.protocolPath + "/token")
            #expect(metadata.pushedAuthorizationPath == Self.protocolPath + "/ext/par/request")
            #expect(metadata.deviceAuthorizationPath == Self.protocolPath + "/auth/device")
            #expect(metadata.revocationPath == Self.protocolPath + "/revoke")
            #expect(
                Set(metadata.blockedPaths.keys) == [Self.realm + "/clients-registrations/openid-connect", Self.protocolPath + "/ext/ciba/auth"])
            #expect(metadata.issParameterSupported)
            let report = metadata.report(configuration: h.gate.configuration)
            #expect(report.contains { $0.hasPrefix("gated") && $0.contains(Self.protocolPath + "/auth ") })
            #expect(report.contains { $0.hasPrefix("refused") && $0.contains("registration_endpoint") })
            #expect(report.contains { $0.hasPrefix("exposed") && $0.contains("/realms/acme/") })
        }
    }

    @Test func throughTheExampleKeycloakIsReachableOnlyWhereItShouldBe() async throws {
        try await Self.withExample { h in
            // The discovery document points at ScopeGate's public URL, as Keycloak's own does.
            let discovery = try await h.send(.GET, Self.realm + "/.well-known/openid-configuration")
            #expect(discovery.status == 200)
            #expect(discovery.body.contains("\"authorization_endpoint\":\"https:\\/\\/login.example.com\\/realms\\/acme\\/protocol\\/openid-connect\\/auth\"")
                || discovery.body.contains("\"authorization_endpoint\":\"https://login.example.com/realms/acme/protocol/openid-connect/auth\""))
            // Dynamic registration and CIBA carry permissions ScopeGate does not gate: refused.
            let registration = try await h.send(
                .POST, Self.realm + "/clients-registrations/openid-connect", headers: [("Content-Type", "application/json")],
                body: #"{"redirect_uris":["https://evil.example/cb"],"scope":"admin:org"}"#)
            #expect(registration.status == 403)
            let ciba = try await h.send(
                .POST, Self.protocolPath + "/ext/ciba/auth", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: "client_id=crm-sync&scope=openid+admin%3Aorg&login_hint=alice")
            #expect(ciba.status == 403)
            // The admin console and other realms are not exposed.
            #expect(try await h.send(.GET, "/admin/master/console/").status == 404)
            #expect(try await h.send(.GET, "/realms/master/protocol/openid-connect/auth?client_id=x").status == 404)
            // An unapproved scope is held at the authorization endpoint; Keycloak's own pages pass.
            let held = try await h.send(
                .GET, Self.protocolPath + "/auth?response_type=code&client_id=crm-sync&redirect_uri=https%3A%2F%2Fcrm-sync.example.net%2Foauth%2Fcallback&scope=openid+orders%3Aread&state=s")
            #expect(held.status == 303)
            #expect(held.location?.hasPrefix("/_scopegate/holds/") == true)
            #expect(try await h.send(.GET, Self.realm + "/login-actions/authenticate?execution=x").status == 200)
            #expect(try await h.send(.GET, "/resources/abc/login/keycloak.v2/css/styles.css").status == 200)
            // The device endpoint sits under the authorization endpoint's path and is gated as itself.
            let device = try await h.send(
                .POST, Self.protocolPath + "/auth/device", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: "client_id=crm-sync&scope=openid+orders%3Aread")
            #expect(device.status == 200)
            #expect(device.body.contains("\"user_code\""))
            #expect(h.upstream.received.map(\.path).sorted() == [Self.realm + "/login-actions/authenticate", "/resources/abc/login/keycloak.v2/css/styles.css"])
        }
    }
}
