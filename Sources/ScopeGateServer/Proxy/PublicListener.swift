import Foundation
import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle

/// What every client connection of the public listener shares.
final class ProxyShared: Sendable {
    let responder: ScopeGateResponder
    let pathGuard: PathGuard
    /// The upstream paths reachable at all; `nil` exposes every path.
    let exposure: Exposure?
    let pools: UpstreamPools
    let rewriter: DiscoveryRewriter
    let upstreamHost: String
    /// `public_url`'s host and port, the only host named to the IdP in forwarding headers.
    let publicHost: String
    let trustedProxies: Set<String>
    let secure: Bool
    let idleTimeout: Duration
    /// Where the codes of authorization responses to admitted requests are noted.
    let codes: IssuedCodes
    /// Requests by endpoint class and outcome (`/metrics`).
    let requests: RequestCounters?
    /// The IdP's latency, head to head (`/metrics`).
    let upstreamLatency: DurationHistogram?
    let logger: Logger

    init(
        responder: ScopeGateResponder, pools: UpstreamPools, codes: IssuedCodes, configuration: ScopeGateConfiguration,
        requests: RequestCounters? = nil, upstreamLatency: DurationHistogram? = nil, logger: Logger
    ) {
        self.responder = responder
        self.requests = requests
        self.upstreamLatency = upstreamLatency
        self.codes = codes
        self.pathGuard = responder.pathGuard
        self.exposure = configuration.exposedPaths.map(Exposure.init(prefixes:))
        self.pools = pools
        self.rewriter = DiscoveryRewriter(upstream: configuration.upstreamURL, public: configuration.publicURL)
        self.upstreamHost = UpstreamProxy.upstreamHost(configuration)
        self.publicHost = UpstreamProxy.authority(of: configuration.publicURL)
        self.trustedProxies = configuration.trustedProxies
        self.secure = configuration.publicURL.scheme?.lowercased() == "https"
        self.idleTimeout = configuration.idleTimeout
        self.logger = logger
    }

    func peer(_ channel: any Channel) -> ForwardingHeaders.Peer {
        let address = channel.remoteAddress?.ipAddress
        return .init(
            address: address, trusted: address.map(trustedProxies.contains) ?? false, scheme: secure ? "https" : "http")
    }
}

/// The public listener: a SwiftNIO HTTP/1.1 server (with TLS when configured, and HTTP/2 by ALPN with
/// `tls.http2`, each stream an exchange of its own) whose connections are handled by
/// `ProxyConnectionHandler`. Shuts down gracefully: stops accepting, lets requests in
/// flight finish, then closes.
struct PublicListener: Service {
    let shared: ProxyShared
    let address: ScopeGateConfiguration.Address
    let tls: TLSCertificates?
    let group: any EventLoopGroup
    let onListening: @Sendable (Int) async -> Void

    func run() async throws {
        let quiesce = ServerQuiescingHelper(group: group)
        let shared = self.shared
        let tls = self.tls
        let idleTimeout = TimeAmount.nanoseconds(Int64(shared.idleTimeout.seconds * 1e9))
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                if let tls, tls.http2 {
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.current))
                    }.flatMap {
                        channel.configureHTTP2SecureUpgrade(
                            h2ChannelConfigurator: { connection in
                                connection.eventLoop.makeCompletedFuture {
                                    try Self.addHTTP2Handlers(connection, shared: shared, idleTimeout: idleTimeout)
                                }
                            },
                            http1ChannelConfigurator: { connection in
                                connection.eventLoop.makeCompletedFuture {
                                    try Self.addHTTP1Handlers(
                                        connection.pipeline.syncOperations, shared: shared, idleTimeout: idleTimeout)
                                }
                            })
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls.current)) }
                    try Self.addHTTP1Handlers(sync, shared: shared, idleTimeout: idleTimeout)
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
        try await serve(channel, quiesce: quiesce)
    }

    /// An HTTP/2 connection's handlers after TLS: NIO's connection manager (a connection with no open
    /// stream for `listen.idle_timeout` is closed with GOAWAY; on shutdown, GOAWAY, then streams in
    /// progress may finish for as long as the longest upstream answer and a long-poll take), the
    /// HTTP/2 handler, and per stream the HTTP/1 codec, the guard and the connection handler.
    static func addHTTP2Handlers(_ connection: any Channel, shared: ProxyShared, idleTimeout: TimeAmount) throws {
        let sync = connection.pipeline.syncOperations
        let manager = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: connection.eventLoop,
            configuration: .init(maxIdleTime: idleTimeout, maxAge: nil, maxGraceTime: .seconds(90), keepalive: nil))
        _ = try sync.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: .init(), streamConfiguration: .init(),
            streamDelegate: manager.http2StreamDelegate
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                let streamSync = stream.pipeline.syncOperations
                try streamSync.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try streamSync.addHandler(HTTP2RequestGuard())
                try streamSync.addHandler(ProxyConnectionHandler(shared: shared))
            }
        }
        // After the HTTP/2 handler: it manages the connection by its frames.
        try sync.addHandler(manager)
    }

    /// An HTTP/1.1 connection's handlers after TLS; the connection closes after `idleTimeout` without a
    /// request.
    static func addHTTP1Handlers(
        _ sync: ChannelPipeline.SynchronousOperations, shared: ProxyShared, idleTimeout: TimeAmount
    ) throws {
        // ScopeGate's own request decoder and NIO's response encoder. The encoder is told no request's
        // method: only ScopeGate's own answers pass through it (relayed responses are written below
        // it), so NIO's queue of methods, which its own decoder fills, would grow with every relayed
        // request and an own answer would be framed for a request relayed before it (a `HEAD`'s empty
        // body for a `GET`); the handler frames answers to `HEAD` itself. NIO's protocol error handler
        // is not added: a request that cannot be read is answered by the connection's state machine,
        // which knows whether a response is under way. Nor is the outbound header validator: every
        // response header is either the IdP's, as ScopeGate's strict parser accepted it (no CR, LF or
        // NUL can be in it), ScopeGate's own answers' (HTTPFields, which never holds such bytes), or a
        // constant.
        try addHTTP1Handlers(sync, handler: ProxyConnectionHandler(shared: shared, idleTimeout: idleTimeout))
    }

    /// NIO's response encoder, ScopeGate's request decoder, which hands its parts to `handler`, and
    /// `handler`.
    static func addHTTP1Handlers(_ sync: ChannelPipeline.SynchronousOperations, handler: ProxyConnectionHandler) throws {
        try sync.addHandler(HTTPResponseEncoder())
        try sync.addHandler(HTTP1RequestDecoder(delivering: handler))
        try sync.addHandler(handler)
    }

    private func serve(_ channel: any Channel, quiesce: ServerQuiescingHelper) async throws {
        shared.logger.info(
            "public listener started", metadata: ["sg.listen": "\(address.host):\(channel.localAddress?.port ?? address.port)"])
        await onListening(channel.localAddress?.port ?? address.port)
        let drained = group.next().makePromise(of: Void.self)
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            quiesce.initiateShutdown(promise: drained)
        }
        if Task.isShuttingDownGracefully {
            try? await drained.futureResult.get()
        } else {
            drained.succeed()
        }
        shared.pools.closeAll()
    }
}
