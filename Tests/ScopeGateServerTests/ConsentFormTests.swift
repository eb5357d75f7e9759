import Foundation
import NIOCore
import ScopeGateCore
import Testing

@testable import ScopeGateServer

/// IdPs' consent and account-selection forms post back to the authorization endpoint: the query kept,
/// the same parameters again as hidden fields (some empty), and the IdP's own fields. They are
/// authorization requests and are gated as such, never broken. The oracle is what the IdP received.
@Suite(.serialized) struct ConsentFormTests {
    static let path = GateHarness.authorizePath
    static let form = [("Content-Type", "application/x-www-form-urlencoded")]

    /// django-oauth-toolkit's consent form for `query`'s request, as a browser submits it: every
    /// hidden field (`nonce` and `resource` empty, `claims` JSON `null`, when the request had none), the CSRF token
    /// and the Authorize button.
    static func consentBody(scope: String, state: String = "s1") -> String {
        "csrfmiddlewaretoken=Zm9vYmFy&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=\(scope)&nonce="
            + "&client_id=app&state=\(state)&response_type=code&code_challenge=abc&code_challenge_method=S256"
            + "&claims=null&resource=&allow=Authorize"
    }

    static func query(scope: String, state: String = "s1") -> String {
        path + "?" + GateHarness.authorizeQuery(scope: scope, state: state)
    }

    func pendingID(_ h: GateHarness) async throws -> String {
        try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first?.id)
    }

    @Test func aConsentPostForGrantedScopesReachesTheIdPAsTheFormSentIt() async throws {
        try await GateHarness.with { h in
            let body = Self.consentBody(scope: "openid")
            let reply = try await Browser(h).send(.POST, Self.query(scope: "openid"), headers: Self.form, body: body)
            #expect(reply.status == 200)
            let seen = try #require(h.upstream.received(at: Self.path).first)
            #expect(seen.method == .post)
            #expect(seen.target == Self.query(scope: "openid"), "the query is kept")
            #expect(String(buffer: seen.body) == body, "the body is forwarded as the form sent it")
            #expect(seen.headers[.contentType] == "application/x-www-form-urlencoded")
        }
    }

    @Test func aFormDeclaredUTF8IsForwardedAsPlainFormEncoding() async throws {
        try await GateHarness.with { h in
            let reply = try await Browser(h).send(
                .POST, Self.query(scope: "openid"), headers: [("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")],
                body: Self.consentBody(scope: "openid"))
            #expect(reply.status == 200)
            let seen = try #require(h.upstream.received(at: Self.path).first)
            #expect(seen.headers[.contentType] == "application/x-www-form-urlencoded")
        }
    }

    @Test func aConsentPostAfterAnApprovalOnceContinuesThatAuthorizationOnly() async throws {
        try await GateHarness.with { h in
            let browser = Browser(h)
            let page = try await browser.hold(scope: "openid+orders:read")
            try await h.gate.service.approve(try await pendingID(h), actor: "test", once: true)
            let next = try #require(try await browser.send(.GET, page).location)
            #expect(try await browser.send(.GET, next).status == 200)
            // The IdP shows its consent screen; the user clicks Authorize.
            let consent = try await browser.send(
                .POST, Self.query(scope: "openid+orders:read"), headers: Self.form, body: Self.consentBody(scope: "openid+orders%3Aread"))
            #expect(consent.status == 200)
            #expect(h.upstream.received(at: Self.path).count == 2)
            // Another authorization (another state), or more than was approved, waits for approvers again.
            let otherState = try await browser.send(
                .POST, Self.query(scope: "orders:read", state: "s2"), headers: Self.form,
                body: Self.consentBody(scope: "orders%3Aread", state: "s2"))
            #expect(otherState.location?.hasPrefix("/_scopegate/holds/") == true)
            let more = try await browser.send(
                .POST, Self.query(scope: "openid+orders:read"), headers: Self.form,
                body: Self.consentBody(scope: "openid+orders%3Aread+billing%3Aread"))
            #expect(more.location?.hasPrefix("/_scopegate/holds/") == true)
            // Another browser posting the same form is a stranger to the approval.
            let stranger = try await Browser(h).send(
                .POST, Self.query(scope: "openid+orders:read"), headers: Self.form, body: Self.consentBody(scope: "openid+orders%3Aread"))
            #expect(stranger.location?.hasPrefix("/_scopegate/holds/") == true)
            #expect(h.upstream.received(at: Self.path).count == 2)
        }
    }

    @Test func aConsentPostWhoseBodyAsksForMoreIsHeld() async throws {
        try await GateHarness.with { h in
            // The query names only granted scopes; the body adds one nobody approved.
            let reply = try await Browser(h).send(
                .POST, Self.query(scope: "openid"), headers: Self.form, body: Self.consentBody(scope: "openid+orders%3Aread"))
            #expect(reply.location?.hasPrefix("/_scopegate/holds/") == true)
            #expect(h.upstream.received.isEmpty)
            let request = try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first)
            #expect(request.scopes.tokens == ["orders:read"])
        }
    }

    /// Spring Authorization Server's consent form sends one `scope` per ticked box.
    @Test func oneScopePerTickedBoxIsGatedOnAllOfThem() async throws {
        try await GateHarness.with { h in
            let target = Self.path + "?response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb"
            let body = "client_id=app&state=s1&scope=openid&scope=orders%3Aread"
            let held = try await Browser(h).send(.POST, target, headers: Self.form, body: body)
            #expect(held.location?.hasPrefix("/_scopegate/holds/") == true)
            #expect(h.upstream.received.isEmpty)
            try await h.gate.service.approve(try await pendingID(h), actor: "test", once: false)
            let admitted = try await Browser(h).send(.POST, target, headers: Self.form, body: body)
            #expect(admitted.status == 200)
            let seen = try #require(h.upstream.received(at: Self.path).first)
            #expect(seen.target == target)
            #expect(String(buffer: seen.body) == body)
        }
    }

    @Test func aParameterRepeatedWithTheSameValueIsForwardedAsSent() async throws {
        try await GateHarness.with { h in
            let target = Self.query(scope: "openid") + "&client_id=app&state=s1"
            let reply = try await Browser(h).send(.GET, target)
            #expect(reply.status == 200)
            #expect(h.upstream.received(at: Self.path).map(\.target) == [target])
        }
    }
}
