import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Keep-alive connections to the IdP, one pool per event loop.
///
/// A client connection and the upstream connection that serves it live on the same event loop, so
/// forwarding between them is plain method calls: no locks, no thread hops, no task per request.
final class UpstreamPools: Sendable {
    private let pools: [ObjectIdentifier: UpstreamPool]

    init(group: any EventLoopGroup, target: UpstreamTarget) {
        var pools: [ObjectIdentifier: UpstreamPool] = [:]
        for eventLoop in group.makeIterator() {
            pools[ObjectIdentifier(eventLoop)] = UpstreamPool(eventLoop: eventLoop, target: target)
        }
        self.pools = pools
    }

    /// The pool of `eventLoop`; call it on that loop.
    func pool(for eventLoop: any EventLoop) -> UpstreamPool? {
        pools[ObjectIdentifier(eventLoop)]
    }

    /// Closes every idle connection.
    func closeAll() {
        for pool in pools.values { pool.eventLoop.execute { pool.closeIdle() } }
    }
}

/// Where and how to reach the IdP.
struct UpstreamTarget: Sendable {
    var host: String
    var port: Int
    var tls: TLSConfiguration?
    var serverHostname: String?
    var connectTimeout: TimeAmount
    var responseTimeout: TimeAmount
    /// Idle connections kept per event loop.
    var maximumIdle: Int = 128

    init(configuration: ScopeGateConfiguration) throws {
        let url = configuration.upstreamURL
        host = url.host ?? "127.0.0.1"
        let secure = url.scheme?.lowercased() == "https"
        port = url.port ?? (secure ? 443 : 80)
        tls = secure ? .makeClientConfiguration() : nil
        serverHostname = secure && !host.allSatisfy({ $0.isNumber || $0 == "." || $0 == ":" }) ? host : nil
        connectTimeout = .nanoseconds(Int64(configuration.connectTimeout.seconds * 1e9))
        responseTimeout = .nanoseconds(Int64(configuration.responseTimeout.seconds * 1e9))
    }
}

/// One event loop's idle upstream connections. Used only on its event loop.
final class UpstreamPool: @unchecked Sendable {
    let eventLoop: any EventLoop
    let target: UpstreamTarget
    private var idle: [any Channel] = []
    private let sslContext: NIOSSLContext?

    init(eventLoop: any EventLoop, target: UpstreamTarget) {
        self.eventLoop = eventLoop
        self.target = target
        self.sslContext = target.tls.flatMap { try? NIOSSLContext(configuration: $0) }
    }

    /// An idle connection, if one is open.
    func takeIdle() -> (any Channel)? {
        eventLoop.assertInEventLoop()
        while let channel = idle.popLast() {
            if channel.isActive { return channel }
        }
        return nil
    }

    /// An idle connection, or a new one.
    func acquire() -> EventLoopFuture<any Channel> {
        if let channel = takeIdle() { return eventLoop.makeSucceededFuture(channel) }
        return connect()
    }

    /// Takes back a connection whose exchange ended cleanly; closes it when the pool is full.
    func release(_ channel: any Channel) {
        eventLoop.assertInEventLoop()
        guard channel.isActive, idle.count < target.maximumIdle else {
            channel.close(promise: nil)
            return
        }
        idle.append(channel)
    }

    /// Forgets a connection that closed while idle.
    func forget(_ channel: any Channel) {
        idle.removeAll { $0 === channel }
    }

    func closeIdle() {
        for channel in idle { channel.close(promise: nil) }
        idle.removeAll()
    }

    private func connect() -> EventLoopFuture<any Channel> {
        let target = self.target
        let sslContext = self.sslContext
        let pool = self
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(target.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: target.serverHostname))
                    }
                    // Outbound header validation is off here: every header sent upstream is either the
                    // client's, as NIO's parser accepted it (no CR, LF or NUL can be in it), or ScopeGate's own.
                    try sync.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try sync.addHandler(IdleStateHandler(readTimeout: target.responseTimeout))
                    try sync.addHandler(UpstreamRelay(pool: pool))
                }
            }
            .connect(host: target.host, port: target.port)
    }
}

/// The upstream end of an exchange: hands the IdP's response to the client connection it serves.
final class UpstreamRelay: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let pool: UpstreamPool
    /// The client connection this upstream connection currently serves; `nil` while idle in the pool.
    var front: ProxyConnectionHandler?

    init(pool: UpstreamPool) { self.pool = pool }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard let front else {
            // The IdP spoke without being asked: the connection is in an unknown state.
            context.close(promise: nil)
            return
        }
        front.upstreamRead(part)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        front?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        front?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if let front {
                front.upstreamTimedOut()
            } else {
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pool.forget(context.channel)
        let front = self.front
        self.front = nil
        front?.upstreamClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
