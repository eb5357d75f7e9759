import AsyncHTTPClient
import Foundation
import Hummingbird
import ScopeGateCore
import Testing

@testable import ScopeGateServer

/// Pushed authorization requests (RFC 9126) through ScopeGate: the pushed request is gated at the PAR
/// endpoint, and the `request_uri` it yields is admitted at the authorization endpoint for its client only.
@Suite(.serialized) struct PushedAuthorizationTests {
    static let par = #","pushed_authorization_request_endpoint":"ISSUER/o/par/""#
    static let uri = "urn:ietf:params:oauth:request_uri:abc123"
    static let basic = "Basic " + Data("app:s3cret".utf8).base64EncodedString()

    func push(_ h: GateHarness, scope: String) async throws -> GateHarness.Reply {
        try await h.send(
            .POST, "/o/par/", headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", Self.basic)],
            body: "response_type=code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=\(scope)&state=s1&code_challenge=abc&code_challenge_method=S256")
    }

    func issueRequestURIs(_ h: GateHarness) {
        h.upstream.behaviour.withLock {
            $0 = { request, _ in
                guard request.uri.path == "/o/par/" else { return Response(status: .ok) }
                return Response(
                    status: .created, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"request_uri":"\#(Self.uri)","expires_in":60}"#)))
            }
        }
    }

    @Test func anUnapprovedPushIsRefusedUntilApproved() async throws {
        try await GateHarness.with(discoveryExtra: Self.par) { h in
            issueRequestURIs(h)
            let refused = try await push(h, scope: "openid+orders%3Aread")
            #expect(refused.status == 400)
            #expect(refused.body.contains("invalid_scope") && refused.body.contains("awaiting approval"))
            #expect(h.upstream.received(at: "/o/par/").isEmpty)
            let pending = try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first)
            try await h.gate.service.approve(pending.id, actor: "test", once: false)
            let pushed = try await push(h, scope: "openid+orders%3Aread")
            #expect(pushed.status == 201)
            #expect(h.upstream.received(at: "/o/par/").count == 1)
        }
    }

    @Test func onlyTheClientsOwnIssuedRequestURIPasses() async throws {
        try await GateHarness.with(discoveryExtra: Self.par) { h in
            issueRequestURIs(h)
            #expect(try await push(h, scope: "openid").status == 201)
            let uri = Self.uri.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let authorize = GateHarness.authorizePath
            // Foreign client, unknown URI, extra parameters, a request_uri never pushed: refused.
            for query in [
                "client_id=other&request_uri=\(uri)", "client_id=app&request_uri=urn%3Aforged",
                "client_id=app&request_uri=\(uri)&scope=admin%3Aall", "request_uri=\(uri)",
                "client_id=app&request_uri=\(uri)&response_type=code&scope=openid+orders%3Aread",
                "client_id=app&request_uri=\(uri)&response_type=code&state=other", "client_id=app&request_uri=\(uri)&nonce=n",
                "client_id=app&request_uri=\(uri)&request_uri=urn%3Aforged",
            ] {
                let reply = try await h.send(.GET, authorize + "?" + query)
                #expect(reply.status == 400, "\(query) answered \(reply.status)")
            }
            #expect(h.upstream.received(at: authorize).isEmpty)
            let admitted = try await h.send(.GET, authorize + "?client_id=app&request_uri=\(uri)")
            #expect(admitted.status == 200)
            #expect(h.upstream.received(at: authorize).count == 1)
            // Copies of the pushed request's own values beside it (idpyoidc wants response_type again).
            let withCopies = "client_id=app&request_uri=\(uri)&response_type=code&scope=openid&state=s1"
            #expect(try await h.send(.GET, authorize + "?" + withCopies).status == 200)
            #expect(h.upstream.received(at: authorize).count == 2)
        }
    }

    @Test func aPushCannotCarryADeniedRequestObjectOrAnotherResponseType() async throws {
        try await GateHarness.with(discoveryExtra: Self.par) { h in
            issueRequestURIs(h)
            let object = "eyJhbGciOiJub25lIn0." + Base64URL.encode(Array(#"{"scope":"admin:org"}"#.utf8)) + "."
            for body in [
                "response_type=code&scope=openid&request=" + object, "response_type=code&scope=openid&request=a.b.c.d.e",
                "response_type=token&scope=openid", "response_type=code&scope=openid&scope=orders%3Aread",
            ] {
                let reply = try await h.send(
                    .POST, "/o/par/", headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", Self.basic)],
                    body: body)
                #expect(reply.status == 400, "\(body) answered \(reply.status)")
            }
            #expect(h.upstream.received(at: "/o/par/").isEmpty)
        }
    }
}
