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

/// An open connection to the IdP and the handler that relays its responses. A class: it is handed
/// through the client connection's state machine on every event, one reference to count.
final class UpstreamConnection {
    let channel: any Channel
    let relay: UpstreamRelay

    init(channel: any Channel, relay: UpstreamRelay) {
        self.channel = channel
        self.relay = relay
    }
}

/// One event loop's idle upstream connections. Used only on its event loop.
final class UpstreamPool: @unchecked Sendable {
    let eventLoop: any EventLoop
    let target: UpstreamTarget
    private var idle: [UpstreamConnection] = []
    private let sslContext: NIOSSLContext?

    init(eventLoop: any EventLoop, target: UpstreamTarget) {
        self.eventLoop = eventLoop
        self.target = target
        self.sslContext = target.tls.flatMap { try? NIOSSLContext(configuration: $0) }
    }

    /// An idle connection, if one is open.
    func takeIdle() -> UpstreamConnection? {
        eventLoop.assertInEventLoop()
        while let connection = idle.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    /// An idle connection, or a new one.
    func acquire() -> EventLoopFuture<UpstreamConnection> {
        if let connection = takeIdle() { return eventLoop.makeSucceededFuture(connection) }
        return connect()
    }

    /// Takes back a connection whose exchange ended cleanly; closes it when the pool is full.
    func release(_ connection: UpstreamConnection) {
        eventLoop.assertInEventLoop()
        // A connection holding bytes of an answer nobody asked for yet is not reused.
        guard connection.channel.isActive, connection.relay.isIdle, idle.count < target.maximumIdle else {
            connection.channel.close(promise: nil)
            return
        }
        idle.append(connection)
    }

    /// Forgets a connection that closed while idle.
    func forget(_ channel: any Channel) {
        idle.removeAll { $0.channel === channel }
    }

    func closeIdle() {
        for connection in idle { connection.channel.close(promise: nil) }
        idle.removeAll()
    }

    private func connect() -> EventLoopFuture<UpstreamConnection> {
        let target = self.target
        let sslContext = self.sslContext
        let relay = UpstreamRelay(pool: self, responseTimeout: target.responseTimeout)
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(target.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: target.serverHostname))
                    }
                    // No HTTP codec of NIO's: the relay writes requests and reads responses itself, and
                    // keeps the response timeout.
                    try sync.addHandler(relay)
                }
            }
            .connect(host: target.host, port: target.port)
            .map { UpstreamConnection(channel: $0, relay: relay) }
    }
}

/// The upstream end of an exchange: writes the client's request to the IdP and hands the IdP's
/// response, read by `UpstreamResponseParser`, to the client connection it serves.
final class UpstreamRelay: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let pool: UpstreamPool
    /// The client connection this upstream connection currently serves; `nil` while idle in the pool.
    var front: ProxyConnectionHandler?
    private var context: ChannelHandlerContext?
    private var parser = UpstreamResponseParser()
    /// Bytes of a response part that has not all arrived.
    private var received: ByteBuffer?
    /// Whether the request being written has a chunked body.
    private var requestChunked = false
    /// The response timeout while serving an exchange; the idle timeout while in the pool.
    private let timer: ReadTimer

    init(pool: UpstreamPool, responseTimeout: TimeAmount) {
        self.pool = pool
        self.timer = ReadTimer(timeout: responseTimeout)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { startTimer(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startTimer(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        timer.stop()
    }

    private func startTimer(_ context: ChannelHandlerContext) {
        // A strong reference, dropped by `stop` when the handler leaves the pipeline (a weak one would
        // slow every retain and release of the relay).
        timer.start(on: context.eventLoop) {
            if let front = self.front {
                front.upstreamTimedOut()
            } else {
                self.context?.close(promise: nil)
            }
        }
    }

    /// Whether the connection is between exchanges with nothing unread.
    var isIdle: Bool { parser.isIdle && received == nil }

    // MARK: - The request

    /// Writes a part of the client's request to the IdP (flushed by the caller).
    func write(_ part: UpstreamRequestPart) {
        guard let context else { return }
        switch part {
        case .head(let head):
            // The IdP's time to answer counts from the request, not from the connection's last read.
            timer.restart()
            parser.requestSent(method: head.method)
            requestChunked = head.chunked
            context.write(wrapOutboundOut(head.bytes), promise: nil)
        case .body(let bytes):
            guard bytes.readableBytes > 0 else { return }
            if requestChunked {
                context.write(wrapOutboundOut(HTTP1Writer.chunkLine(bytes.readableBytes, allocator: context.channel.allocator)), promise: nil)
                context.write(wrapOutboundOut(bytes), promise: nil)
                context.write(wrapOutboundOut(HTTP1Writer.crlf), promise: nil)
            } else {
                context.write(wrapOutboundOut(bytes), promise: nil)
            }
        case .end:
            if requestChunked { context.write(wrapOutboundOut(HTTP1Writer.lastChunk), promise: nil) }
        }
    }

    // MARK: - The response

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if var earlier = received {
            received = nil
            earlier.writeBuffer(&buffer)
            buffer = earlier
        }
        do {
            while let part = try parser.next(&buffer) {
                guard let front else {
                    // The IdP spoke without being asked: the connection is in an unknown state.
                    context.close(promise: nil)
                    return
                }
                front.upstreamRead(part)
            }
        } catch {
            front?.upstreamMalformed(error.reason)
            context.close(promise: nil)
            return
        }
        guard buffer.readableBytes > 0 else { return }
        guard front != nil else {
            // Bytes after the answer, with no exchange waiting: the IdP spoke without being asked.
            context.close(promise: nil)
            return
        }
        received = buffer
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        timer.restart()
        front?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        front?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer.stop()
        pool.forget(context.channel)
        // A body that runs until the IdP closes has ended now.
        if parser.readsUntilClose, let front { front.upstreamRead(.end) }
        let front = self.front
        self.front = nil
        front?.upstreamClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
