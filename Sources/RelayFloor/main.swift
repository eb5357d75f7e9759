import NIOCore
import NIOPosix

// The floor of the proxy benchmark (`benchmarks/proxy.py`): a TCP relay on SwiftNIO, one event loop,
// each client connection given its own connection to the upstream, bytes passed on as they arrive. No
// HTTP is read or written: what it costs per request is what SwiftNIO's sockets and event loop cost a
// proxy, against which ScopeGate's own HTTP work shows.
//
//     relay-floor <listen port> <upstream port>      (both on 127.0.0.1)

final class Relay: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var peer: (any Channel)?
    var early: [ByteBuffer] = []

    init(peer: (any Channel)? = nil) { self.peer = peer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if let peer { peer.writeAndFlush(buffer, promise: nil) } else { early.append(buffer) }
    }

    func channelInactive(context: ChannelHandlerContext) { peer?.close(promise: nil) }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

let arguments = CommandLine.arguments
guard arguments.count == 3, let listenPort = Int(arguments[1]), let upstreamPort = Int(arguments[2]) else {
    print("usage: relay-floor <listen port> <upstream port>")
    exit(64)
}
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { client in
        let front = Relay()
        return client.pipeline.addHandler(front).flatMap {
            ClientBootstrap(group: client.eventLoop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { $0.pipeline.addHandler(Relay(peer: client)) }
                .connect(host: "127.0.0.1", port: upstreamPort)
                .map { upstream in
                    front.peer = upstream
                    for buffer in front.early { upstream.write(buffer, promise: nil) }
                    upstream.flush()
                    front.early = []
                }
        }
    }
    .bind(host: "127.0.0.1", port: listenPort).wait()
try server.closeFuture.wait()
