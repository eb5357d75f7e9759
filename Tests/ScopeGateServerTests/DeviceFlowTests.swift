import AsyncHTTPClient
import Foundation
import Hummingbird
import ScopeGateCore
import Testing

@testable import ScopeGateServer

/// The device authorization grant (RFC 8628) through ScopeGate: an unapproved device request never
/// reaches the IdP; the device's polling is answered by ScopeGate until approvers decide; after an
/// approval the request is released and the flow finishes at the IdP.
@Suite(.serialized) struct DeviceFlowTests {
    static let discovery = #","device_authorization_endpoint":"ISSUER/o/device/""#
    static let grant = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"

    func post(_ h: GateHarness, _ path: String, _ body: String) async throws -> GateHarness.Reply {
        try await h.send(.POST, path, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: body)
    }

    func json(_ reply: GateHarness.Reply) -> [String: Any] {
        ((try? JSONSerialization.jsonObject(with: Data(reply.body.utf8))) as? [String: Any]) ?? [:]
    }

    func poll(_ h: GateHarness, _ code: String) async throws -> GateHarness.Reply {
        try await post(h, "/o/token/", "grant_type=\(Self.grant)&device_code=\(code)&client_id=app")
    }

    /// The IdP: a device flow at `/o/device/`, and tokens for `orders:read` at `/o/token/`.
    func idp(_ h: GateHarness) {
        let issuer = h.publicURL
        h.upstream.behaviour.withLock {
            $0 = { request, _ in
                let body: String
                if request.uri.path == "/o/device/" {
                    body = #"{"device_code":"idp-device-code","user_code":"WDJB-MJHT","verification_uri":"\#(issuer)/o/device/verify","verification_uri_complete":"\#(issuer)/o/device/verify?code=WDJB-MJHT","expires_in":600,"interval":5}"#
                } else {
                    body = #"{"access_token":"device-token","token_type":"Bearer","scope":"orders:read"}"#
                }
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
            }
        }
    }

    @Test func aHeldDeviceWaitsForApprovalThenFinishesAtTheIdP() async throws {
        try await GateHarness.with(discoveryExtra: Self.discovery) { h in
            idp(h)
            let started = try await post(h, "/o/device/", "client_id=app&scope=orders%3Aread")
            #expect(started.status == 200)
            #expect(started.headers.first(name: "Cache-Control") == "no-store")
            let answer = json(started)
            let code = try #require(answer["device_code"] as? String)
            let userCode = try #require(answer["user_code"] as? String)
            #expect(userCode.count == 9 && userCode.allSatisfy { "BCDFGHJKLMNPQRSTVWXZ-".contains($0) })
            #expect(code.hasPrefix(userCode.filter { $0 != "-" } + ".") && code.count == 8 + 1 + 32, "the user code and 128 random bits")
            #expect(answer["verification_uri"] as? String == h.publicURL + "/_scopegate/device")
            #expect(answer["verification_uri_complete"] as? String == h.publicURL + "/_scopegate/device?user_code=" + userCode)
            #expect(answer["interval"] as? Int == 5)
            #expect(h.upstream.received.isEmpty, "the IdP sees nothing while the request is held")

            // The verification page shows the app and what it asks for.
            let page = try await h.send(.GET, "/_scopegate/device?user_code=" + userCode.lowercased())
            #expect(page.status == 200)
            #expect(page.body.contains("Test &lt;App&gt;") && page.body.contains("orders:read"))
            #expect(page.body.contains("Waiting for the organisation"))
            #expect(page.headers.first(name: "Content-Security-Policy")?.contains("frame-ancestors 'none'") == true)

            // Polling: pending once the interval has passed, slow_down when sooner.
            try await Task.sleep(for: .milliseconds(5100))
            let pending = try await poll(h, code)
            #expect(pending.status == 400 && json(pending)["error"] as? String == "authorization_pending")
            let tooSoon = try await poll(h, code)
            #expect(json(tooSoon)["error"] as? String == "slow_down")
            #expect(h.upstream.received.isEmpty)

            let request = try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first)
            #expect(request.scopes.tokens == ["orders:read"])
            // The device code is a bearer secret: the store keeps only a digest of it.
            let hold = try #require(try await h.gate.service.store.holds(approvalRequestID: request.id).first)
            #expect(hold.id != code && !hold.binderHash.contains(code.split(separator: ".")[1]))
            try await h.gate.service.approve(request.id, actor: "test", once: false)

            // The next poll releases the held request to the IdP's device endpoint.
            let released = try await poll(h, code)
            #expect(json(released)["error"] as? String == "authorization_pending")
            let forwarded = try #require(h.upstream.received(at: "/o/device/").first)
            #expect(String(buffer: forwarded.body) == "client_id=app&scope=orders%3Aread")
            let finish = try await h.send(.GET, "/_scopegate/device?user_code=" + userCode)
            #expect(finish.body.contains("WDJB-MJHT"), "the page shows the IdP's own code")
            #expect(finish.body.contains(h.publicURL + "/o/device/verify?code=WDJB-MJHT"))

            // Further polls go to the IdP with its device code in place of ScopeGate's.
            let token = try await poll(h, code)
            #expect(token.status == 200)
            #expect(json(token)["access_token"] as? String == "device-token")
            let redeemed = try #require(h.upstream.received(at: "/o/token/").last)
            #expect(String(buffer: redeemed.body) == "grant_type=\(Self.grant)&device_code=idp-device-code&client_id=app")
        }
    }

    @Test func aDeniedOrExpiredDeviceIsToldSo() async throws {
        try await GateHarness.with(discoveryExtra: Self.discovery) { h in
            idp(h)
            let first = json(try await post(h, "/o/device/", "client_id=app&scope=orders%3Aread"))
            let denied = try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first)
            try await h.gate.service.deny(denied.id, actor: "test", reason: "no")
            let answer = try await poll(h, try #require(first["device_code"] as? String))
            #expect(json(answer)["error"] as? String == "access_denied")
            let page = try await h.send(.GET, "/_scopegate/device?user_code=" + (first["user_code"] as? String ?? ""))
            #expect(page.body.contains("denied"))

            let second = json(try await post(h, "/o/device/", "client_id=app&scope=orders%3Awrite"))
            let open = try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first)
            _ = try await h.gate.service.store.decide(
                open.id, Decision(outcome: .expired, actor: "policy:expiry", at: open.expiresAt.addingTimeInterval(1)), grants: [])
            let expired = try await poll(h, try #require(second["device_code"] as? String))
            #expect(json(expired)["error"] as? String == "expired_token")
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test func aGrantedDeviceRequestGoesStraightToTheIdP() async throws {
        try await GateHarness.with(discoveryExtra: Self.discovery) { h in
            idp(h)
            let answer = try await post(h, "/o/device/", "client_id=app&scope=openid")
            #expect(answer.status == 200)
            #expect(json(answer)["device_code"] as? String == "idp-device-code")
            #expect(json(answer)["verification_uri"] as? String == h.publicURL + "/o/device/verify")
            #expect(h.upstream.received(at: "/o/device/").count == 1)
            // Its polls pass to the IdP as they are.
            _ = try await poll(h, "idp-device-code")
            #expect(h.upstream.received(at: "/o/token/").count == 1)
        }
    }

    @Test func aDeviceCodeIsBoundToItsClientAndUserCodesCannotBeGuessedFast() async throws {
        try await GateHarness.with(discoveryExtra: Self.discovery) { h in
            idp(h)
            let started = json(try await post(h, "/o/device/", "client_id=app&scope=orders%3Aread"))
            let code = try #require(started["device_code"] as? String)
            let stolen = try await post(h, "/o/token/", "grant_type=\(Self.grant)&device_code=\(code)&client_id=other")
            #expect(json(stolen)["error"] as? String == "invalid_grant")
            // A guessed secret part matches nothing.
            let guessed = String(code.prefix(9)) + String(repeating: "0", count: 32)
            let refused = try await post(h, "/o/token/", "grant_type=\(Self.grant)&device_code=\(guessed)&client_id=app")
            #expect(json(refused)["error"] as? String == "invalid_grant")
            var statuses: [Int] = []
            for _ in 0..<22 { statuses.append(try await h.send(.GET, "/_scopegate/device?user_code=BCDF-GHJK").status) }
            #expect(statuses.first == 404)
            #expect(statuses.last == 429, "lookups that match nothing are limited per address")
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test func behindATrustedProxyLookupsAreLimitedPerClientNotForEveryone() async throws {
        try await GateHarness.with(discoveryExtra: Self.discovery, upstreamExtra: "\n  trusted_proxies: [\"127.0.0.1\"]") { h in
            func lookup(from forwardedFor: String) async throws -> Int {
                try await h.send(.GET, "/_scopegate/device?user_code=BCDF-GHJK", headers: [("X-Forwarded-For", forwardedFor)]).status
            }
            var statuses: [Int] = []
            for _ in 0..<22 { statuses.append(try await lookup(from: "198.51.100.7")) }
            #expect(statuses.first == 404 && statuses.last == 429)
            // Another client behind the same proxy is not barred by the first one's failures…
            #expect(try await lookup(from: "198.51.100.8") == 404)
            // …and the barred one cannot get out by writing another address in front of the proxy's entry.
            #expect(try await lookup(from: "203.0.113.1, 198.51.100.7") == 429)
            #expect(try await lookup(from: "203.0.113.1, 198.51.100.7, 127.0.0.1") == 429)
        }
    }

    @Test func aFloodOfFailingAddressesBarsNewOnesInsteadOfForgettingTheCounts() {
        let registry = DeviceRegistry()
        let start = ContinuousClock.now
        for _ in 0..<21 { _ = registry.lookupFailed(from: "198.51.100.7", now: start) }
        #expect(registry.lookupsBarred(for: "198.51.100.7", now: start))
        for index in 1..<DeviceRegistry.maximumCountedAddresses {
            _ = registry.lookupFailed(from: "2001:db8::\(String(index, radix: 16))", now: start)
        }
        // The table is full: the barred address stays barred, and a new one cannot start guessing.
        #expect(registry.lookupFailed(from: "2001:db8::ffff:1", now: start))
        #expect(registry.lookupsBarred(for: "198.51.100.7", now: start))
        #expect(registry.lookupsBarred(for: "203.0.113.5", now: start))
        // Once the minute has passed, the counts lapse and lookups are open again.
        let later = start + .seconds(61)
        #expect(!registry.lookupsBarred(for: "203.0.113.5", now: later))
        #expect(!registry.lookupsBarred(for: "198.51.100.7", now: later))
        #expect(!registry.lookupFailed(from: "203.0.113.5", now: later))
    }

    @Test func clientAddressesTrustOnlyWhatTheTrustedProxiesAppended() {
        let trusted: Set<String> = ["10.0.0.1", "10.0.0.2"]
        #expect(UpstreamProxy.clientAddress(peer: "192.0.2.9", forwardedFor: ["198.51.100.7"], trustedProxies: trusted) == "192.0.2.9")
        #expect(UpstreamProxy.clientAddress(peer: "10.0.0.1", forwardedFor: [], trustedProxies: trusted) == "10.0.0.1")
        #expect(
            UpstreamProxy.clientAddress(peer: "10.0.0.1", forwardedFor: ["1.2.3.4, 198.51.100.7", "10.0.0.2"], trustedProxies: trusted)
                == "198.51.100.7")
        #expect(UpstreamProxy.clientAddress(peer: "10.0.0.1", forwardedFor: ["10.0.0.2"], trustedProxies: trusted) == "10.0.0.1")
        #expect(UpstreamProxy.clientAddress(peer: nil, forwardedFor: ["1.2.3.4"], trustedProxies: trusted) == "unknown")
    }

    /// Approve once is one device request: its token may carry what was approved (the IdP's device code
    /// is noted at the release), within the same age limit as a browser's held request.
    @Test func approveOnceCoversThatDevicesTokenWithinTheReleaseWindowOnly() async throws {
        try await GateHarness.with(discoveryExtra: Self.discovery) { h in
            idp(h)
            let started = json(try await post(h, "/o/device/", "client_id=app&scope=orders%3Aread"))
            let code = try #require(started["device_code"] as? String)
            let request = try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first)
            // Approved once five minutes ago; the device polls only now.
            _ = try await h.gate.service.store.decide(
                request.id, Decision(outcome: .approvedOnce, actor: "test", at: Date().addingTimeInterval(-300)), grants: [])
            #expect(json(try await poll(h, code))["error"] as? String == "authorization_pending", "released now")
            let token = try await poll(h, code)
            #expect(token.status == 200 && json(token)["access_token"] as? String == "device-token")
        }
        try await GateHarness.with(discoveryExtra: Self.discovery) { h in
            idp(h)
            let started = json(try await post(h, "/o/device/", "client_id=app&scope=orders%3Aread"))
            let request = try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first)
            // Approved once twenty minutes ago, never polled since: as stale as a browser's would be.
            _ = try await h.gate.service.store.decide(
                request.id, Decision(outcome: .approvedOnce, actor: "test", at: Date().addingTimeInterval(-1200)), grants: [])
            #expect(json(try await poll(h, try #require(started["device_code"] as? String)))["error"] as? String == "expired_token")
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test func anApprovedRequestIsNotReleasedAgainAfterItsWindow() async throws {
        try await GateHarness.with(discoveryExtra: Self.discovery) { h in
            idp(h)
            let started = json(try await post(h, "/o/device/", "client_id=app&scope=orders%3Aread"))
            let request = try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first)
            try await h.gate.service.approve(request.id, actor: "test", once: false)
            // Released long ago (its IdP device flow then lost, as after a restart).
            let hold = try #require(try await h.gate.service.store.holds(approvalRequestID: request.id).first)
            _ = try await h.gate.service.store.markContinued(holdID: hold.id, at: Date().addingTimeInterval(-3600))
            let answer = try await poll(h, try #require(started["device_code"] as? String))
            #expect(json(answer)["error"] as? String == "expired_token")
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test func withoutAKnownDeviceEndpointDeviceCodesAreNotRedeemed() async throws {
        try await GateHarness.with { h in
            let reply = try await poll(h, "some-device-code")
            #expect(json(reply)["error"] as? String == "unsupported_grant_type")
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test func theRegistryGrowsTheIntervalWhenPolledTooSoon() {
        let registry = DeviceRegistry()
        let start = ContinuousClock.now
        #expect(!registry.pollTooSoon("d", interval: 5, now: start))
        #expect(registry.pollTooSoon("d", interval: 5, now: start + .seconds(4)))
        // The interval is now 10 seconds, counted from the last poll.
        #expect(registry.pollTooSoon("d", interval: 5, now: start + .seconds(12)))
        #expect(!registry.pollTooSoon("d", interval: 5, now: start + .seconds(30)))
    }
}
