import AsyncHTTPClient
import Foundation
import ScopeGateCore
import Testing

@testable import ScopeGateServer

/// Which doors of the IdP are open at all: an allowlist of path prefixes, and the permission-carrying
/// endpoints ScopeGate does not gate yet, refused (or ScopeGate does not start).
@Suite(.serialized) struct ExposureTests {
    static let ungated = #","backchannel_authentication_endpoint":"ISSUER/o/bc-authorize/","registration_endpoint":"ISSUER/o/register/""#

    @Test func anAdvertisedEndpointThatIsNotGatedStopsTheStart() async throws {
        await #expect {
            try await GateHarness.with(discoveryExtra: Self.ungated) { _ in }
        } throws: { error in
            (error as? GateError)?.message.contains("backchannel_authentication_endpoint, registration_endpoint") == true
        }
        // An mTLS alias of a gated endpoint at another path is a second door to it.
        await #expect {
            try await GateHarness.with(discoveryExtra: #","mtls_endpoint_aliases":{"token_endpoint":"ISSUER/mtls/token/"}"#) { _ in }
        } throws: { error in
            (error as? GateError)?.message.contains("mtls_endpoint_aliases.token_endpoint") == true
        }
    }

    @Test func blockedEndpointsAreRefusedInEverySpelling() async throws {
        try await GateHarness.with(discoveryExtra: Self.ungated, upstreamExtra: "\n  block_unhandled_endpoints: true") { h in
            let form = [("Content-Type", "application/x-www-form-urlencoded")]
            let ciba = try await h.send(.POST, "/o/bc-authorize/", headers: form, body: "client_id=app&scope=orders%3Aread")
            #expect(ciba.status == 403)
            #expect(ciba.body.contains("access_denied"))
            #expect(try await h.send(.POST, "/o/register/", headers: [("Content-Type", "application/json")], body: "{}").status == 403)
            #expect(try await h.send(.POST, "/o/Register/", headers: form, body: "client_id=app").status == 400)
            #expect(try await h.send(.POST, "/o/bc-authorize", headers: form, body: "client_id=app").status == 400)
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test func onlyExposedPathsReachTheIdP() async throws {
        let expose = "\n  expose: [\"/realms/\", \"/.well-known/\"]"
        try await GateHarness.with(upstreamExtra: expose) { h in
            #expect(try await h.send(.GET, "/realms/acme/account").status == 200)
            for path in ["/admin", "/realms/../admin", "/realms/%2e%2e/admin", "/realms", "/REALMS/acme", "/realmsx/acme"] {
                let reply = try await h.rawGet(path)
                #expect(reply.status == 404, "\(path) answered \(reply.status)")
            }
            // ScopeGate's own and gated endpoints stay reachable.
            let browser = Browser(h)
            _ = try await browser.hold(scope: "orders:read")
            #expect(h.upstream.received.map(\.path) == ["/realms/acme/account"])
        }
    }
}
