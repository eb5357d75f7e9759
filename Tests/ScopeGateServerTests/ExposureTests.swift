import AsyncHTTPClient
import Foundation
import ScopeGateCore
import Testing

@testable import ScopeGateServer

/// Which doors of the IdP are open at all: an allowlist of path prefixes, and the permission-carrying
/// endpoints ScopeGate does not gate yet, refused (or ScopeGate does not start).
@Suite(.serialized) struct ExposureTests {
    static let device = #","device_authorization_endpoint":"ISSUER/o/device/","registration_endpoint":"ISSUER/o/register/""#

    @Test func anAdvertisedEndpointThatIsNotGatedStopsTheStart() async throws {
        await #expect {
            try await GateHarness.with(discoveryExtra: Self.device) { _ in }
        } throws: { error in
            (error as? GateError)?.message.contains("device_authorization_endpoint") == true
        }
    }

    @Test func blockedEndpointsAreRefusedInEverySpelling() async throws {
        try await GateHarness.with(discoveryExtra: Self.device, upstreamExtra: "\n  block_unhandled_endpoints: true") { h in
            let form = [("Content-Type", "application/x-www-form-urlencoded")]
            let device = try await h.send(.POST, "/o/device/", headers: form, body: "client_id=app&scope=orders%3Aread")
            #expect(device.status == 403)
            #expect(device.body.contains("access_denied"))
            #expect(try await h.send(.POST, "/o/register/", headers: [("Content-Type", "application/json")], body: "{}").status == 403)
            #expect(try await h.send(.POST, "/o/Device/", headers: form, body: "client_id=app").status == 400)
            #expect(try await h.send(.POST, "/o/device", headers: form, body: "client_id=app").status == 400)
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
