import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import ScopeGateCore
import Testing

@testable import ScopeGateServer

/// The connection handler carrying out its state machine's actions on real channel pipelines
/// (`EmbeddedChannel`s for the client and the upstream connection, on one loop): what the IdP receives,
/// what the client is sent, which connection reads, and when a connection is reused or closed.
@Suite struct ProxyConnectionHandlerTests {

    /// A client connection with the handler, one idle upstream connection in the pool, on one loop.
    final class Wire {
        let loop = EmbeddedEventLoop()
        let client: EmbeddedChannel
        let upstream: EmbeddedChannel
        let pool: UpstreamPool
        let httpClient: HTTPClient
        /// Reads the bytes the IdP was sent with NIO's request parser, as an HTTP server would.
        let idpParser = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder()))

        /// `http1`: the client connection has the public listener's HTTP/1 codec (`addHTTP1Handlers`), and
        /// speaks bytes (`send`, `clientBytes`); otherwise it speaks NIO's HTTP parts.
        init(limits: ProxyConnectionHandler.StateMachine.Limits = .init(), http1: Bool = false) throws {
            let yaml = GateHarness.configYAML(
                upstreamPort: 9, publicPort: 8443, adminPort: 8444, storePath: "/nonexistent/gate.sqlite", extra: "",
                unreachableUpstream: true)
            let configuration = try ScopeGateConfiguration.parse(
                yaml: yaml, baseDirectory: URL(fileURLWithPath: "/"), environment: ["SG_TEST_ADMIN_TOKEN": GateHarness.adminToken])
            httpClient = ScopeGateApplication.makeHTTPClient(configuration: configuration)
            let metadata = UpstreamMetadata(
                issuer: nil, authorizationPath: "/o/authorize/", tokenPath: "/o/token/", revocationPath: nil,
                pushedAuthorizationPath: nil, deviceAuthorizationPath: nil, discoveryPaths: [], issParameterSupported: false)
            let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
            let app = ScopeGateApplication(
                configuration: configuration, store: InMemoryGateStore(), httpClient: httpClient, metadata: metadata,
                logger: logger)
            let pools = UpstreamPools(group: loop, target: try UpstreamTarget(configuration: configuration))
            pool = pools.pool(for: loop)!
            let shared = ProxyShared(
                responder: app.responder(), pools: pools, codes: app.issuedCodes, configuration: configuration, logger: logger)
            let relay = UpstreamRelay(pool: pool, responseTimeout: .seconds(30))
            upstream = EmbeddedChannel(handler: relay, loop: loop)
            try upstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
            pool.release(UpstreamConnection(channel: upstream, relay: relay))
            client = EmbeddedChannel(loop: loop)
            try client.connect(to: SocketAddress(ipAddress: "192.0.2.7", port: 50000)).wait()
            let handler = ProxyConnectionHandler(shared: shared, limits: limits)
            if http1 {
                try PublicListener.addHTTP1Handlers(client.pipeline.syncOperations, handler: handler)
            } else {
                try client.pipeline.syncOperations.addHandler(handler)
            }
        }

        /// The client sends `bytes` (an `http1` wire).
        func send(_ bytes: String) throws {
            try client.writeInbound(ByteBuffer(string: bytes))
        }

        /// Every byte the client was sent so far (an `http1` wire).
        func clientBytes() throws -> String {
            var text = ""
            while let buffer = try client.readOutbound(as: IOData.self) {
                guard case .byteBuffer(let bytes) = buffer else { continue }
                text += String(buffer: bytes)
            }
            return text
        }

        deinit { try? httpClient.syncShutdown() }

        func request(_ uri: String, keepAlive: Bool = true) throws {
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: ["Host": "gate.example"])
            if !keepAlive { head.headers.add(name: "Connection", value: "close") }
            try client.writeInbound(HTTPServerRequestPart.head(head))
            try client.writeInbound(HTTPServerRequestPart.end(nil))
        }

        /// Everything the IdP was sent so far, as a server parses it.
        func upstreamReceived() throws -> [HTTPClientRequestPart] {
            while let bytes = try upstream.readOutbound(as: ByteBuffer.self) { try idpParser.writeInbound(bytes) }
            var parts: [HTTPClientRequestPart] = []
            while let part = try idpParser.readInbound(as: HTTPServerRequestPart.self) {
                switch part {
                case .head(let head): parts.append(.head(head))
                case .body(let body): parts.append(.body(.byteBuffer(body)))
                case .end(let trailers): parts.append(.end(trailers))
                }
            }
            return parts
        }

        /// The IdP answers with `bytes`.
        func upstreamSends(_ bytes: String) throws {
            try upstream.writeInbound(ByteBuffer(string: bytes))
        }

        /// Everything the client was sent so far.
        func clientReceived() throws -> [HTTPServerResponsePart] {
            var parts: [HTTPServerResponsePart] = []
            while let part = try client.readOutbound(as: HTTPServerResponsePart.self) { parts.append(part) }
            return parts
        }

        func respond(_ status: HTTPResponseStatus = .ok, body: String = "hello", headers: HTTPHeaders = [:]) throws {
            var head = "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\n"
            for (name, value) in headers { head += "\(name): \(value)\r\n" }
            try upstreamSends(head + "Content-Length: \(body.utf8.count)\r\n\r\n" + body)
        }
    }

    static func autoRead(_ channel: EmbeddedChannel) -> Bool? {
        channel.options.last { $0.option is ChannelOptions.Types.AutoReadOption }?.value as? Bool
    }

    @Test func aPassThroughRequestReachesTheIdPRewrittenAndItsAnswerTheClient() throws {
        let wire = try Wire()
        try wire.request("/accounts/login/?next=%2F")
        let sent = try wire.upstreamReceived()
        guard case .head(let head) = sent.first else {
            Issue.record("the IdP received no head: \(sent)")
            return
        }
        #expect(head.uri == "/accounts/login/?next=%2F")
        #expect(head.headers["Host"] == ["127.0.0.1:8443"])
        #expect(head.headers["X-Forwarded-For"] == ["192.0.2.7"])
        #expect(sent.count == 2)
        try wire.respond(headers: ["Set-Cookie": "sid=1", "Keep-Alive": "timeout=5"])
        let received = try wire.clientReceived()
        guard case .head(let response) = received.first, case .body(.byteBuffer(let body)) = received.dropFirst().first else {
            Issue.record("the client received \(received)")
            return
        }
        #expect(response.status == .ok)
        #expect(response.headers["Set-Cookie"] == ["sid=1"])
        #expect(response.headers["Keep-Alive"].isEmpty)
        #expect(String(buffer: body) == "hello")
        #expect(received.count == 3)
        // The upstream connection is idle in the pool again, and the client's stays open.
        #expect(wire.pool.takeIdle()?.channel === wire.upstream)
        #expect(wire.client.isActive)
    }

    @Test func pipelinedRequestsReachTheIdPOneAtATimeInOrder() throws {
        let wire = try Wire()
        try wire.request("/first")
        try wire.request("/second")
        let first = try wire.upstreamReceived()
        #expect(first.count == 2)
        if case .head(let head) = first.first { #expect(head.uri == "/first") }
        try wire.respond(body: "one")
        // The second request goes out on the same upstream connection, once the first was answered.
        let second = try wire.upstreamReceived()
        #expect(second.count == 2)
        if case .head(let head) = second.first { #expect(head.uri == "/second") }
        try wire.respond(body: "two")
        let bodies = try wire.clientReceived().compactMap { part -> String? in
            if case .body(.byteBuffer(let buffer)) = part { return String(buffer: buffer) }
            return nil
        }
        #expect(bodies == ["one", "two"])
    }

    @Test func anotherSpellingOfTheGatedPathNeverReachesTheIdP() throws {
        let wire = try Wire()
        try wire.request("/o//authorize/?client_id=app&scope=admin:all")
        try wire.request("/second")
        #expect(try wire.upstreamReceived().isEmpty)
        let received = try wire.clientReceived()
        guard case .head(let head) = received.first else {
            Issue.record("the client received \(received)")
            return
        }
        #expect(head.status == .badRequest)
        #expect(head.headers["Connection"] == ["close"])
        #expect(!wire.client.isActive)
    }

    @Test func aSlowClientPausesTheIdPConnectionUntilItCatchesUp() throws {
        let wire = try Wire()
        try wire.request("/big")
        _ = try wire.upstreamReceived()
        wire.client.isWritable = false
        try wire.upstreamSends("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        #expect(Self.autoRead(wire.upstream) == false)
        wire.client.isWritable = true
        wire.client.pipeline.fireChannelWritabilityChanged()
        #expect(Self.autoRead(wire.upstream) == true)
    }

    @Test func aFullPipelineQueuePausesReadingFromTheClient() throws {
        let wire = try Wire(limits: .init(maximumQueuedParts: 4))
        try wire.request("/first")
        try wire.request("/a")
        #expect(Self.autoRead(wire.client) == nil)
        try wire.request("/b")
        #expect(Self.autoRead(wire.client) == false)
        _ = try wire.upstreamReceived()
        try wire.respond()
        try wire.respond()
        try wire.respond()
        #expect(Self.autoRead(wire.client) == true)
    }

    @Test func anIdPThatClosesBeforeAnsweringGivesA502AndTheConnectionGoesOn() throws {
        let wire = try Wire()
        try wire.request("/first")
        _ = try wire.upstreamReceived()
        try wire.upstream.close().wait()
        let received = try wire.clientReceived()
        guard case .head(let head) = received.first else {
            Issue.record("the client received \(received)")
            return
        }
        #expect(head.status == .badGateway)
        #expect(head.headers["Connection"].isEmpty)
        #expect(wire.client.isActive)
    }

    @Test func aClientAskingToCloseIsClosedAfterItsAnswer() throws {
        let wire = try Wire()
        try wire.request("/only", keepAlive: false)
        _ = try wire.upstreamReceived()
        try wire.respond()
        let received = try wire.clientReceived()
        guard case .head(let head) = received.first else {
            Issue.record("the client received \(received)")
            return
        }
        #expect(head.headers["Connection"] == ["close"])
        #expect(!wire.client.isActive)
        #expect(wire.pool.takeIdle()?.channel === wire.upstream)
    }

    @Test func onAnHTTP1ConnectionTheIdPsResponseIsRelayedFromItsBytes() throws {
        let wire = try Wire(http1: true)
        try wire.send("GET /a HTTP/1.1\r\nHost: gate.example\r\n\r\nHEAD /b HTTP/1.1\r\nHost: gate.example\r\n\r\n")
        let first = try wire.upstreamReceived()
        if case .head(let head) = first.first { #expect(head.uri == "/a") }
        // A chunked answer, in two reads, with a hop-by-hop field and one its Connection field names.
        try wire.upstreamSends("HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\n")
        try wire.upstreamSends("Transfer-Encoding: chunked\r\n\r\n3\r\none\r\n0\r\n\r\n")
        #expect(
            try wire.clientBytes()
                == "HTTP/1.1 200 OK\r\nX-Kept: yes\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n0\r\n\r\n")
        // The HEAD request went out next on the same upstream connection; its answer has no body.
        let second = try wire.upstreamReceived()
        if case .head(let head) = second.first { #expect(head.method == .HEAD && head.uri == "/b") }
        try wire.upstreamSends("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n")
        #expect(try wire.clientBytes() == "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n")
        #expect(wire.pool.takeIdle()?.channel === wire.upstream)
        #expect(wire.client.isActive)
    }

    @Test func anIdPResponseThatCannotBeReadIsA502AndItsConnectionIsNotReused() throws {
        let wire = try Wire(http1: true)
        try wire.send("GET /a HTTP/1.1\r\nHost: gate.example\r\n\r\n")
        _ = try wire.upstreamReceived()
        try wire.upstreamSends("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok")
        #expect(try wire.clientBytes().hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(!wire.upstream.isActive)
        #expect(wire.pool.takeIdle() == nil)
    }

    @Test func aChunkedRequestBodyIsChunkedAgainForTheIdP() throws {
        let wire = try Wire(http1: true)
        try wire.send("POST /form HTTP/1.1\r\nHost: gate.example\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab=c\r\n0\r\n\r\n")
        let sent = try wire.upstreamReceived()
        let body = sent.compactMap { part -> String? in
            if case .body(.byteBuffer(let bytes)) = part { return String(buffer: bytes) }
            return nil
        }
        #expect(body.joined() == "ab=c")
        if case .head(let head) = sent.first { #expect(head.headers["Transfer-Encoding"] == ["chunked"]) }
        guard case .end = sent.last else {
            Issue.record("the IdP did not see the body end: \(sent)")
            return
        }
    }

    @Test func anUpstreamConnectionWithBytesNobodyAskedForIsNotReused() throws {
        let wire = try Wire(http1: true)
        try wire.send("GET /a HTTP/1.1\r\nHost: gate.example\r\n\r\n")
        _ = try wire.upstreamReceived()
        // The answer, and the start of another one in the same read.
        try wire.upstreamSends("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 2")
        #expect(try wire.clientBytes() == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(wire.pool.takeIdle() == nil)
        #expect(!wire.upstream.isActive)
        #expect(wire.client.isActive)
    }
}
