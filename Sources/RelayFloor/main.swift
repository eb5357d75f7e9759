import NIOCore
import NIOPosix
import NIOHTTP1

// A byte relay: every client connection gets its own upstream connection; bytes are passed on as they come.
final class Side: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var peer: (any Channel)?
    var pending: [ByteBuffer] = []
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if let peer { peer.writeAndFlush(buffer, promise: nil) } else { pending.append(buffer) }
    }
    func channelInactive(context: ChannelHandlerContext) { peer?.close(promise: nil) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

final class HTTPFront: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    var peer: (any Channel)?
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): peer?.write(HTTPClientRequestPart.head(head), promise: nil)
        case .body(let b): peer?.write(HTTPClientRequestPart.body(.byteBuffer(b)), promise: nil)
        case .end(let t): peer?.writeAndFlush(HTTPClientRequestPart.end(t), promise: nil)
        }
    }
    func channelInactive(context: ChannelHandlerContext) { peer?.close(promise: nil) }
}
final class HTTPBack: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    let client: any Channel
    init(client: any Channel) { self.client = client }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): client.write(HTTPServerResponsePart.head(head), promise: nil)
        case .body(let b): client.write(HTTPServerResponsePart.body(.byteBuffer(b)), promise: nil)
        case .end(let t): client.writeAndFlush(HTTPServerResponsePart.end(t), promise: nil)
        }
    }
    func channelInactive(context: ChannelHandlerContext) { client.close(promise: nil) }
}

final class HalfFront: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    var peer: (any Channel)?
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            var buffer = context.channel.allocator.buffer(capacity: 256)
            buffer.writeString("\(head.method.rawValue) \(head.uri) HTTP/1.1\r\n")
            for (name, value) in head.headers { buffer.writeString(name); buffer.writeStaticString(": "); buffer.writeString(value); buffer.writeStaticString("\r\n") }
            buffer.writeStaticString("\r\n")
            peer?.write(buffer, promise: nil)
        case .body(let b): peer?.write(b, promise: nil)
        case .end: peer?.flush()
        }
    }
    func channelInactive(context: ChannelHandlerContext) { peer?.close(promise: nil) }
}
final class RawBack: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let below: ChannelHandlerContext
    init(below: ChannelHandlerContext) { self.below = below }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { below.write(data, promise: nil) }
    func channelReadComplete(context: ChannelHandlerContext) { below.flush() }
}

let args = CommandLine.arguments
let http = args.count > 3 && args[3] == "http"
let listenPort = Int(args[1])!
let upstreamPort = Int(args[2])!
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { client in
        if args.count > 3 && args[3] == "half" {
            let front = HalfFront()
            return client.eventLoop.makeCompletedFuture {
                try client.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
                try client.pipeline.syncOperations.addHandler(front)
                return try client.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
            }.flatMap { below in
                ClientBootstrap(group: client.eventLoop)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { upstream in
                        upstream.eventLoop.makeCompletedFuture { try upstream.pipeline.syncOperations.addHandler(RawBack(below: below)) }
                    }
                    .connect(host: "127.0.0.1", port: upstreamPort)
                    .map { front.peer = $0 }
            }
        }
        if http {
            let front = HTTPFront()
            return client.eventLoop.makeCompletedFuture {
                try client.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
                try client.pipeline.syncOperations.addHandler(front)
            }.flatMap {
                ClientBootstrap(group: client.eventLoop)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { upstream in
                        upstream.eventLoop.makeCompletedFuture {
                            try upstream.pipeline.syncOperations.addHTTPClientHandlers()
                            try upstream.pipeline.syncOperations.addHandler(HTTPBack(client: client))
                        }
                    }
                    .connect(host: "127.0.0.1", port: upstreamPort)
                    .map { front.peer = $0 }
            }
        }
        let front = Side()
        return client.pipeline.addHandler(front).flatMap {
            ClientBootstrap(group: client.eventLoop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { upstream in
                    let back = Side()
                    back.peer = client
                    return upstream.pipeline.addHandler(back)
                }
                .connect(host: "127.0.0.1", port: upstreamPort)
                .map { upstream in
                    front.peer = upstream
                    for buffer in front.pending { upstream.write(buffer, promise: nil) }
                    upstream.flush()
                    front.pending = []
                }
        }
    }
    .bind(host: "127.0.0.1", port: listenPort).wait()
try server.closeFuture.wait()
