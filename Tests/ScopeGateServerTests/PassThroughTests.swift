import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import Testing

@testable import ScopeGateServer

@Suite(.serialized) struct PassThroughTests {
    @Test func forwardsAnyMethodWithForwardingHeadersItOwns() async throws {
        try await GateHarness.with { h in
            let reply = try await h.send(
                .PUT, "/accounts/login/?next=%2Fo%2F",
                headers: [
                    ("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Host", "evil.example"), ("Forwarded", "for=6.6.6.6"),
                    ("X-Original-URL", "/o/authorize/"), ("Connection", "close, X-Secret-Hop"), ("X-Secret-Hop", "1"),
                    ("Keep-Alive", "timeout=5"), ("X-Kept", "yes"),
                ], body: "hello")
            #expect(reply.status == 200)
            let seen = try #require(h.upstream.received.first)
            #expect(seen.method == .put)
            #expect(seen.target == "/accounts/login/?next=%2Fo%2F")
            #expect(String(buffer: seen.body) == "hello")
            #expect(seen.headers[.init("X-Forwarded-For")!] == "127.0.0.1")
            #expect(seen.headers[.init("X-Forwarded-Host")!] != "evil.example")
            #expect(seen.headers[.init("Forwarded")!]?.contains("6.6.6.6") == false)
            #expect(seen.headers[.init("X-Original-URL")!] == nil)
            #expect(seen.headers[.init("X-Secret-Hop")!] == nil)
            #expect(seen.headers[.init("Keep-Alive")!] == nil)
            #expect(seen.headers[.init("X-Kept")!] == "yes")
            #expect(seen.headers[.init("X-Forwarded-Proto")!] == "http")
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrderOneAtATime() async throws {
        try await GateHarness.with { h in
            h.upstream.behaviour.withLock {
                $0 = { request, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "answer to \(request.uri.path)"))) }
            }
            let host = "Host: 127.0.0.1:\(h.publicPort)\r\n"
            // Three requests in one write: pass-through, gated (held), pass-through with a body.
            let raw = "GET /realms/one HTTP/1.1\r\n\(host)\r\n"
                + "GET \(GateHarness.authorizePath)?\(GateHarness.authorizeQuery(scope: "orders%3Aread")) HTTP/1.1\r\n\(host)\r\n"
                + "POST /realms/three HTTP/1.1\r\n\(host)Content-Length: 5\r\nConnection: close\r\n\r\nhello"
            let reply = try await RawHTTP.send(port: h.publicPort, raw, readUntilClose: true)
            let text = reply.head + "\r\n\r\n" + reply.body
            let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
            #expect(statuses == ["200", "303", "200"], "\(text)")
            let one = try #require(text.range(of: "answer to /realms/one"))
            let three = try #require(text.range(of: "answer to /realms/three"))
            let held = try #require(text.range(of: "/_scopegate/holds/"))
            #expect(one.lowerBound < held.lowerBound && held.lowerBound < three.lowerBound)
            #expect(h.upstream.received.map(\.target) == ["/realms/one", "/realms/three"])
            #expect(String(buffer: h.upstream.received[1].body) == "hello")
        }
    }

    @Test func sendsTheConfiguredHost() async throws {
        try await GateHarness.with { h in
            _ = try await h.send(.GET, "/static/x.css", headers: [("Host", "somewhere.else")])
            let seen = try #require(h.upstream.received.first)
            #expect(seen.headers[.init("Host")!] == nil || seen.headers[.init("Host")!] == String(h.publicURL.dropFirst(7)))
        }
    }

    @Test func streamsLargeBodiesBothWays() async throws {
        try await GateHarness.with { h in
            h.upstream.behaviour.withLock {
                $0 = { _, body in
                    Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "received \(body.readableBytes)")))
                }
            }
            let size = 50 * 1024 * 1024
            let reply = try await h.send(.POST, "/upload", body: String(repeating: "x", count: size))
            #expect(reply.status == 200)
            #expect(reply.body == "received \(size)")
            h.upstream.behaviour.withLock {
                $0 = { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(repeating: UInt8(ascii: "y"), count: size))) }
            }
            let download = try await h.send(.GET, "/download")
            #expect(download.body.utf8.count == size)
        }
    }

    @Test func rewritesDiscoveryToThePublicURL() async throws {
        try await GateHarness.with { h in
            let reply = try await h.send(.GET, "/.well-known/openid-configuration")
            #expect(reply.status == 200)
            let document = try #require(try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any])
            #expect(document["authorization_endpoint"] as? String == h.publicURL + "/o/authorize/")
            #expect((document["mtls_endpoint_aliases"] as? [String: String])?["token_endpoint"] == h.publicURL + "/o/token/")
        }
    }

    @Test func aSlowUpstreamIs504() async throws {
        try await GateHarness.with { h in
            h.upstream.behaviour.withLock {
                $0 = { _, _ in
                    try? await Task.sleep(for: .seconds(4))
                    return Response(status: .ok)
                }
            }
            let reply = try await h.send(.GET, "/slow")
            #expect(reply.status == 504)
        }
    }

    @Test func theIdPsTimeToAnswerCountsFromTheRequestNotFromTheConnectionsLastRead() async throws {
        // The response timeout is 2 s. The second request goes out on the upstream connection the first
        // left in the pool 1.5 s earlier, and the IdP takes 1 s: within its time.
        try await GateHarness.with { h in
            #expect(try await h.send(.GET, "/first").status == 200)
            try await Task.sleep(for: .milliseconds(1500))
            h.upstream.behaviour.withLock {
                $0 = { _, _ in
                    try? await Task.sleep(for: .seconds(1))
                    return Response(status: .ok)
                }
            }
            #expect(try await h.send(.GET, "/second").status == 200)
        }
    }

    @Test func anUnreachableUpstreamIs502AndNeverSkipsTheGate() async throws {
        try await GateHarness.with(unreachableUpstream: true) { h in
            let passThrough = try await h.send(.GET, "/realms/acme/account")
            #expect(passThrough.status == 502)
            let gated = try await h.send(.GET, GateHarness.authorizePath + "?" + GateHarness.authorizeQuery(scope: "orders:read"))
            #expect(gated.status == 303, "an unapproved request is still held, not forwarded")
            #expect(gated.location?.hasPrefix("/_scopegate/holds/") == true)
        }
    }

    @Test func headResponsesCarryNoBodyAndKeepConnectionsUsable() async throws {
        try await GateHarness.with { h in
            h.upstream.behaviour.withLock {
                $0 = { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "hello"))) }
            }
            for _ in 0..<3 {
                let head = try await h.send(.HEAD, "/resource")
                #expect(head.status == 200)
                #expect(head.body.isEmpty)
                let get = try await h.send(.GET, "/resource")
                #expect(get.body == "hello")
            }
        }
    }

    @Test func scopeGatesOwnAnswerAfterARelayedHEADCarriesItsBody() async throws {
        // A relayed HEAD, then one of ScopeGate's own answers on the same connection: the own answer is
        // framed for its own request (a GET, with its body), never for a request relayed before it.
        try await GateHarness.with { h in
            h.upstream.behaviour.withLock {
                $0 = { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "hello"))) }
            }
            let reply = try await RawHTTP.send(
                port: h.publicPort,
                "HEAD /resource HTTP/1.1\r\nHost: x\r\n\r\nGET /_scopegate/no-such-page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                readUntilClose: true)
            #expect(reply.status == 200)
            let second = reply.body.components(separatedBy: "\r\n\r\n")
            #expect(second.count == 2, "the own answer's head follows the HEAD response's: \(reply.body)")
            let declared = second.first?.split(separator: "\r\n")
                .first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
            #expect(second.first?.hasPrefix("HTTP/1.1 404") == true)
            #expect(declared != nil && declared! > 0)
            #expect(second.last?.utf8.count == declared, "the own answer's body is all there")
        }
    }

    @Test func scopeGatesOwnAnswerToHEADHasTheGETsLengthAndNoBody() async throws {
        try await GateHarness.with { h in
            let reply = try await RawHTTP.send(
                port: h.publicPort,
                "HEAD /_scopegate/no-such-page HTTP/1.1\r\nHost: x\r\n\r\nGET /_scopegate/no-such-page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                readUntilClose: true)
            func length(_ head: Substring) -> Int? {
                head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
            }
            // The HEAD answer's head, then straight away the GET answer's head: no body between them.
            let parts = (reply.head + "\r\n\r\n" + reply.body).components(separatedBy: "\r\n\r\n")
            #expect(parts.count == 3, "\(parts)")
            #expect(parts[0].hasPrefix("HTTP/1.1 404") && parts[1].hasPrefix("HTTP/1.1 404"))
            #expect(length(Substring(parts[0])) != nil && length(Substring(parts[0])) == length(Substring(parts[1])))
            #expect(parts[2].utf8.count == length(Substring(parts[1])))
        }
    }

    @Test func closesConnectionsLeftIdle() async throws {
        try await GateHarness.with(listenExtra: "\n  idle_timeout: 1s") { h in
            let started = ContinuousClock.now
            let reply = try await RawHTTP.send(port: h.publicPort, "GET /resource HTTP/1.1\r\nHost: x\r\n\r\n", readUntilClose: true)
            #expect(reply.status == 200)
            let elapsed = ContinuousClock.now - started
            #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(5), "closed after \(elapsed)")
        }
    }

    @Test func keepsTheClientConnectionAcrossManyRequests() async throws {
        try await GateHarness.with { h in
            for index in 0..<200 {
                let reply = try await h.send(.GET, "/resource/\(index)")
                #expect(reply.status == 200)
            }
            #expect(h.upstream.received.count == 200)
            #expect(Set(h.upstream.received.map(\.target)).count == 200)
        }
    }

    @Test func streamsAChunkedUploadAsChunked() async throws {
        try await GateHarness.with { h in
            h.upstream.behaviour.withLock {
                $0 = { request, body in
                    let framing = request.headers[.transferEncoding] ?? "length \(request.headers[.contentLength] ?? "none")"
                    return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "\(framing) \(body.readableBytes)")))
                }
            }
            let raw = try await RawHTTP.send(
                port: h.publicPort,
                "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            #expect(raw.status == 200)
            #expect(raw.body.hasSuffix("11"))
        }
    }
}

@Suite struct PathGuardTests {
    let guardian = PathGuard(["/o/authorize/": .authorization, "/o/.well-known/openid-configuration": .discovery])

    @Test func onlyTheExactGatedPathIsGated() {
        #expect(guardian.classify("/o/authorize/") == .gated(.authorization))
        #expect(guardian.classify("/o/AUTHORIZE/") == .ambiguous)
        #expect(guardian.classify("/o/token/") == .other)
    }

    @Test func discoverySpellingsPassThrough() {
        #expect(guardian.classify("/o/.well-known/openid-configuration") == .gated(.discovery))
        #expect(guardian.classify("/o/.well-known/openid-configuration/") == .other)
    }
}

@Suite struct ForwardingHeadersTests {
    @Test func writesForwardedFromWhatScopeGateSaw() {
        let untrusted = ForwardingHeaders.upstreamRequest(
            from: HTTPHeaders([("Host", "evil.example"), ("Forwarded", "for=6.6.6.6;host=evil.example"), ("X-Forwarded-Host", "evil.example")]),
            peer: .init(address: "2001:db8::1", trusted: false, scheme: "https"), host: "idp.internal",
            publicHost: "login.example.com", bodyFraming: .none)
        #expect(untrusted["Forwarded"] == ["for=\"[2001:db8::1]\";proto=https;host=\"login.example.com\""])
        #expect(untrusted["Host"] == ["idp.internal"])
        #expect(untrusted["X-Forwarded-Host"] == ["login.example.com"], "public_url's host, never the client's")
        let trusted = ForwardingHeaders.upstreamRequest(
            from: HTTPHeaders([
                ("Host", "evil.example"), ("Forwarded", "for=6.6.6.6"), ("Forwarded", "for=7.7.7.7;host=evil.example"),
                ("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Host", "evil.example"), ("X-Original-Host", "evil.example"),
            ]),
            peer: .init(address: "10.0.0.2", trusted: true, scheme: "http"), host: "idp.internal",
            publicHost: "login.example.com", bodyFraming: .length(3))
        // A trusted proxy's addresses are kept; a host it names (the client's `Host`) is not.
        #expect(trusted["Forwarded"] == ["for=6.6.6.6, for=10.0.0.2;proto=http;host=\"login.example.com\""])
        #expect(trusted["X-Forwarded-For"] == ["6.6.6.6, 10.0.0.2"])
        #expect(trusted["X-Forwarded-Host"] == ["login.example.com"])
        #expect(trusted["X-Original-Host"].isEmpty)
        #expect(trusted["Content-Length"] == ["3"])
    }

    @Test func theIdPsResponseLosesItsHopByHopHeadersAndKeepsTheRestInOrder() {
        let rewrite: (String) -> String = { $0.replacingOccurrences(of: "http://idp:9000", with: "https://login.example.com") }
        let plain = HTTPHeaders([
            ("Server", "idp"), ("Connection", "keep-alive, X-Hop"), ("Content-Type", "text/plain"), ("x-hop", "1"),
            ("Keep-Alive", "timeout=5"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Content-Length", "2"),
        ])
        let passed = ForwardingHeaders.downstreamResponse(from: plain, rewriteLocation: rewrite)
        #expect(passed.map { "\($0.name): \($0.value)" } == [
            "Server: idp", "Content-Type: text/plain", "Set-Cookie: a=1", "Set-Cookie: b=2", "Content-Length: 2",
        ])
        let nothingToDrop = HTTPHeaders([("Content-Type", "text/plain"), ("Content-Length", "2")])
        #expect(ForwardingHeaders.downstreamResponse(from: nothingToDrop, rewriteLocation: rewrite) == nothingToDrop)
        let redirect = HTTPHeaders([("Connection", "close"), ("Location", "http://idp:9000/o/authorize/?a=b"), ("Upgrade", "h2c")])
        #expect(ForwardingHeaders.downstreamResponse(from: redirect, rewriteLocation: rewrite).map { "\($0.name): \($0.value)" } == [
            "Location: https://login.example.com/o/authorize/?a=b"
        ])
    }

    @Test(arguments: [
        ("Connection", "hop"), ("KEEP-ALIVE", "hop"), ("Proxy-Connection", "hop"), ("TE", "hop"), ("Trailer", "hop"),
        ("Transfer-Encoding", "hop"), ("Upgrade", "hop"), ("Proxy-Authenticate", "hop"), ("Proxy-Authorization", "hop"),
        ("X-Forwarded-For", "fwd"), ("x-forwarded-proto", "fwd"), ("X-Forwarded-Host", "fwd"), ("X-Forwarded-Port", "fwd"),
        ("X-Forwarded-Prefix", "fwd"), ("Forwarded", "fwd"), ("X-Real-IP", "fwd"), ("X-Original-URL", "fwd"),
        ("X-Rewrite-URL", "fwd"), ("X-Original-Host", "fwd"), ("X-Original-URI", "fwd"), ("x-forwarded-uri", "fwd"),
        ("X-Host", "fwd"), ("X-HTTP-Method-Override", "override"), ("X-Method-Override", "override"),
        ("X-HTTP-Method", "override"), ("Host", "own"), ("Content-Length", "own"),
        ("Cookie", "keep"), ("Authorization", "keep"), ("X-Forwarded", "keep"), ("Tex", "keep"),
    ])
    func classifiesEveryName(_ name: String, _ expected: String) {
        let found: String
        switch ForwardingHeaders.disposition(of: name) {
        case .hopByHop: found = "hop"
        case .forwarding: found = "fwd"
        case .replaced: found = "own"
        case .keep: found = "keep"
        case .methodOverride: found = "override"
        }
        #expect(found == expected, "\(name)")
    }

    @Test(arguments: [
        ("/o/authorize/", "/o/authorize"), ("/O//Authorize/./", "/o/authorize"), ("/o/x/../authorize", "/o/authorize"),
        ("/o/%2561uthorize", "/o/authorize"), ("/o\\authorize;a=b/", "/o/authorize"), ("/../..", "/"),
        ("/o/%20authorize%09/", "/o/authorize"), ("/", "/"), ("/a/b/../../c", "/c"), ("/a/..;x/b", "/b"),
        ("/a/b/..", "/a"), ("/a/b/%2e%2E/c", "/a/c"), ("/a%2Fb", "/a/b"), ("", "/"), ("/realms/Acme/account", "/realms/acme/account"),
    ])
    func normalizesPathsAnIdPMightConfuse(_ path: String, _ expected: String) {
        #expect(PathGuard.normalize(path) == expected)
    }
}
