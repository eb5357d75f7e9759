import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

@testable import ScopeGateServer

@Suite(.serialized) struct AuthorizationGateTests {
    let path = GateHarness.authorizePath

    @Test func approvedRequestsAreForwardedAsParsed() async throws {
        try await GateHarness.with { h in
            let reply = try await h.send(.GET, path + "?" + GateHarness.authorizeQuery(scope: "openid"))
            #expect(reply.status == 200)
            let seen = try #require(h.upstream.received(at: path).first)
            #expect(seen.query == "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid&state=st%2Fate%201&code_challenge=abc&code_challenge_method=S256")
        }
    }

    @Test func approvedCanonicalRequestsAreForwardedByteForByte() async throws {
        try await GateHarness.with { h in
            let query = GateHarness.authorizeQuery(scope: "openid", state: "a%2Fb%20c")
            let reply = try await h.send(.GET, path + "?" + query)
            #expect(reply.status == 200)
            let seen = try #require(h.upstream.received(at: path).first)
            #expect(seen.query == query)
        }
    }

    /// A query of the common shape (`PlainAuthorizationQuery`) is decided on the event loop only when
    /// all is granted: anything else takes the full path, which holds or denies, and the IdP sees nothing.
    @Test func aPlainQueryNeedingADecisionIsHeldOrDeniedAndReachesNobody() async throws {
        try await GateHarness.with { h in
            let held = try await h.send(.GET, path + "?" + GateHarness.authorizeQuery(scope: "openid%20orders%3Aread", state: "s"))
            #expect(held.status == 303)
            #expect(held.location?.hasPrefix("/_scopegate/") == true)
            let denied = try await h.send(.GET, path + "?" + GateHarness.authorizeQuery(scope: "openid%20admin%3Aorg", state: "s"))
            #expect(denied.status == 303)
            #expect(denied.location?.hasPrefix("https://app.example/cb?error=access_denied&") == true)
            #expect(h.upstream.received.isEmpty)
            let allowed = GateHarness.authorizeQuery(scope: "openid", state: "s")
            #expect(try await h.send(.GET, path + "?" + allowed).status == 200)
            #expect(h.upstream.received(at: path).map(\.query) == [allowed])
        }
    }

    @Test func aGetWithABodyIsRefusedAndReachesNobody() async throws {
        try await GateHarness.with { h in
            let reply = try await h.send(.GET, path + "?" + GateHarness.authorizeQuery(scope: "openid"), body: "scope=admin%3Aorg")
            #expect(reply.status == 400)
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test func approvedPostRequestsAreForwardedAsAForm() async throws {
        try await GateHarness.with { h in
            let reply = try await h.send(
                .POST, path, headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: GateHarness.authorizeQuery(scope: "openid"))
            #expect(reply.status == 200)
            let seen = try #require(h.upstream.received(at: path).first)
            #expect(seen.method == .post)
            #expect(String(buffer: seen.body).hasPrefix("response_type=code&client_id=app"))
        }
    }

    @Test(arguments: [
        ("repeated state", "&state=2"),
        ("repeated client_id", "&client_id=other"),
        ("malformed percent", "&nonce=%G1"),
        ("truncated percent", "&nonce=%4"),
        ("stray ampersand", "&&nonce=1"),
        ("bad response_mode", "&response_mode=web_message"),
    ])
    func malformedRequestsNeverReachTheIdP(_ name: String, _ suffix: String) async throws {
        try await GateHarness.with { h in
            let reply = try await h.rawGet(path + "?" + GateHarness.authorizeQuery(scope: "openid") + suffix)
            #expect(reply.status == 400, "\(name)")
            #expect(h.upstream.received.isEmpty, "\(name) reached the IdP")
        }
    }

    @Test(arguments: ["openid%20%20orders:read", "openid%09orders:read", "open%22id", "%20openid", "openid%0A"])
    func scopeTokensOutsideTheGrammarNeverReachTheIdP(_ scope: String) async throws {
        try await GateHarness.with { h in
            let reply = try await h.rawGet(path + "?" + GateHarness.authorizeQuery(scope: scope))
            #expect((400...499).contains(reply.status) || reply.status == 303)
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test func aScopeInQueryAndBodyIsGatedOnBoth() async throws {
        try await GateHarness.with { h in
            // The body's scope needs an approver: whichever copy the IdP reads, nothing reaches it.
            let reply = try await h.send(
                .POST, path + "?scope=openid", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: GateHarness.authorizeQuery(scope: "orders:read"))
            #expect(reply.status == 303)
            #expect(reply.headers.first(name: "location")?.contains("/_scopegate/holds/") == true)
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test(arguments: [
        "/o/authorize", "/o/authorize//", "/o//authorize/", "/O/Authorize/", "/o/x/../authorize/", "/o/./authorize/",
        "/o/authorize;x=1/", "/o/%61uthorize/", "/o/authorize%2F", "/o%2Fauthorize/", "/o/authorize/.", "/o\\authorize/",
        "/o/%2561uthorize/",
    ])
    func otherSpellingsOfTheGatedPathNeverReachTheIdP(_ variant: String) async throws {
        try await GateHarness.with { h in
            let reply = try await h.rawGet(variant + "?" + GateHarness.authorizeQuery(scope: "orders:read"))
            #expect(reply.status == 400 || reply.status == 303, "\(variant) answered \(reply.status)")
            #expect(h.upstream.received.isEmpty, "\(variant) reached the IdP")
        }
    }

    @Test func otherMethodsAre405() async throws {
        try await GateHarness.with { h in
            let reply = try await h.send(.DELETE, path + "?" + GateHarness.authorizeQuery(scope: "orders:read"))
            #expect(reply.status == 405)
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test func policyDenialRedirectsToTheRegisteredURIWithStateAndIss() async throws {
        try await GateHarness.with { h in
            let reply = try await h.send(.GET, path + "?" + GateHarness.authorizeQuery(scope: "openid+admin:org"))
            #expect(reply.status == 303)
            let location = try #require(reply.location)
            #expect(location.hasPrefix("https://app.example/cb?error=access_denied&"))
            #expect(location.contains("&state=st%2Fate%201"))
            #expect(location.contains("&iss=" + FormEncoding.encode(h.publicURL)))
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test func anUnregisteredRedirectURIGetsAnErrorPageNotARedirect() async throws {
        try await GateHarness.with { h in
            let query = GateHarness.authorizeQuery(scope: "admin:org").replacingOccurrences(
                of: "app.example%2Fcb", with: "evil.example%2Fcb")
            let reply = try await h.send(.GET, path + "?" + query)
            #expect(reply.status == 403)
            #expect(reply.location == nil)
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test func aRequestWithoutScopeIsRefusedWithoutConfiguredDefaults() async throws {
        try await GateHarness.with { h in
            let query = "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=s"
            let reply = try await h.send(.GET, path + "?" + query)
            #expect(reply.location?.contains("error=invalid_scope") == true)
            #expect(h.upstream.received.isEmpty)
        }
    }
}

/// Percent-encoding as ScopeGate writes it, for expectations.
enum FormEncoding {
    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")) ?? text
    }
}
