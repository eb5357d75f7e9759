import AsyncHTTPClient
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOSSL
import Synchronization
import Testing

@testable import ScopeGateServer

@Suite(.serialized) struct TLSTests {
    /// A new CA and server certificate from `certs/make-dev-certs.sh`, in their own folder.
    static func makeCertificates() throws -> URL {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sg-certs-\(UUID().uuidString)")
        let script = Process()
        script.executableURL = URL(fileURLWithPath: "/bin/bash")
        script.arguments = [root.appendingPathComponent("certs/make-dev-certs.sh").path, directory.path]
        script.standardOutput = FileHandle.nullDevice
        try script.run()
        script.waitUntilExit()
        try #require(script.terminationStatus == 0)
        return directory
    }

    @Test func servesTheConfiguredCertificateMadeByTheCertsScript() async throws {
        let directory = try Self.makeCertificates()
        let keyMode = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent("server.key").path)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)

        let tls = "tls:\n  certificate: \(directory.path)/server.crt\n  key: \(directory.path)/server.key"
        try await GateHarness.with(extraConfig: tls) { h in
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .file(directory.appendingPathComponent("ca.crt").path)
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: configuration))
            let url = h.publicURL.replacingOccurrences(of: "http://", with: "https://") + "/.well-known/openid-configuration"
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            #expect(response.status == .ok)
            try await client.shutdown()
        }
    }

    /// HTTP/2 by ALPN (`tls.http2`): each stream is gated and forwarded as HTTP/1.1, held requests
    /// never reach the IdP, bodies keep their framing, several cookie fields become one.
    @Test func http2StreamsAreGatedAndForwardedAsHTTP1() async throws {
        let directory = try Self.makeCertificates()
        let tls = "tls:\n  certificate: \(directory.path)/server.crt\n  key: \(directory.path)/server.key\n  http2: true"
        try await GateHarness.with(extraConfig: tls) { h in
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .file(directory.appendingPathComponent("ca.crt").path)
            var clientConfiguration = HTTPClient.Configuration(tlsConfiguration: configuration, redirectConfiguration: .disallow)
            clientConfiguration.httpVersion = .automatic
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
            let base = h.publicURL.replacingOccurrences(of: "http://", with: "https://")
            do {
                let discovery = try await client.execute(HTTPClientRequest(url: base + "/.well-known/openid-configuration"), timeout: .seconds(10))
                #expect(discovery.status == .ok && discovery.version == .http2)

                // A gated request is held on its stream; the IdP sees nothing.
                let held = try await client.execute(
                    HTTPClientRequest(url: base + "/o/authorize/?response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=s&scope=orders:read"),
                    timeout: .seconds(10))
                #expect(held.status == .seeOther && held.version == .http2)
                #expect(h.upstream.received(at: GateHarness.authorizePath).isEmpty)

                // A body with a length, a body streamed without one, and two cookie fields.
                var form = HTTPClientRequest(url: base + "/o/token-like")
                form.method = .POST
                form.headers.add(name: "content-type", value: "application/x-www-form-urlencoded")
                form.headers.add(name: "cookie", value: "a=1")
                form.headers.add(name: "cookie", value: "b=2")
                form.body = .bytes(ByteBuffer(string: "x=1&y=2"))
                #expect(try await client.execute(form, timeout: .seconds(10)).status == .ok)
                var streamed = HTTPClientRequest(url: base + "/upload")
                streamed.method = .POST
                streamed.body = .stream(
                    AsyncStream<ByteBuffer> { continuation in
                        continuation.yield(ByteBuffer(string: "first,"))
                        continuation.yield(ByteBuffer(string: "second"))
                        continuation.finish()
                    }, length: .unknown)
                #expect(try await client.execute(streamed, timeout: .seconds(10)).status == .ok)

                let posted = try #require(h.upstream.received(at: "/o/token-like").first)
                #expect(String(buffer: posted.body) == "x=1&y=2")
                #expect(posted.headers[values: .cookie] == ["a=1; b=2"])
                #expect(posted.headers[.contentLength] == "7")
                let uploaded = try #require(h.upstream.received(at: "/upload").first)
                #expect(String(buffer: uploaded.body) == "first,second")
                #expect(uploaded.headers[.transferEncoding] == "chunked", "a stream without a length goes on chunked")
            } catch {
                try await client.shutdown()
                throw error
            }
            try await client.shutdown()
        }
    }

    /// Shutdown sends GOAWAY on an HTTP/2 connection the client keeps open, and does not wait for the
    /// client to close it.
    @Test func anOpenHTTP2ConnectionDoesNotHoldUpShutdown() async throws {
        let directory = try Self.makeCertificates()
        let tls = "tls:\n  certificate: \(directory.path)/server.crt\n  key: \(directory.path)/server.key\n  http2: true"
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .file(directory.appendingPathComponent("ca.crt").path)
        var clientConfiguration = HTTPClient.Configuration(tlsConfiguration: configuration)
        clientConfiguration.httpVersion = .automatic
        let lingering = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        let stopping = ContinuousClock.now
        let clock = Mutex<ContinuousClock.Instant?>(nil)
        try await GateHarness.with(extraConfig: tls) { h in
            let url = h.publicURL.replacingOccurrences(of: "http://", with: "https://") + "/.well-known/openid-configuration"
            let response = try await lingering.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            #expect(response.version == .http2)
            clock.withLock { $0 = .now }
        }
        let stopped = ContinuousClock.now
        try await lingering.shutdown()
        let shutdown = stopped - (clock.withLock { $0 } ?? stopping)
        #expect(shutdown < .seconds(10), "shutdown took \(shutdown)")
    }

    @Test func aBodyWithoutFramingOnAStreamIsRefusedAndNothingIsPassedOn() throws {
        let channel = EmbeddedChannel(handler: HTTP2RequestGuard())
        let get = HTTPRequestHead(version: .http2, method: .GET, uri: "/o/authorize/?scope=a", headers: ["host": "x"])
        try channel.writeInbound(HTTPServerRequestPart.head(get))
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == nil, "the head waits for the next part")
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "GET /o/authorize/?scope=admin HTTP/1.1\r\n")))
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == nil, "nothing of it reaches the gate")
        guard case .head(let answer)? = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("expected a response head")
            return
        }
        #expect(answer.status == .badRequest)

        // The same head ended at once is passed on whole.
        let clean = EmbeddedChannel(handler: HTTP2RequestGuard())
        try clean.writeInbound(HTTPServerRequestPart.head(get))
        try clean.writeInbound(HTTPServerRequestPart.end(nil))
        guard case .head(let passed)? = try clean.readInbound(as: HTTPServerRequestPart.self) else {
            Issue.record("expected the head")
            return
        }
        #expect(passed.uri == get.uri)
        guard case .end? = try clean.readInbound(as: HTTPServerRequestPart.self) else {
            Issue.record("expected the end")
            return
        }
    }

    @Test func theHTTP2GuardRefusesWhatHTTP1WouldReadOtherwise() {
        var head = HTTPRequestHead(version: .http2, method: .GET, uri: "/", headers: ["host": "x", "x-a": "ok"])
        #expect(HTTP2RequestGuard.checked(head) != nil)
        head.headers.add(name: "x-b", value: "a\r\nTransfer-Encoding: chunked")
        #expect(HTTP2RequestGuard.checked(head) == nil)
        var cookies: HTTPHeaders = ["cookie": "a=1", "x": "y", "cookie": "b=2"]
        HTTP2RequestGuard.joinCookies(&cookies)
        #expect(cookies["cookie"] == ["a=1; b=2"])
    }
}
