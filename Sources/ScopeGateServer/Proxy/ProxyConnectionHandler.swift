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

    /// An upstream connection serving this client connection, and its relay handler.
    typealias Upstream = UpstreamConnection
    typealias StateMachine = ProxyConnectionStateMachine<Upstream>

    private let shared: ProxyShared
    private var machine: StateMachine
    private var context: ChannelHandlerContext?
    /// This connection's event loop's upstream pool, and its peer: fixed for the connection's life.
    private var pool: UpstreamPool?
    private var peer = ForwardingHeaders.Peer(address: nil, trusted: false, scheme: "http")
    /// The forwarding fields of every request on this connection, unless its peer is a trusted proxy.
    private var forwardingFields: ByteBuffer?
    /// When the current exchange's head went to the IdP, until its response head comes back.
    private var exchangeStarted: NIODeadline?
    /// On an HTTP/1 connection, the context of NIO's response encoder: relayed responses are written
    /// below it, as bytes (`HTTP1Writer`); ScopeGate's own answers go through it. `nil` on a stream
    /// of an HTTP/2 connection, where every response goes through the stream's codec.
    private var rawOutput: ChannelHandlerContext?
    /// How the relayed response being written is framed, while one is (`rawOutput` only).
    private var rawFraming: HTTP1Writer.Framing?
    /// The relayed response's head and what followed it, not yet written: a small response goes out
    /// as one buffer, in one write.
    private var rawPending: ByteBuffer?
    /// The most a response is gathered into `rawPending`.
    static let gatheredResponseLimit = 16 * 1024
    /// The last request head written for the IdP and the last response written to the client, kept to
    /// write the next ones into: once NIO has written them, their storage is this handler's alone and is
    /// reused (`clear`), not allocated again. (A buffer still being written is copied on write, as ever.)
    private var requestScratch: ByteBuffer?
    private var responseScratch: ByteBuffer?
    /// A buffer larger than this is not kept for reuse.
    static let scratchLimit = 4 * 1024

    private static func reuse(_ scratch: inout ByteBuffer?, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard var buffer = scratch else { return allocator.buffer(capacity: 512) }
        scratch = nil
        buffer.clear()
        return buffer
    }

    private static func keep(_ buffer: ByteBuffer, as scratch: inout ByteBuffer?) {
        if buffer.capacity <= scratchLimit { scratch = buffer }
    }

    /// Closes the connection when it sits idle between requests (`listen.idle_timeout`; HTTP/1 only:
    /// an HTTP/2 connection's idle time is its connection manager's).
    private let idleTimer: ReadTimer?

    init(shared: ProxyShared, limits: StateMachine.Limits = .init(), idleTimeout: TimeAmount? = nil) {
        self.shared = shared
        self.machine = StateMachine(limits: limits)
        self.idleTimer = idleTimeout.map(ReadTimer.init(timeout:))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { startIdleTimer(context) }
        self.pool = shared.pools.pool(for: context.eventLoop)
        self.peer = shared.peer(context.channel)
        if !peer.trusted {
            forwardingFields = ForwardingHeaders.forwardingFields(
                peer: peer, publicHost: shared.publicHost, allocator: context.channel.allocator)
        }
        self.rawOutput = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.rawOutput = nil
        idleTimer?.stop()
    }

    func channelActive(context: ChannelHandlerContext) {
        startIdleTimer(context)
        context.fireChannelActive()
    }

    /// Reads alone mark a connection as busy (as NIO's `IdleStateHandler` with a read timeout): a
    /// response still being written when the timer fires is not cut, since only a connection with no
    /// request in progress is closed.
    private func startIdleTimer(_ context: ChannelHandlerContext) {
        // A strong reference, dropped by `stop` when the handler leaves the pipeline: a weak one would
        // give the handler a side table and slow every retain and release of it.
        idleTimer?.start(on: context.eventLoop) {
            guard let context = self.context else { return }
            self.run(self.machine.idleTimeout(), context: context)
        }
    }

    // MARK: - Events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        run(machine.read(unwrapInboundIn(data)), context: context)
    }

    /// A part of a request from the HTTP/1 decoder before this handler (`HTTP1RequestDecoder`).
    func received(_ part: HTTPServerRequestPart) {
        guard let context else { return }
        run(machine.read(part), context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        idleTimer?.restart()
        run(machine.readComplete(), context: context)
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        run(machine.clientWritabilityChanged(context.channel.isWritable), context: context)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.stop()
        run(machine.clientClosed(), context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            run(machine.malformed(), context: context)
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            run(machine.quiesce(), context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func upstreamRead(_ part: UpstreamResponsePart) {
        guard let context else { return }
        switch part {
        case .head(let head):
            if let started = exchangeStarted {
                exchangeStarted = nil
                shared.upstreamLatency?.record(.nanoseconds((NIODeadline.now() - started).nanoseconds))
            }
            run(machine.upstreamResponseHead(head), context: context)
        case .body(let buffer): run(machine.upstreamResponseBody(buffer), context: context)
        case .end: run(machine.upstreamResponseEnd(), context: context)
        }
    }

    /// The IdP's response could not be read; the upstream connection closes next (`upstreamClosed`).
    func upstreamMalformed(_ reason: String) {
        shared.logger.warning("the identity provider's response cannot be read", metadata: ["sg.upstream.error": "\(reason)"])
    }

    func upstreamReadComplete() {
        guard let context else { return }
        run(machine.upstreamReadComplete(clientWritable: context.channel.isWritable), context: context)
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        guard let context else { return }
        run(machine.upstreamWritabilityChanged(writable), context: context)
    }

    func upstreamTimedOut() {
        guard let context else { return }
        run(machine.upstreamTimedOut(), context: context)
    }

    func upstreamClosed() {
        guard let context else { return }
        run(machine.upstreamClosed(), context: context)
    }

    // MARK: - Actions

    private func run(_ action: StateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .route(let head):
            run(machine.routed(route(head)), context: context)
        case .connectUpstream:
            connectUpstream(context: context)
        case .writeUpstream(let upstream, let part):
            upstream.relay.write(part)
        case .startExchange(let upstream, let pending, let flush, let readClient):
            if shared.upstreamLatency != nil { exchangeStarted = .now() }
            upstream.relay.front = self
            upstream.relay.write(.head(pending.head))
            Self.keep(pending.head.bytes, as: &requestScratch)
            for part in pending.body { upstream.relay.write(.body(part)) }
            if pending.ended { upstream.relay.write(.end) }
            if flush { upstream.channel.flush() }
            if let readClient { setAutoRead(context.channel, readClient) }
        case .returnUpstream(let upstream):
            pool?.release(upstream)
        case .flushUpstream(let upstream, let readClient):
            upstream.channel.flush()
            if let readClient { setAutoRead(context.channel, readClient) }
        case .readClient(let on):
            setAutoRead(context.channel, on)
        case .readUpstream(let upstream, let on):
            setAutoRead(upstream.channel, on)
        case .flushClient(let pauseUpstream):
            writeRawPending()
            context.flush()
            if let pauseUpstream { setAutoRead(pauseUpstream.channel, false) }
        case .writeResponseHead(let head, let close, let authorization):
            writeResponseHead(head, close: close, authorization: authorization, context: context)
        case .writeResponseBody(let buffer):
            writeResponseBody(buffer, context: context)
        case .finishExchange(let upstream, let reuse, let resumeRead, let keepAlive):
            if let upstream {
                upstream.relay.front = nil
                if resumeRead { setAutoRead(upstream.channel, true) }
                if reuse, let pool { pool.release(upstream) } else { upstream.channel.close(promise: nil) }
            }
            endResponse(keepAlive: keepAlive, context: context)
        case .abandonExchange(let upstream, let closeUpstream, let then):
            rawPending = nil
            rawFraming = nil
            if let upstream {
                upstream.relay.front = nil
                if closeUpstream { upstream.channel.close(promise: nil) }
            }
            switch then {
            case .close:
                context.close(promise: nil)
            case .respondAndContinue(let refusal):
                writePlain(refusal, close: false, context: context)
                takeQueued(context: context)
            case .respondAndClose(let refusal):
                refuse(refusal, context: context)
            }
        case .answer(let head, let body, let destination):
            answer(head, body: body, destination: destination, context: context)
        case .endResponse(let keepAlive):
            endResponse(keepAlive: keepAlive, context: context)
        case .refuse(let refusal):
            refuse(refusal, context: context)
        case .close:
            context.close(promise: nil)
        }
    }

    /// Pauses or resumes reading from `channel` (the machine asks only on a change).
    private func setAutoRead(_ channel: any Channel, _ on: Bool) {
        channel.setOption(.autoRead, value: on).whenComplete { _ in }
    }

    /// Takes what was pipelined while the last request was answered.
    private func takeQueued(context: ChannelHandlerContext) {
        while let action = machine.nextQueued() { run(action, context: context) }
        run(machine.drained(), context: context)
    }

    /// Ends the response: the connection then takes its next request, or closes once the end is written.
    private func endResponse(keepAlive: Bool, context: ChannelHandlerContext) {
        let ended: EventLoopFuture<Void>?
        if let framing = rawFraming, let rawOutput {
            // A relayed response, written below NIO's encoder: its end is ScopeGate's to write.
            rawFraming = nil
            if var pending = rawPending {
                rawPending = nil
                if case .chunked = framing { pending.writeStaticString("0\r\n\r\n") }
                rawOutput.write(NIOAny(pending), promise: nil)
                Self.keep(pending, as: &responseScratch)
            } else if case .chunked = framing {
                rawOutput.write(NIOAny(HTTP1Writer.lastChunk), promise: nil)
            }
            if keepAlive {
                rawOutput.flush()
                ended = nil
            } else {
                let promise = context.eventLoop.makePromise(of: Void.self)
                rawOutput.writeAndFlush(NIOAny(ByteBuffer()), promise: promise)
                ended = promise.futureResult
            }
        } else if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            ended = nil
        } else {
            ended = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        }
        if let ended {
            ended.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
        } else {
            // Idle from now: a long exchange does not count towards the idle timeout.
            idleTimer?.restart()
            takeQueued(context: context)
        }
    }

    // MARK: - Routing

    /// The longest request target accepted; longer ones get `414` before anything else happens.
    static let maximumTargetLength = 8 * 1024

    /// Classifies a request head, once: refused, collected for the gate, or forwarded with its framing.
    private func route(_ head: HTTPRequestHead) -> StateMachine.Route {
        let target = RequestTarget(head.uri)
        guard target.text.utf8.count <= Self.maximumTargetLength else {
            return .refuse(
                .init(
                    status: .uriTooLong, message: "the request target is longer than \(Self.maximumTargetLength) bytes",
                    counting: .malformed))
        }
        guard target.text.utf8.first == UInt8(ascii: "/"), !target.hasFragment else {
            return .refuse(.init(status: .badRequest, message: "the request target must be an absolute path", counting: .malformed))
        }
        // Only `chunked` is relayed as a transfer coding: a body under any other coding would be passed on
        // with its framing changed, and a coding list is a classic request-smuggling shape.
        // (Most requests carry no Transfer-Encoding: only those pay for splitting its value.)
        let hasTransferEncoding = head.headers.contains(name: "transfer-encoding")
        if hasTransferEncoding {
            let codings = head.headers[canonicalForm: "transfer-encoding"]
            if codings.count != 1 || codings[0].lowercased() != "chunked" {
                return .refuse(
                    .init(status: .notImplemented, message: "only the chunked transfer coding is accepted", counting: .malformed))
            }
        }
        let path = target.path
        // Compared by bytes (`hasPrefix` on a `Substring` compares characters).
        if path.utf8.starts(with: ScopeGateResponder.ownPrefix.utf8) { return .collect(head, .own) }
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
                return .forward(
                    self.forward(
                        head, target: forward.target, framing: .none, body: .streamed, authorization: forward.authorization))
            }
            return .collect(head, .gated(endpoint))
        case .ambiguous:
            return .refuse(
                .init(
                    status: .badRequest,
                    message: "invalid_request: this path is another spelling of an endpoint ScopeGate gates; use its exact path",
                    counting: .ambiguous))
        case .other:
            if let exposure = shared.exposure, !exposure.allows(path) {
                return .refuse(
                    .init(
                        status: .notFound, message: "not found: ScopeGate does not expose this path of the identity provider",
                        counting: .passThrough))
            }
            shared.requests?.count(.passThrough, .forwarded)
            return .forward(forward(head, target: target.text, framing: framing, body: .streamed))
        }
    }

    /// The client's request as it goes to the IdP: its target (the client's, or the one the gate
    /// wrote), its headers rewritten for the hop.
    private func forward(
        _ head: HTTPRequestHead, target: String, framing: ForwardingHeaders.BodyFraming, body: StateMachine.Forward.Body,
        authorization: AdmittedAuthorization? = nil
    ) -> StateMachine.Forward {
        var bytes = Self.reuse(&requestScratch, allocator: context?.channel.allocator ?? ByteBufferAllocator())
        ForwardingHeaders.writeUpstreamRequestHead(
            into: &bytes, method: head.method, target: target, from: head.headers, peer: peer, host: shared.upstreamHost,
            publicHost: shared.publicHost, bodyFraming: framing,
            // A form ScopeGate wrote: plain form encoding, whatever the client declared.
            contentType: { if case .complete(.some) = body { "application/x-www-form-urlencoded" } else { nil } }(),
            forwardingFields: forwardingFields)
        return .init(
            head: UpstreamRequestHead(method: head.method, bytes: bytes, chunked: framing == .chunked), body: body,
            keepAlive: head.isKeepAlive, authorization: authorization)
    }

    // MARK: - Upstream

    private func connectUpstream(context: ChannelHandlerContext) {
        guard let pool else {
            run(machine.upstreamUnavailable(), context: context)
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

    private func connected(_ result: Result<UpstreamConnection, any Error>, pool: UpstreamPool) {
        guard let context else {
            if case .success(let connection) = result { pool.release(connection) }
            return
        }
        switch result {
        case .failure(let error):
            shared.logger.warning("upstream unreachable", metadata: ["sg.upstream.error": "\(error)"])
            run(machine.upstreamUnavailable(), context: context)
        case .success(let connection):
            run(machine.upstreamConnected(connection, writable: connection.channel.isWritable), context: context)
        }
    }

    private func writeResponseHead(
        _ response: UpstreamResponseHead, close: Bool, authorization: AdmittedAuthorization?, context: ChannelHandlerContext
    ) {
        // The admitted request is looked at only when the answer redirects (its values are read lazily).
        if let admitted = authorization, let location = response.location, case let authorization = admitted.value,
            authorization.isRedirectToClient(location), let code = IssuedCodes.code(inLocation: location)
        {
            shared.codes.record(code, authorization)
            if let hold = authorization.onceHoldID {
                shared.responder.authorization.service.spentReleases.spend(hold, at: Date())
            }
        }
        if rawOutput != nil {
            var head = Self.reuse(&responseScratch, allocator: context.channel.allocator)
            rawFraming = HTTP1Writer.responseHead(
                response, into: &head, close: close, rewriteLocation: shared.rewriter.rewrite(url:))
            rawPending = head
            return
        }
        var headers = ForwardingHeaders.downstreamResponse(from: response.head.headers, rewriteLocation: shared.rewriter.rewrite(url:))
        if close { headers.replaceOrAdd(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
    }

    /// Writes what was gathered of a relayed response.
    private func writeRawPending() {
        guard let pending = rawPending, let rawOutput else { return }
        rawPending = nil
        rawOutput.write(NIOAny(pending), promise: nil)
        Self.keep(pending, as: &responseScratch)
    }

    private func writeResponseBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        guard let framing = rawFraming, let rawOutput else {
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            return
        }
        if var pending = rawPending {
            rawPending = nil  // `pending` the buffer's only owner: appended to in place
            if pending.readableBytes + buffer.readableBytes <= Self.gatheredResponseLimit {
                var buffer = buffer
                switch framing {
                case .identity:
                    pending.writeBuffer(&buffer)
                case .chunked:
                    guard buffer.readableBytes > 0 else { return }  // an empty chunk would end the body
                    pending.writeString(String(buffer.readableBytes, radix: 16))
                    pending.writeStaticString("\r\n")
                    pending.writeBuffer(&buffer)
                    pending.writeStaticString("\r\n")
                }
                rawPending = pending
                return
            }
            rawOutput.write(NIOAny(pending), promise: nil)
            Self.keep(pending, as: &responseScratch)
        }
        switch framing {
        case .identity:
            rawOutput.write(NIOAny(buffer), promise: nil)
        case .chunked:
            guard buffer.readableBytes > 0 else { return }  // an empty chunk would end the body
            rawOutput.write(NIOAny(HTTP1Writer.chunkLine(buffer.readableBytes, allocator: context.channel.allocator)), promise: nil)
            rawOutput.write(NIOAny(buffer), promise: nil)
            rawOutput.write(NIOAny(HTTP1Writer.crlf), promise: nil)
        }
    }

    // MARK: - Answers

    /// Answers with a short plain-text error and closes the connection: the rest of the request, if
    /// any, is never read, so nothing of it can be mistaken for a next request.
    private func refuse(_ refusal: StateMachine.Refusal, context: ChannelHandlerContext) {
        if let endpoint = refusal.counting { shared.requests?.count(endpoint, .refused) }
        writePlain(refusal, close: true, context: context).whenComplete { [channel = context.channel] _ in
            channel.close(promise: nil)
        }
    }

    @discardableResult
    private func writePlain(_ refusal: StateMachine.Refusal, close: Bool, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        var headers = HTTPHeaders()
        let body = ByteBuffer(string: refusal.message + "\n")
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Cache-Control", value: "no-store")
        if close { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: refusal.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        return context.writeAndFlush(wrapOutboundOut(.end(nil)))
    }

    /// Hands a collected request to the gate, off the event loop, and carries out its answer.
    private func answer(
        _ head: HTTPRequestHead, body: ByteBuffer, destination: ScopeGateResponder.Destination, context: ChannelHandlerContext
    ) {
        let keepAlive = head.isKeepAlive
        let request: Request
        do {
            guard let method = HTTPRequest.Method(head.method.rawValue) else { throw GateError(.invalidRequest, "unknown method") }
            let requestHead = HTTPRequest(
                method: method, scheme: shared.secure ? "https" : "http", authority: head.headers.first(name: "host"),
                path: head.uri, headerFields: HTTPFields(head.headers, splitCookie: false))
            request = Request(head: requestHead, body: .init(buffer: body))
        } catch {
            refuse(.init(status: .badRequest, message: "the request cannot be read", counting: .init(destination)), context: context)
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
                    let handler = bound.value
                    guard let context = handler.context else { return }
                    let body: StateMachine.Forward.Body = .complete(forward.body)
                    let framing: ForwardingHeaders.BodyFraming = forward.body.map { .length($0.readableBytes) } ?? .none
                    handler.run(
                        handler.machine.gateAdmitted(
                            handler.forward(
                                head, target: forward.target, framing: framing, body: body, authorization: forward.authorization)),
                        context: context)
                }
            case .respond(let response):
                requests?.count(.init(destination), .init(status: response.status.code))
                do {
                    try await ProxyConnectionHandler.write(response, to: channel, keepAlive: keepAlive, isHead: isHead)
                    channel.eventLoop.execute {
                        let handler = bound.value
                        guard let context = handler.context else { return }
                        handler.run(handler.machine.gateAnswered(), context: context)
                    }
                } catch {
                    channel.close(promise: nil)
                }
            }
        }
    }
}

extension ProxyConnectionHandler {
    /// Writes one of ScopeGate's own answers: its head (with `Content-Length` whenever it is known, and
    /// always for an answer to `HEAD`), then its body unless it answers `HEAD`.
    static func write(_ response: Response, to channel: any Channel, keepAlive: Bool, isHead: Bool) async throws {
        var responseHead = HTTPResponseHead(response.head)
        if responseHead.headers.first(name: "content-length") == nil {
            let length = isHead ? await length(of: response) : response.body.contentLength
            if let length { responseHead.headers.add(name: "Content-Length", value: String(length)) }
        }
        if !keepAlive { responseHead.headers.replaceOrAdd(name: "Connection", value: "close") }
        try await channel.writeAndFlush(HTTPServerResponsePart.head(responseHead))
        if !isHead { try await response.body.write(ChannelBodyWriter(channel: channel)) }
    }

    /// The length of the body a `GET` would have been answered with, for the `Content-Length` of an
    /// answer to `HEAD` (RFC 9110 §9.3.2): NIO's encoder would otherwise frame a body of unknown length
    /// as chunked and end it with a last chunk, a body the client does not read. `nil` for a status
    /// without a body.
    static func length(of response: Response) async -> Int? {
        guard response.status.code >= 200, response.status != .noContent, response.status != .notModified else { return nil }
        if let length = response.body.contentLength { return length }
        let counter = CountingBodyWriter()
        try? await response.body.write(counter)
        return counter.count.value
    }
}

/// Counts the bytes of a response body, writing nothing.
struct CountingBodyWriter: ResponseBodyWriter {
    final class Count: @unchecked Sendable { var value = 0 }  // used by one task at a time
    let count = Count()

    mutating func write(_ buffer: ByteBuffer) async throws { count.value += buffer.readableBytes }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// Writes a Hummingbird response body to a channel, waiting for each write (backpressure).
struct ChannelBodyWriter: ResponseBodyWriter {
    let channel: any Channel

    mutating func write(_ buffer: ByteBuffer) async throws {
        try await channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer)))
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
