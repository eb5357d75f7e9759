import Foundation
import ScopeGateCore
import Testing

@testable import ScopeGateServer

/// Resources, audiences, authorization details, claims and request objects gated end to end: held until
/// approved, named in policy rules of their own kind, and forwarded exactly as the client sent them.
@Suite(.serialized) struct PermissionFlowTests {
    /// A second client whose policy approves one API by rule.
    static let resourceClient = """
          - id: reports
            name: Reports
            redirect_uris: ["https://reports.example/cb"]
            scopes:
              - pattern: "https://public.example/*"
                kind: resource
                auto: approve
              - pattern: salary
                kind: claim
                auto: deny
        """

    func authorize(_ h: GateHarness, client: String = "app", _ extra: String) async throws -> GateHarness.Reply {
        let redirect = client == "app" ? "https%3A%2F%2Fapp.example%2Fcb" : "https%3A%2F%2Freports.example%2Fcb"
        return try await h.send(.GET, "/o/authorize/?response_type=code&client_id=\(client)&redirect_uri=\(redirect)&state=s&scope=openid" + extra)
    }

    @Test func anUnapprovedResourceIsHeldAndAStandingGrantLetsItThrough() async throws {
        try await GateHarness.with { h in
            let held = try await authorize(h, "&resource=https%3A%2F%2Fapi.example%2F")
            #expect(held.status == 303 && held.location?.hasPrefix("/_scopegate/holds/") == true)
            let request = try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first)
            #expect(request.scopes.tokens == ["@resource:https://api.example/"])
            try await h.gate.service.approve(request.id, actor: "test", once: false)
            let passed = try await authorize(h, "&resource=https%3A%2F%2Fapi.example%2F")
            #expect(passed.status == 200)
            let forwarded = try #require(h.upstream.received(at: "/o/authorize/").first)
            #expect(forwarded.query?.contains("resource=https%3A%2F%2Fapi.example%2F") == true)
            // The grant is for that resource only.
            let other = try await authorize(h, "&resource=https%3A%2F%2Fpayroll.example%2F")
            #expect(other.status == 303)
            #expect(h.upstream.received(at: "/o/authorize/").count == 1)
        }
    }

    @Test func rulesOfAKindDecideThatKind() async throws {
        try await GateHarness.with(extraConfig: Self.resourceClient) { h in
            let approved = try await authorize(h, client: "reports", "&resource=https%3A%2F%2Fpublic.example%2Fv1")
            #expect(approved.status == 200, "approved by the client's resource rule")
            let denied = try await authorize(
                h, client: "reports", "&claims=" + FormParameters.encode(#"{"userinfo":{"salary":null}}"#))
            #expect(denied.status == 303 && denied.location?.contains("error=access_denied") == true)
            #expect(h.upstream.received(at: "/o/authorize/").count == 1)
        }
    }

    @Test func anApprovedRequestObjectIsForwardedUntouched() async throws {
        try await GateHarness.with { h in
            let header = Base64URL.encode(Array(#"{"alg":"RS256","kid":"k"}"#.utf8))
            let payload = Base64URL.encode(
                Array(#"{"iss":"app","aud":"https://idp.example","client_id":"app","response_type":"code","scope":"openid","nonce":"n-0S6"}"#.utf8))
            let object = header + "." + payload + ".c2lnbmF0dXJl"
            let passed = try await authorize(h, "&request=" + object)
            #expect(passed.status == 200)
            let forwarded = try #require(h.upstream.received(at: "/o/authorize/").first)
            #expect(forwarded.query?.contains("request=" + object) == true, "the signed bytes reach the IdP as they were")
        }
    }

    @Test func aTokenRequestsAudienceIsGatedWithItsScopes() async throws {
        try await GateHarness.with { h in
            let body = "grant_type=client_credentials&client_id=app&scope=openid&audience=payroll"
            let refused = try await h.send(
                .POST, "/o/token/", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: body)
            #expect(refused.status == 400 && refused.body.contains("awaiting approval of @audience:payroll"))
            #expect(h.upstream.received.isEmpty)
        }
    }
}
