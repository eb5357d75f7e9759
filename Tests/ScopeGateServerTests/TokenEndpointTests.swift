import AsyncHTTPClient
import Foundation
import Hummingbird
import ScopeGateCore
import ScopeGateStore
import Testing

@testable import ScopeGateServer

/// The token endpoint through ScopeGate: back-channel grants gated, every issued token checked (the
/// second gate). The recording upstream is the oracle for "nothing reached the IdP".
@Suite(.serialized) struct TokenEndpointTests {
    static let path = "/o/token/"
    static let basic = "Basic " + Data("app:s3cret".utf8).base64EncodedString()

    func post(_ h: GateHarness, _ body: String, headers: [(String, String)] = [("Authorization", basic)]) async throws
        -> GateHarness.Reply
    {
        try await h.send(
            .POST, Self.path, headers: [("Content-Type", "application/x-www-form-urlencoded")] + headers, body: body)
    }

    /// The upstream answers every token request with a token for `scope`.
    func issue(_ h: GateHarness, scope: String) {
        h.upstream.behaviour.withLock {
            $0 = { _, _ in
                Response(
                    status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"access_token":"secret-token","token_type":"Bearer","scope":"\#(scope)"}"#)))
            }
        }
    }

    func json(_ reply: GateHarness.Reply) -> [String: String] {
        ((try? JSONSerialization.jsonObject(with: Data(reply.body.utf8))) as? [String: String]) ?? [:]
    }

    @Test func anUnapprovedClientCredentialsGrantWaitsForApprovalThenPasses() async throws {
        try await GateHarness.with { h in
            issue(h, scope: "orders:read")
            let refused = try await post(h, "grant_type=client_credentials&scope=orders%3Aread")
            #expect(refused.status == 400)
            #expect(json(refused)["error"] == "invalid_scope")
            #expect(json(refused)["error_description"]?.contains("awaiting approval") == true)
            #expect(refused.headers.first(name: "Cache-Control") == "no-store")
            #expect(h.upstream.received(at: Self.path).isEmpty)
            _ = try await post(h, "grant_type=client_credentials&scope=orders%3Aread")
            let pending = try await h.gate.service.store.approvalRequests(states: [.pending])
            #expect(pending.count == 1, "a retry opens nothing new")
            try await h.gate.service.approve(pending[0].id, actor: "test", once: false)
            let issued = try await post(h, "grant_type=client_credentials&scope=orders%3Aread")
            #expect(issued.status == 200)
            #expect(json(issued)["access_token"] == "secret-token")
            let forwarded = try #require(h.upstream.received(at: Self.path).first)
            #expect(String(buffer: forwarded.body) == "grant_type=client_credentials&scope=orders%3Aread")
            #expect(forwarded.headers[.authorization] == Self.basic)
        }
    }

    /// The upstream answers the authorization endpoint with a redirect carrying `code`, and the token
    /// endpoint with a token whose response omits `scope` (RFC 6749 §5.1: "as requested").
    func issueCode(_ h: GateHarness, _ code: String) {
        h.upstream.behaviour.withLock {
            $0 = { request, _ in
                if request.uri.path == GateHarness.authorizePath {
                    return Response(status: .found, headers: [.location: "https://app.example/cb?code=\(code)&state=s"])
                }
                return Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"access_token":"secret-token","token_type":"Bearer"}"#)))
            }
        }
    }

    /// Both admissions: read in place on the event loop, and (with a parameter the plain reader does
    /// not know) through the strict parser.
    @Test(arguments: ["", "&x=1"])
    func aTokenWithoutScopeIsReadAgainstWhatTheCodesAuthorizationAskedFor(_ extra: String) async throws {
        try await GateHarness.with(extraConfig: "  - id: other\n    name: Other\n    redirect_uris: [\"https://other.example/cb\"]") { h in
            issueCode(h, "c%2Bde%3D%3D")
            let authorized = try await h.send(.GET, GateHarness.authorizePath + "?" + GateHarness.authorizeQuery(scope: "openid", extra: extra))
            #expect(authorized.status == 302)
            // The code as the client decodes it from the redirect.
            let issued = try await post(h, "grant_type=authorization_code&code=c%2Bde%3D%3D&client_id=app", headers: [])
            #expect(issued.status == 200, "\(issued.body)")
            #expect(json(issued)["access_token"] == "secret-token")
            // A code ScopeGate never relayed, or another client's: nothing says what the token carries.
            let unknown = try await post(h, "grant_type=authorization_code&code=forged&client_id=app&scope=openid", headers: [])
            #expect(unknown.status == 400)
            #expect(!unknown.body.contains("secret-token"))
            let otherClient = try await post(h, "grant_type=authorization_code&code=c%2Bde%3D%3D&client_id=other", headers: [])
            #expect(otherClient.status == 400)
        }
    }

    /// The second gate reads every token response: a client's `Accept-Encoding` must not make the IdP
    /// compress it (ScopeGate would have to withhold what it cannot read).
    @Test func aTokenRequestAskingForGzipIsForwardedWithoutAcceptEncoding() async throws {
        try await GateHarness.with { h in
            issue(h, scope: "openid")
            let issued = try await post(
                h, "grant_type=client_credentials&scope=openid", headers: [("Authorization", Self.basic), ("Accept-Encoding", "gzip, br")])
            #expect(issued.status == 200)
            let forwarded = try #require(h.upstream.received(at: Self.path).first)
            #expect(forwarded.headers[.acceptEncoding] == nil)
        }
    }

    /// The upstream answers every token request with `json`.
    func answer(_ h: GateHarness, _ json: String) {
        h.upstream.behaviour.withLock {
            $0 = { _, _ in
                Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
            }
        }
    }

    static func jwt(_ claims: String) -> String {
        Base64URL.encode(Array(#"{"alg":"RS256","typ":"at+jwt"}"#.utf8)) + "." + Base64URL.encode(Array(claims.utf8)) + ".c2ln"
    }

    /// What the token itself shows is checked too: a JWT access token's own scope claim, and
    /// authorization details in the response or the token.
    @Test(arguments: [
        (#"{"access_token":"JWT","token_type":"Bearer","scope":"openid"}"#, #"{"sub":"app","scope":"openid orders:write"}"#, false),
        (#"{"access_token":"JWT","token_type":"Bearer","scope":"openid"}"#, #"{"sub":"app","scp":["openid","admin:org"]}"#, false),
        (#"{"access_token":"JWT","token_type":"Bearer"}"#, #"{"sub":"app","scope":"openid"}"#, true),
        (#"{"access_token":"JWT","token_type":"Bearer","scope":"openid"}"#, #"{"sub":"app","scope":5}"#, false),
        (#"{"access_token":"JWT","token_type":"Bearer","scope":"openid","authorization_details":[{"type":"payment"}]}"#, #"{"sub":"app"}"#, false),
        (#"{"access_token":"JWT","token_type":"Bearer","scope":"openid"}"#, #"{"sub":"app","authorization_details":[{"type":"payment"}]}"#, false),
        (#"{"access_token":"JWT","token_type":"Bearer","scope":"openid"}"#, #"{"sub":"app","scope":"openid"}"#, true),
    ])
    func theSecondGateReadsWhatTheTokenItselfShows(_ response: String, _ claims: String, _ passes: Bool) async throws {
        try await GateHarness.with { h in
            answer(h, response.replacingOccurrences(of: "JWT", with: Self.jwt(claims)))
            let reply = try await post(h, "grant_type=client_credentials&scope=openid")
            #expect((reply.status == 200) == passes, "\(reply.body)")
            if !passes { #expect(!reply.body.contains("access_token")) }
        }
    }

    /// Approve once is one authorization: the token for its code may carry what was approved; another
    /// token of the same client minutes later (a refresh, a second code) may not.
    @Test func approveOnceCoversTheTokenOfThatAuthorizationOnly() async throws {
        try await GateHarness.with { h in
            h.upstream.behaviour.withLock {
                $0 = { request, _ in
                    if request.uri.path == GateHarness.authorizePath {
                        return Response(status: .found, headers: [.location: "https://app.example/cb?code=once-code&state=s1"])
                    }
                    return Response(
                        status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(string: #"{"access_token":"t","token_type":"Bearer","refresh_token":"r","scope":"orders:read"}"#)))
                }
            }
            let browser = Browser(h)
            let page = try await browser.hold(scope: "orders:read")
            let request = try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first)
            try await h.gate.service.approve(request.id, actor: "test", once: true)
            let next = try #require(try await browser.send(.GET, page).location)
            #expect(try await browser.send(.GET, next).status == 302)
            let issued = try await post(h, "grant_type=authorization_code&code=once-code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb")
            #expect(issued.status == 200, "\(issued.body)")
            let refreshed = try await post(h, "grant_type=refresh_token&refresh_token=r")
            #expect(refreshed.status == 400)
            #expect(!refreshed.body.contains("access_token"))
            let otherCode = try await post(h, "grant_type=authorization_code&code=other-code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb")
            #expect(otherCode.status == 400)
            // The code spent the release: the same browser's same request is asked about again.
            let again = try await browser.send(.GET, next)
            #expect(again.status == 303 && again.location?.hasPrefix("/_scopegate/holds/") == true)
            #expect(h.upstream.received(at: GateHarness.authorizePath).count == 1)
        }
    }

    /// A token response that shows no scope (none in it, an opaque token, no code ScopeGate relayed) is
    /// read through the IdP's introspection endpoint, asked as the client.
    @Test(arguments: [("orders:read", false), ("openid", true), (nil, false)] as [(String?, Bool)])
    func aTokenNothingElseDescribesIsIntrospected(_ introspected: String?, _ passes: Bool) async throws {
        try await GateHarness.with(discoveryExtra: #","introspection_endpoint":"ISSUER/o/introspect/""#) { h in
            h.upstream.behaviour.withLock {
                $0 = { request, _ in
                    let body: String
                    if request.uri.path == "/o/introspect/" {
                        body = introspected.map { #"{"active":true,"scope":"\#($0)","client_id":"app"}"# } ?? #"{"active":false}"#
                    } else {
                        body = #"{"access_token":"opaque","token_type":"Bearer","refresh_token":"r2"}"#
                    }
                    return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
                }
            }
            let reply = try await post(h, "grant_type=refresh_token&refresh_token=r1")
            #expect((reply.status == 200) == passes, "\(reply.body)")
            let asked = try #require(h.upstream.received(at: "/o/introspect/").first)
            #expect(String(buffer: asked.body) == "token=opaque&token_type_hint=access_token")
            #expect(asked.headers[.authorization] == Self.basic, "asked as the client")
        }
    }

    @Test func theCodeOfAnAuthorizationResponseIsFoundAsTheClientReadsIt() {
        #expect(IssuedCodes.code(inLocation: "https://app.example/cb?state=s&code=a%2Bb%3D&iss=x") == "a+b=")
        #expect(IssuedCodes.code(inLocation: "https://app.example/cb#state=s&code=abc") == "abc")
        #expect(IssuedCodes.code(inLocation: "https://app.example/cb?error=access_denied&state=s") == nil)
        #expect(IssuedCodes.code(inLocation: "https://app.example/cb?xcode=abc") == nil)
        let codes = IssuedCodes()
        let start = ContinuousClock.now
        codes.record("abc", .init(clientID: "app", permissions: ScopeSet(["openid"])), now: start)
        #expect(codes.authorization(of: "abc", now: start)?.permissions == ScopeSet(["openid"]))
        #expect(codes.authorization(of: "abd", now: start) == nil)
        #expect(codes.authorization(of: "abc", now: start + IssuedCodes.lifetime + .seconds(1)) == nil)
        // Only a redirect to the request's own redirect URI carries its code (not a sign-in page's `next`).
        let flow = IssuedCodes.Authorization(clientID: "app", permissions: ScopeSet(["openid"]), redirectURI: "https://app.example/cb")
        #expect(flow.isRedirectToClient("https://app.example/cb?code=abc"))
        #expect(flow.isRedirectToClient("https://app.example/cb#code=abc"))
        #expect(!flow.isRedirectToClient("https://app.example/cb2?code=abc"))
        #expect(!flow.isRedirectToClient("/accounts/login/?next=/o/authorize/%3Fcode%3Dx&code=abc"))
    }

    @Test func anAuthorizationAdmittedInPlaceIsNotedWithWhatItAskedFor() throws {
        // The fast path keeps the query; what the code's token may carry is read from it when the code comes.
        let query: Substring = "response_type=code&client_id=app&scope=openid+orders%3Aread&state=x"
        let noted = AdmittedAuthorization(plain: try #require(PlainAuthorizationQuery(query))).value
        let strict = try AuthorizationRequest(method: .get, query: query)
        #expect(noted.clientID == strict.clientID)
        #expect(noted.permissions == ScopeSet(["openid", "orders:read"]))
        #expect(noted.isRedirectToClient("https://anywhere.example/cb?code=abc"), "no redirect_uri named: the IdP's own")
    }

    @Test func theSecondGateWithholdsATokenBeyondWhatIsApproved() async throws {
        try await GateHarness.with(discoveryExtra: #","revocation_endpoint":"ISSUER/o/revoke_token/""#) { h in
            // The code was issued for openid; the IdP's token carries more.
            issue(h, scope: "openid orders:read")
            let withheld = try await post(h, "grant_type=authorization_code&code=abc&client_id=app", headers: [])
            #expect(withheld.status == 400)
            #expect(json(withheld)["error"] == "invalid_scope")
            #expect(!withheld.body.contains("secret-token"), "the token never reaches the client")
            #expect(h.upstream.received(at: Self.path).count == 1)
            // …and it is revoked at the IdP, authenticated as the client was.
            let revocation = try #require(h.upstream.received(at: "/o/revoke_token/").first)
            #expect(String(buffer: revocation.body) == "token=secret-token&token_type_hint=access_token&client_id=app")
            issue(h, scope: "openid")
            let passed = try await post(h, "grant_type=authorization_code&code=abc&client_id=app", headers: [])
            #expect(passed.status == 200)
            #expect(passed.body.contains("secret-token"))
            // A token whose scope cannot be told is withheld too.
            h.upstream.behaviour.withLock {
                $0 = { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: #"{"access_token":"secret-token"}"#))) }
            }
            let unknown = try await post(h, "grant_type=authorization_code&code=abc&client_id=app", headers: [])
            #expect(unknown.status == 400 && !unknown.body.contains("secret-token"))
            // So is one that names its scope twice: a lenient reader could take either value, and the
            // approved one must not vouch for the other. Its token is revoked like any withheld one.
            h.upstream.behaviour.withLock {
                $0 = { _, _ in
                    Response(
                        status: .ok,
                        body: .init(byteBuffer: ByteBuffer(string: #"{"access_token":"twice-token","scope":"openid orders:read","scope":"openid"}"#)))
                }
            }
            let twice = try await post(h, "grant_type=authorization_code&code=abc&client_id=app", headers: [])
            #expect(twice.status == 400 && json(twice)["error"] == "invalid_scope")
            #expect(!twice.body.contains("twice-token"))
            #expect(
                h.upstream.received(at: "/o/revoke_token/").map { String(buffer: $0.body) }.last
                    == "token=twice-token&token_type_hint=access_token&client_id=app")
        }
    }

    @Test func aRefreshAskingForMoreIsGatedAndAPlainRefreshIsChecked() async throws {
        try await GateHarness.with { h in
            issue(h, scope: "openid")
            let more = try await post(h, "grant_type=refresh_token&refresh_token=r1&scope=openid+orders%3Aread")
            #expect(more.status == 400 && json(more)["error"] == "invalid_scope")
            #expect(h.upstream.received(at: Self.path).isEmpty)
            let plain = try await post(h, "grant_type=refresh_token&refresh_token=r1")
            #expect(plain.status == 200)
            #expect(h.upstream.received(at: Self.path).count == 1)
        }
    }

    @Test func policyDenialAndBadRequestsReachNothing() async throws {
        try await GateHarness.with { h in
            issue(h, scope: "admin:all")
            let denied = try await post(h, "grant_type=client_credentials&scope=admin%3Aall")
            #expect(denied.status == 400 && json(denied)["error"] == "invalid_scope")
            #expect(try await h.gate.service.store.approvalRequests(states: nil).isEmpty)
            let otherBasic = "Basic " + Data("other:x".utf8).base64EncodedString()
            let cases: [(Int, GateHarness.Reply)] = [
                (405, try await h.send(.GET, Self.path)),
                (400, try await h.send(.POST, Self.path, headers: [("Content-Type", "application/json"), ("Authorization", Self.basic)], body: "{}")),
                (400, try await post(h, "grant_type=client_credentials&scope=openid&scope=orders%3Aread")),
                (400, try await post(h, "grant_type=client_credentials&scope=orders%25")),
                (400, try await post(h, "scope=openid")),
                (400, try await h.send(.POST, Self.path + "?scope=openid", headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", Self.basic)], body: "grant_type=client_credentials")),
                (401, try await post(h, "grant_type=client_credentials&scope=openid&client_id=app", headers: [("Authorization", otherBasic)])),
                (401, try await post(h, "grant_type=client_credentials&scope=openid", headers: [])),
                (401, try await post(h, "grant_type=client_credentials&scope=openid&client_assertion=not-a-jwt", headers: [])),
                (400, try await h.send(.POST, "/o/token", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "grant_type=client_credentials")),
                (400, try await h.send(.POST, "/o/%74oken/", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "grant_type=client_credentials")),
            ]
            for (index, (expected, reply)) in cases.enumerated() {
                #expect(reply.status == expected, "case \(index): \(reply.body)")
            }
            #expect(h.upstream.received.filter { $0.path.hasPrefix("/o/") && $0.path.contains("oken") }.isEmpty)
        }
    }
}

/// Replicas share the codes they relay: the token endpoint of one knows what the request behind a code
/// relayed by another asked for, waiting a moment for a code relayed just now; a code nobody relayed
/// stays unknown (its token is withheld).
@Suite struct SharedIssuedCodesTests {
    actor MemoryCodes: SharedStateStore {
        var records: [String: (String, Date)] = [:]
        var delayedUntil: ContinuousClock.Instant?
        func putShared(kind: String, keyHash: String, value: String, expiresAt: Date) async throws {
            records[kind + "/" + keyHash] = (value, expiresAt)
        }
        func shared(kind: String, keyHash: String, at date: Date) async throws -> String? {
            if let delayedUntil, ContinuousClock.now < delayedUntil { return nil }
            guard let (json, expires) = records[kind + "/" + keyHash], expires > date else { return nil }
            return json
        }
        func delay(_ duration: Duration) { delayedUntil = .now + duration }
    }

    @Test func aCodeRelayedByOneReplicaIsKnownToAnother() async throws {
        let shared = MemoryCodes()
        let relaying = IssuedCodes(shared: shared)
        let exchanging = IssuedCodes(shared: shared)
        let asked = IssuedCodes.Authorization(
            clientID: "app", permissions: ScopeSet(["openid", "orders:read"]), approvedOnce: ScopeSet(["orders:read"]),
            onceHoldID: "h1", redirectURI: "https://app.example/cb")
        await shared.delay(.milliseconds(300))
        relaying.record("the-code", asked)
        #expect(exchanging.authorization(of: "the-code") == nil, "not in this process's memory")
        let found = await exchanging.sharedAuthorization(of: "the-code")
        #expect(found == asked, "waited for the code to be shared")
        #expect(await exchanging.sharedAuthorization(of: "another-code") == nil)
        #expect(await shared.records.keys.allSatisfy { $0.count == "code/".count + 64 && !$0.contains("the-code") }, "only a hash is stored")
    }

    @Test func aDeviceFlowReleasedByOneReplicaContinuesOnAnother() async throws {
        let shared = MemoryCodes()
        let releasing = DeviceRegistry(shared: shared)
        let polled = DeviceRegistry(shared: shared)
        await releasing.setUpstream(
            .init(
                deviceCode: "idp-device-code", userCode: "WDJB-MJHT", verificationURI: "https://login.example/device",
                verificationURIComplete: nil, expires: .now + .seconds(600)),
            for: "hold-1")
        #expect(polled.upstream(of: "hold-1", at: .now) == nil, "not in this process's memory")
        let found = try #require(await polled.sharedUpstream(of: "hold-1"))
        #expect(found.deviceCode == "idp-device-code" && found.userCode == "WDJB-MJHT")
        #expect(found.expires > .now + .seconds(590))
        #expect(await polled.sharedUpstream(of: "hold-2") == nil)
        #expect(await shared.records.keys.allSatisfy { !$0.contains("hold-1") }, "keyed by a hash")
    }

    @Test func aRequestURIPushedThroughOneReplicaIsAdmittedByAnotherForItsClientOnly() async throws {
        let shared = MemoryCodes()
        let pushing = PushedRequests(shared: shared)
        let authorizing = PushedRequests(shared: shared)
        let pushed = try FormParameters(parsing: "response_type=code&client_id=app&scope=orders%3Aread&state=s")
        await pushing.record("urn:ietf:params:oauth:request_uri:abc", clientID: "app", parameters: pushed, lifetime: .seconds(60))
        #expect(authorizing.admitted("urn:ietf:params:oauth:request_uri:abc", clientID: "app") == nil, "not in this process's memory")
        #expect(await authorizing.sharedAdmitted("urn:ietf:params:oauth:request_uri:abc", clientID: "app") == pushed)
        #expect(await authorizing.sharedAdmitted("urn:ietf:params:oauth:request_uri:abc", clientID: "other") == nil)
        #expect(
            await authorizing.sharedAdmitted(
                "urn:ietf:params:oauth:request_uri:abc", clientID: "app", outer: [.init("scope", "admin:all")]) == nil,
            "a parameter sent with the reference must repeat the pushed one")
        #expect(await shared.records.keys.allSatisfy { !$0.contains("request_uri") }, "only a hash is stored")
    }
}
