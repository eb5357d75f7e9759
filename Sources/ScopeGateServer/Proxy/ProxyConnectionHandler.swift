import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import ScopeGateCore

/// One client connection on the public listener.
///
/// Pass-through requests are forwarded at the channel level: the head is rewritten, body parts flow to
/// a pooled upstream connection on the same event loop as they arrive, and the response flows back the
/// same way, with backpressure in both directions and no task per request. Requests ScopeGate answers
/// itself (the gated endpoint, its own pages, discovery) are collected, bounded, and handed to the
/// async `ScopeGateResponder`; when the gate admits a request, it too is forwarded at the channel level.
///
/// Pipelined requests (HTTP/1.1 §9.3.2) are queued and handled one at a time, in order: a request that
/// arrives while the previous one is still being answered waits. (NIO's `HTTPServerPipelineHandler` would
/// do the same, but it stops and restarts reading around every request, two `epoll_ctl` calls each.)
final class ProxyConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The largest body read for a request ScopeGate answers itself.
    static let maximumCollectedBody = 64 * 1024
    /// Body bytes buffered while the upstream connection is being made, before reading pauses.
    static let maximumPendingBody = 1 << 20
    /// Parts of pipelined requests queued before reading pauses.
    static let maximumQueuedParts = 64

    private struct Exchange {
        var upstream: (any Channel)?
        var relay: UpstreamRelay?
        var pending: [HTTPClientRequestPart] = []
        var pendingBytes = 0
        var requestEnded = false
        var responseStarted = false
        var clientKeepAlive: Bool
        var upstreamKeepAlive = true
        /// For an admitted authorization request: what it asked for, noted with the code the IdP answers.
        /// Boxed: an exchange is copied in and out of `state` on every event, and most carry none.
        var authorization: AuthorizationBox?
    }

    final class AuthorizationBox: Sendable {
        let value: IssuedCodes.Authorization
        init(_ value: IssuedCodes.Authorization) { self.value = value }
    }

    private enum State {
        case idle
        case forwarding(Exchange)
        case collecting(HTTPRequestHead, ByteBuffer, ScopeGateResponder.Destination)
        /// The gate is answering asynchronously; a pipelined next request waits in the queue.
        case answering
        /// An answer was given before the request ended; the rest is discarded and the connection closed.
        case refusing
    }

    private let shared: ProxyShared
    private var state = State.idle
    private var context: ChannelHandlerContext?
    /// This connection's event loop's upstream pool, and its peer: fixed for the connection's life.
    private var pool: UpstreamPool?
    private var peer = ForwardingHeaders.Peer(address: nil, trusted: false, scheme: "http")
    /// Whether a burst of client reads is under way; writes to the upstream are then flushed once, at
    /// its end, instead of one system call per part.
    private var inReadBurst = false
    /// Whether reading from the client is paused for backpressure.
    private var clientPaused = false
    /// Whether reading from the current upstream connection is paused for backpressure.
    private var upstreamPaused = false
    /// Parts of pipelined requests that arrived while an earlier request was being answered.
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    /// Whether the server is shutting down: the connection closes once the current request is answered.
    private var quiescing = false

    /// Pauses or resumes reading from the client; only a change costs a call.
    private func readClient(_ on: Bool, _ channel: any Channel) {
        guard clientPaused == on else { return }
        clientPaused = !on
        channel.setOption(.autoRead, value: on).whenComplete { _ in }
    }

    /// Pauses or resumes reading from the upstream connection.
    private func readUpstream(_ on: Bool, _ upstream: any Channel) {
        guard upstreamPaused == on else { return }
        upstreamPaused = !on
        upstream.setOption(.autoRead, value: on).whenComplete { _ in }
    }

    init(shared: ProxyShared) { self.shared = shared }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.pool = shared.pools.pool(for: context.eventLoop)
        self.peer = shared.peer(context.channel)
    }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    // MARK: - Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inReadBurst = true
        let part = unwrapInboundIn(data)
        if !queued.isEmpty || mustWait(part) {
            queued.append(part)
            if queued.count >= Self.maximumQueuedParts { readClient(false, context.channel) }
            return
        }
        handle(part, context: context)
    }

    /// Whether `part` begins a request while the previous one is still being answered.
    private func mustWait(_ part: HTTPServerRequestPart) -> Bool {
        guard case .head = part else { return false }
        switch state {
        case .idle, .refusing: return false
        case .forwarding, .collecting, .answering: return true
        }
    }

    /// The connection is ready for its next request: handle what was pipelined, or close if the server
    /// is shutting down.
    private func nextRequest(context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        if quiescing, queued.isEmpty {
            state = .refusing
            context.close(promise: nil)
            return
        }
        while let part = queued.first, !mustWait(part) {
            queued.removeFirst()
            handle(part, context: context)
        }
        if case .forwarding(let exchange) = state { exchange.upstream?.flush() }
        if queued.count < Self.maximumQueuedParts { readClient(true, context.channel) }
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch (part, state) {
        case (.head(let head), .idle):
            route(head, context: context)
        case (.body(let buffer), .forwarding(var exchange)):
            if let upstream = exchange.upstream {
                upstream.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
            } else {
                exchange.pendingBytes += buffer.readableBytes
                exchange.pending.append(.body(.byteBuffer(buffer)))
                if exchange.pendingBytes > Self.maximumPendingBody { readClient(false, context.channel) }
            }
            state = .forwarding(exchange)
        case (.end, .forwarding(var exchange)):
            exchange.requestEnded = true
            if let upstream = exchange.upstream {
                upstream.write(HTTPClientRequestPart.end(nil), promise: nil)
            } else {
                exchange.pending.append(.end(nil))
            }
            state = .forwarding(exchange)
        case (.body(var buffer), .collecting(let head, var body, let destination)):
            guard body.readableBytes + buffer.readableBytes <= Self.maximumCollectedBody else {
                refuse(
                    .payloadTooLarge, "the request body is larger than \(Self.maximumCollectedBody) bytes", counting: .init(destination),
                    context: context)
                return
            }
            body.writeBuffer(&buffer)
            state = .collecting(head, body, destination)
        case (.end, .collecting(let head, let body, let destination)):
            answer(head, body: body, destination: destination, context: context)
        case (_, .refusing):
            return
        default:
            // A part out of order cannot come from NIO's HTTP decoder; refuse it anyway.
            state = .refusing
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBurst = false
        if case .forwarding(let exchange) = state { exchange.upstream?.flush() }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .forwarding(let exchange) = state, let upstream = exchange.upstream {
            readUpstream(context.channel.isWritable, upstream)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .forwarding(let exchange) = state {
            exchange.relay?.front = nil
            exchange.upstream?.close(promise: nil)
        }
        state = .refusing
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Close connections that sit idle between requests; a request in progress (an upload, a slow
        // IdP, a long-poll) is governed by its own timeouts.
        if event is IdleStateHandler.IdleStateEvent {
            if case .idle = state, queued.isEmpty { context.close(promise: nil) }
            return
        }
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            if case .idle = state, queued.isEmpty { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: - Routing

    /// The longest request target accepted; longer ones get `414` before anything else happens.
    static let maximumTargetLength = 8 * 1024

    private func route(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let target = RequestTarget(head.uri)
        guard target.text.utf8.count <= Self.maximumTargetLength else {
            refuse(.uriTooLong, "the request target is longer than \(Self.maximumTargetLength) bytes", counting: .malformed, context: context)
            return
        }
        guard target.text.utf8.first == UInt8(ascii: "/"), !target.hasFragment else {
            refuse(.badRequest, "the request target must be an absolute path", counting: .malformed, context: context)
            return
        }
        // Only `chunked` is relayed as a transfer coding: a body under any other coding would be passed on
        // with its framing changed, and a coding list is a classic request-smuggling shape.
        // (Most requests carry no Transfer-Encoding: only those pay for splitting its value.)
        let hasTransferEncoding = head.headers.contains(name: "transfer-encoding")
        if hasTransferEncoding {
            let codings = head.headers[canonicalForm: "transfer-encoding"]
            if codings.count != 1 || codings[0].lowercased() != "chunked" {
                refuse(.notImplemented, "only the chunked transfer coding is accepted", counting: .malformed, context: context)
                return
            }
        }
        let path = target.path
        // Compared by bytes (`hasPrefix` on a `Substring` compares characters).
        if path.utf8.starts(with: ScopeGateResponder.ownPrefix.utf8) {
            state = .collecting(head, ByteBuffer(), .own)
            return
        }
        let framing = ForwardingHeaders.BodyFraming(head, hasTransferEncoding: hasTransferEncoding)
        switch shared.pathGuard.classify(path) {
        case .gated(let endpoint):
            // A GET without body framing has no body: NIO's decoder sends its end next. When its scopes
            // are all granted it is admitted here, on the event loop, and forwarded like any other
            // request; anything else (a body, a decision to wait for, a refusal) takes the full path.
            if endpoint == .authorization, case .GET = head.method, framing == .none,
                let forward = shared.responder.authorization.admitWithoutWaiting(target: target)
            {
                shared.requests?.count(.authorization, .forwarded)
                startForwarding(
                    head, target: forward.target, body: .streamed(.none), authorization: forward.authorization, context: context)
                return
            }
            state = .collecting(head, ByteBuffer(), .gated(endpoint))
        case .ambiguous:
            refuse(
                .badRequest,
                "invalid_request: this path is another spelling of an endpoint ScopeGate gates; use its exact path",
                counting: .ambiguous, context: context)
        case .other:
            if let exposure = shared.exposure, !exposure.allows(path) {
                refuse(
                    .notFound, "not found: ScopeGate does not expose this path of the identity provider", counting: .passThrough,
                    context: context)
                return
            }
            shared.requests?.count(.passThrough, .forwarded)
            startForwarding(head, target: target.text, body: .streamed(framing), context: context)
        }
    }

    /// Answers with a short plain-text error and closes the connection: the rest of the request, if
    /// any, is never read, so nothing of it can be mistaken for a next request.
    private func refuse(
        _ status: HTTPResponseStatus, _ message: String, counting endpoint: RequestCounters.Endpoint? = nil,
        context: ChannelHandlerContext
    ) {
        if let endpoint { shared.requests?.count(endpoint, .refused) }
        state = .refusing
        var headers = HTTPHeaders()
        let body = ByteBuffer(string: message + "\n")
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [channel = context.channel] _ in
            channel.close(promise: nil)
        }
    }

    // MARK: - Forwarding

    /// How the body of a forwarded request is sent.
    private enum ForwardBody {
        /// The client's body, streamed as it arrives, framed as the client declared.
        case streamed(ForwardingHeaders.BodyFraming)
        /// A complete body ScopeGate built (`nil`: none); the client's request has been read to its end.
        case complete(ByteBuffer?)
    }

    /// Starts an exchange with the upstream.
    private func startForwarding(
        _ head: HTTPRequestHead, target: String, body: ForwardBody, authorization: IssuedCodes.Authorization? = nil,
        context: ChannelHandlerContext
    ) {
        let framing: ForwardingHeaders.BodyFraming
        switch body {
        case .streamed(let declared): framing = declared
        case .complete(let bytes): framing = bytes.map { .length($0.readableBytes) } ?? .none
        }
        var headers = ForwardingHeaders.upstreamRequest(
            from: head.headers, peer: peer, host: shared.upstreamHost, publicHost: shared.publicHost, bodyFraming: framing)
        if case .complete(.some) = body {
            // A form ScopeGate wrote: plain form encoding, whatever the client declared.
            headers.replaceOrAdd(name: "Content-Type", value: "application/x-www-form-urlencoded")
        }
        var exchange = Exchange(clientKeepAlive: head.isKeepAlive, authorization: authorization.map(AuthorizationBox.init))
        exchange.pending.append(.head(HTTPRequestHead(version: .http1_1, method: head.method, uri: target, headers: headers)))
        if case .complete(let bytes) = body {
            if let bytes { exchange.pending.append(.body(.byteBuffer(bytes))) }
            exchange.pending.append(.end(nil))
            exchange.requestEnded = true
        }
        state = .forwarding(exchange)
        guard let pool else {
            upstreamFailed(status: .badGateway)
            return
        }
        if let idle = pool.takeIdle() {
            connected(.success(idle), pool: pool)
            return
        }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        pool.acquire().whenComplete { result in
            bound.value.connected(result, pool: pool)
        }
    }

    private func connected(_ result: Result<any Channel, any Error>, pool: UpstreamPool) {
        switch result {
        case .failure(let error):
            shared.logger.warning("upstream unreachable", metadata: ["sg.upstream.error": "\(error)"])
            upstreamFailed(status: .badGateway)
        case .success(let upstream):
            guard case .forwarding(var exchange) = state, exchange.upstream == nil, let context else {
                pool.release(upstream)
                return
            }
            guard let relay = try? upstream.pipeline.syncOperations.handler(type: UpstreamRelay.self) else {
                upstream.close(promise: nil)
                upstreamFailed(status: .badGateway)
                return
            }
            relay.front = self
            exchange.upstream = upstream
            exchange.relay = relay
            for part in exchange.pending { upstream.write(part, promise: nil) }
            if !inReadBurst { upstream.flush() }
            exchange.pending = []
            exchange.pendingBytes = 0
            state = .forwarding(exchange)
            upstreamPaused = false
            readClient(exchange.requestEnded || upstream.isWritable, context.channel)
        }
    }

    func upstreamRead(_ part: HTTPClientResponsePart, upstream: any Channel) {
        guard case .forwarding(var exchange) = state, let context else { return }
        switch part {
        case .head(let response):
            if let authorization = exchange.authorization?.value, let location = response.headers.first(name: "location"),
                authorization.isRedirectToClient(location), let code = IssuedCodes.code(inLocation: location)
            {
                shared.codes.record(code, authorization)
                if let hold = authorization.onceHoldID {
                    shared.responder.authorization.service.spentReleases.spend(hold, at: Date())
                }
            }
            var headers = ForwardingHeaders.downstreamResponse(
                from: response.headers, rewriteLocation: shared.rewriter.rewrite(url:))
            exchange.upstreamKeepAlive = response.isKeepAlive
            if !exchange.clientKeepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
            exchange.responseStarted = true
            state = .forwarding(exchange)
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
        case .body(let buffer):
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end:
            finishExchange(exchange, context: context)
        }
    }

    func upstreamReadComplete() {
        guard let context, case .forwarding(let exchange) = state else { return }
        context.flush()
        if !context.channel.isWritable, let upstream = exchange.upstream {
            readUpstream(false, upstream)
        }
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        guard let context, case .forwarding(let exchange) = state, !exchange.requestEnded else { return }
        readClient(writable, context.channel)
    }

    func upstreamTimedOut(upstream: any Channel) {
        guard case .forwarding(let exchange) = state else {
            upstream.close(promise: nil)
            return
        }
        // A slow upload is not a slow IdP: only time out while waiting for the IdP to answer.
        guard exchange.requestEnded else { return }
        shared.logger.warning("upstream timed out")
        exchange.relay?.front = nil
        upstream.close(promise: nil)
        upstreamFailed(status: .gatewayTimeout)
    }

    func upstreamClosed() {
        guard case .forwarding = state else { return }
        upstreamFailed(status: .badGateway)
    }

    /// The upstream failed: answer 502/504 if nothing was sent yet, otherwise cut the connection.
    private func upstreamFailed(status: HTTPResponseStatus) {
        guard case .forwarding(let exchange) = state, let context else { return }
        exchange.relay?.front = nil
        if exchange.responseStarted {
            state = .refusing
            context.close(promise: nil)
            return
        }
        let message = status == .gatewayTimeout
            ? "the identity provider did not answer in time" : "the identity provider cannot be reached"
        if exchange.requestEnded && exchange.clientKeepAlive {
            state = .idle
            writeSimple(status, message, keepAlive: true, context: context)
            nextRequest(context: context)
        } else {
            refuse(status, message, context: context)
        }
    }

    private func finishExchange(_ exchange: Exchange, context: ChannelHandlerContext) {
        exchange.relay?.front = nil
        if let upstream = exchange.upstream {
            if upstreamPaused { readUpstream(true, upstream) }
            if exchange.requestEnded && exchange.upstreamKeepAlive, let pool {
                pool.release(upstream)
            } else {
                upstream.close(promise: nil)
            }
        }
        endResponse(keepAlive: exchange.clientKeepAlive && exchange.requestEnded, context: context)
    }

    /// Ends the response: the connection then takes its next request (also when backpressure paused
    /// reading in the middle of this one), or closes once the end is written.
    private func endResponse(keepAlive: Bool, context: ChannelHandlerContext) {
        state = keepAlive ? .idle : .refusing
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            nextRequest(context: context)
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [channel = context.channel] _ in
                channel.close(promise: nil)
            }
        }
    }

    private func writeSimple(_ status: HTTPResponseStatus, _ message: String, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        let body = ByteBuffer(string: message + "\n")
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Cache-Control", value: "no-store")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    // MARK: - Answers from the gate

    private func answer(
        _ head: HTTPRequestHead, body: ByteBuffer, destination: ScopeGateResponder.Destination, context: ChannelHandlerContext
    ) {
        let keepAlive = head.isKeepAlive
        state = .answering
        let request: Request
        do {
            guard let method = HTTPRequest.Method(head.method.rawValue) else { throw GateError(.invalidRequest, "unknown method") }
            let requestHead = HTTPRequest(
                method: method, scheme: shared.secure ? "https" : "http", authority: head.headers.first(name: "host"),
                path: head.uri, headerFields: HTTPFields(head.headers, splitCookie: false))
            request = Request(head: requestHead, body: .init(buffer: body))
        } catch {
            refuse(.badRequest, "the request cannot be read", counting: .init(destination), context: context)
            return
        }
        let gateContext = GateRequestContext(source: .init(channel: context.channel, logger: shared.logger))
        let channel = context.channel
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let responder = shared.responder
        let requests = shared.requests
        let isHead = head.method == .HEAD
        Task {
            switch await responder.answer(request, context: gateContext, destination: destination) {
            case .forward(let forward):
                requests?.count(.init(destination), .forwarded)
                channel.eventLoop.execute {
                    guard let context = bound.value.context else { return }
                    bound.value.startForwarding(
                        head, target: forward.target, body: .complete(forward.body), authorization: forward.authorization,
                        context: context)
                }
            case .respond(let response):
                requests?.count(.init(destination), .init(status: response.status.code))
                do {
                    var responseHead = HTTPResponseHead(response.head)
                    if let length = response.body.contentLength, responseHead.headers.first(name: "content-length") == nil {
                        responseHead.headers.add(name: "Content-Length", value: String(length))
                    }
                    if !keepAlive { responseHead.headers.replaceOrAdd(name: "Connection", value: "close") }
                    try await channel.writeAndFlush(HTTPServerResponsePart.head(responseHead))
                    if !isHead { try await response.body.write(ChannelBodyWriter(channel: channel)) }
                    channel.eventLoop.execute { bound.value.finishAnswer(keepAlive: keepAlive) }
                } catch {
                    channel.close(promise: nil)
                }
            }
        }
    }

    private func finishAnswer(keepAlive: Bool) {
        guard let context, case .answering = state else { return }
        endResponse(keepAlive: keepAlive, context: context)
    }
}

/// Writes a Hummingbird response body to a channel, waiting for each write (backpressure).
struct ChannelBodyWriter: ResponseBodyWriter {
    let channel: any Channel

    mutating func write(_ buffer: ByteBuffer) async throws {
        try await channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer)))
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
