import NIOCore
import NIOHTTP1

/// The life of one client connection of the public listener, as a value.
///
/// Every event — a part read from the client, an upstream connection made or lost, a part of the IdP's
/// response, a change of writability, the gate's answer — is a mutating call that returns the one
/// `Action` the channel handler then carries out. Nothing here does I/O, so every transition is tested
/// directly (`ProxyConnectionStateMachineTests`); `ProxyConnectionHandler` only executes actions.
/// `Upstream` is the handler's handle on an upstream connection (the tests use numbered objects). It
/// is a class: every state and action then has one layout whatever the handle, so the handler's
/// specialized code copies and destroys them directly, without the generic value witnesses.
///
/// One request is in progress at a time (HTTP/1.1 §9.3.2): parts of pipelined requests that arrive
/// meanwhile wait in a bounded queue, and reading from the client pauses while it is full. Reading
/// pauses in both directions for backpressure: from the client while the upstream cannot take more (or
/// too much body waits for an upstream connection), from the upstream while the client cannot.
struct ProxyConnectionStateMachine<Upstream: AnyObject> {

    /// The bounds that keep one connection's memory small.
    struct Limits: Sendable {
        /// The largest body read for a request ScopeGate answers itself.
        var maximumCollectedBody = 64 * 1024
        /// Body bytes buffered while the upstream connection is being made, before reading pauses.
        var maximumPendingBody = 1 << 20
        /// Parts of pipelined requests queued before reading pauses.
        var maximumQueuedParts = 64
    }

    /// What the handler found a request's head to be (`PathGuard`, exposure, the at-once admission).
    enum Route {
        /// Send it to the IdP.
        case forward(Forward)
        /// Read its body (bounded) and hand it to the gate.
        case collect(HTTPRequestHead, ScopeGateResponder.Destination)
        /// Answer with an error and close: nothing more of this connection is read.
        case refuse(Refusal)
    }

    /// A request on its way to the IdP.
    struct Forward {
        /// How its body reaches the IdP.
        enum Body {
            /// The client's body, streamed as it arrives (the client's request has not ended yet).
            case streamed
            /// A complete body ScopeGate built (`nil`: none); the client's request was read to its end.
            case complete(ByteBuffer?)
        }

        /// The head as the IdP receives it (target and headers rewritten).
        var head: UpstreamRequestHead
        var body: Body
        /// Whether the client keeps the connection open after this exchange.
        var keepAlive: Bool
        /// For an admitted authorization request: what it asked for, noted with the code the IdP answers.
        var authorization: AdmittedAuthorization?
    }

    /// A short plain-text error answer.
    struct Refusal: Equatable {
        var status: HTTPResponseStatus
        var message: String
        /// The request counter it counts under, when it is counted as refused.
        var counting: RequestCounters.Endpoint?
    }

    /// What happens after an exchange with the IdP failed.
    enum AfterFailure: Equatable {
        /// Part of the IdP's response was already sent: the client connection is cut.
        case close
        /// Answer `Refusal` and take the next request (the client's request had ended, keep-alive).
        case respondAndContinue(Refusal)
        /// Answer `Refusal` and close (the client's request had not ended, or no keep-alive).
        case respondAndClose(Refusal)
    }

    /// What the handler does next.
    enum Action {
        case none
        /// Classify the head, then call `routed(_:)`.
        case route(HTTPRequestHead)
        /// Take an idle upstream connection or open one, then call `upstreamConnected` or `upstreamUnavailable`.
        case connectUpstream
        /// Write a part of the client's request to the upstream; the end of the read burst flushes it.
        case writeUpstream(Upstream, UpstreamRequestPart)
        /// Serve the exchange with this connection: attach it, write what waited, flush when asked,
        /// and resume or pause reading from the client when `readClient` says so.
        case startExchange(Upstream, Pending, flush: Bool, readClient: Bool?)
        /// A connection that arrived when no exchange wanted it: back to the pool.
        case returnUpstream(Upstream)
        /// Flush what was written to the upstream; resume or pause reading from the client when
        /// `readClient` says so.
        case flushUpstream(Upstream, readClient: Bool?)
        /// Resume (`true`) or pause reading from the client.
        case readClient(Bool)
        /// Resume (`true`) or pause reading from the upstream.
        case readUpstream(Upstream, Bool)
        /// Flush what was written to the client; when the client cannot take more, pause `upstream`.
        case flushClient(pauseUpstream: Upstream?)
        /// Send the IdP's response head on, with `Connection: close` when `close`.
        case writeResponseHead(UpstreamResponseHead, close: Bool, authorization: AdmittedAuthorization?)
        case writeResponseBody(ByteBuffer)
        /// The IdP's response ended: detach the upstream (resuming its reading when it was paused),
        /// keep it for reuse or close it, then end the client's response (`endResponse`).
        case finishExchange(Upstream?, reuse: Bool, resumeRead: Bool, keepAlive: Bool)
        /// The exchange failed: detach the upstream (closing it when asked), then `then`.
        case abandonExchange(Upstream?, closeUpstream: Bool, then: AfterFailure)
        /// Hand the collected request to the gate; call `gateAdmitted` or `gateAnswered` afterwards.
        case answer(HTTPRequestHead, ByteBuffer, ScopeGateResponder.Destination)
        /// Write the end of the response; then take the next request (`keepAlive`) or close once written.
        case endResponse(keepAlive: Bool)
        /// Answer with an error and close once it is written.
        case refuse(Refusal)
        /// Close the connection now.
        case close
    }

    /// What of a request was there before its upstream connection: the head, the body parts that
    /// came (most requests: none), and whether its end came.
    struct Pending {
        var head: UpstreamRequestHead
        var body: [ByteBuffer] = []
        var ended = false
    }

    private struct Exchange {
        var upstream: Upstream?
        /// What to write once the upstream connection is there (`nil` once written).
        var pending: Pending?
        var pendingBytes = 0
        var requestEnded: Bool
        var responseStarted = false
        var clientKeepAlive: Bool
        var upstreamKeepAlive = true
        var authorization: AdmittedAuthorization?
    }

    private enum State {
        /// Between requests.
        case idle
        /// A head was given to the handler to classify.
        case routing
        case forwarding(Exchange)
        case collecting(HTTPRequestHead, ByteBuffer, ScopeGateResponder.Destination)
        /// The gate is answering asynchronously.
        case answering(keepAlive: Bool)
        /// An answer was given before the request ended, or the connection is closing: nothing more is
        /// read from it.
        case closed
        /// Held only while an exchange is changed in place (no copy of its buffers).
        case modifying
    }

    let limits: Limits
    private var state = State.idle
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    /// Whether a burst of client reads is under way: writes to the upstream are flushed once, at its end.
    private var inReadBurst = false
    private var clientPaused = false
    private var upstreamPaused = false
    /// Whether the server is shutting down: the connection closes once the current request is answered.
    private var quiescing = false

    init(limits: Limits = Limits()) { self.limits = limits }

    /// Whether the connection is between requests with nothing waiting (the idle timer may close it).
    var isIdle: Bool {
        if case .idle = state { return queued.isEmpty }
        return false
    }

    // MARK: - Client side

    /// A part of a request arrived from the client.
    mutating func read(_ part: HTTPServerRequestPart) -> Action {
        inReadBurst = true
        if !queued.isEmpty || mustWait(part) {
            queued.append(part)
            return queued.count >= limits.maximumQueuedParts ? readClient(false) : .none
        }
        return handle(part)
    }

    /// The read burst ended: flush what went to the upstream.
    mutating func readComplete() -> Action {
        inReadBurst = false
        if case .forwarding(let exchange) = state, let upstream = exchange.upstream {
            return .flushUpstream(upstream, readClient: nil)
        }
        return .none
    }

    /// The client connection's writability changed: the upstream's reading follows it.
    mutating func clientWritabilityChanged(_ writable: Bool) -> Action {
        guard case .forwarding(let exchange) = state, let upstream = exchange.upstream else { return .none }
        return readUpstream(writable, upstream)
    }

    /// The client connection closed.
    mutating func clientClosed() -> Action {
        let current = state
        state = .closed
        if case .forwarding(let exchange) = current {
            return .abandonExchange(exchange.upstream, closeUpstream: true, then: .close)
        }
        return .none
    }

    /// The client's bytes are not HTTP/1.1: NIO's parser failed, and the connection closes. A `400` is
    /// written only when it answers the request being read, that is when no response is under way and
    /// no earlier request waits for one (a pipelined request's answer never goes out of order).
    mutating func malformed() -> Action {
        switch state {
        case .idle where queued.isEmpty, .routing, .collecting:
            state = .closed
            return .refuse(Refusal(status: .badRequest, message: "the request is not valid HTTP/1.1", counting: .malformed))
        default:
            // Nothing read on this connection is handled any more, a queued request included.
            queued.removeAll()
            return clientClosed()
        }
    }

    /// The connection sat idle for the idle timeout.
    mutating func idleTimeout() -> Action {
        guard isIdle else { return .none }
        state = .closed
        return .close
    }

    /// The server is shutting down: close now when idle, otherwise once the current request is answered.
    mutating func quiesce() -> Action {
        quiescing = true
        return idleTimeout()
    }

    /// The head handed out with `.route` was classified.
    mutating func routed(_ route: Route) -> Action {
        guard case .routing = state else {
            assertionFailure("routed(_:) without a head to route")
            state = .closed
            return .close
        }
        switch route {
        case .forward(let forward):
            return startExchange(forward)
        case .collect(let head, let destination):
            state = .collecting(head, ByteBuffer(), destination)
            return .none
        case .refuse(let refusal):
            state = .closed
            return .refuse(refusal)
        }
    }

    /// After a response ended with keep-alive: the next action for what was pipelined meanwhile, or
    /// `nil` when nothing more can be taken now. Call until `nil`, then `drained()`.
    mutating func nextQueued() -> Action? {
        guard case .idle = state else {
            guard let part = queued.first, !mustWait(part) else { return nil }
            return handle(queued.removeFirst())
        }
        if quiescing, queued.isEmpty {
            state = .closed
            return .close
        }
        guard !queued.isEmpty else { return nil }
        return handle(queued.removeFirst())
    }

    /// What to do once `nextQueued()` returned `nil`: flush the upstream, resume reading the client.
    mutating func drained() -> Action {
        let resume = resumeClientIfRoom()
        if case .forwarding(let exchange) = state, let upstream = exchange.upstream {
            return .flushUpstream(upstream, readClient: resume)
        }
        return resume.map { .readClient($0) } ?? .none
    }

    /// Resumes reading from the client once the queue has room, unless an exchange whose body is still
    /// coming governs it (its upstream's writability, or the body waiting for a connection).
    private mutating func resumeClientIfRoom() -> Bool? {
        guard queued.count < limits.maximumQueuedParts, clientPaused else { return nil }
        if case .closed = state { return nil }
        if case .forwarding(let exchange) = state, !exchange.requestEnded { return nil }
        clientPaused = false
        return true
    }

    /// Whether `part` begins a request while the previous one is still being answered.
    private func mustWait(_ part: HTTPServerRequestPart) -> Bool {
        guard case .head = part else { return false }
        switch state {
        case .idle, .closed: return false
        case .routing, .forwarding, .collecting, .answering, .modifying: return true
        }
    }

    private mutating func handle(_ part: HTTPServerRequestPart) -> Action {
        // The state is matched without binding an exchange where one is changed: a bound copy would
        // make the change copy its buffers.
        switch state {
        case .idle:
            guard case .head(let head) = part else { break }
            state = .routing
            return .route(head)
        case .forwarding:
            switch part {
            case .head: break
            case .body(let buffer):
                var overflow = false
                let maximum = limits.maximumPendingBody
                let action = modifyExchange { exchange in
                    if let upstream = exchange.upstream { return .writeUpstream(upstream, .body(buffer)) }
                    exchange.pendingBytes += buffer.readableBytes
                    exchange.pending?.body.append(buffer)
                    overflow = exchange.pendingBytes > maximum
                    return .none
                }
                return overflow ? readClient(false) : action
            case .end:
                return modifyExchange { exchange in
                    exchange.requestEnded = true
                    if let upstream = exchange.upstream { return .writeUpstream(upstream, .end) }
                    exchange.pending?.ended = true
                    return .none
                }
            }
        case .collecting(let head, var body, let destination):
            switch part {
            case .head: break
            case .body(var buffer):
                guard body.readableBytes + buffer.readableBytes <= limits.maximumCollectedBody else {
                    state = .closed
                    return .refuse(
                        Refusal(
                            status: .payloadTooLarge,
                            message: "the request body is larger than \(limits.maximumCollectedBody) bytes",
                            counting: .init(destination)))
                }
                state = .modifying
                body.writeBuffer(&buffer)
                state = .collecting(head, body, destination)
                return .none
            case .end:
                state = .answering(keepAlive: head.isKeepAlive)
                return .answer(head, body, destination)
            }
        case .closed:
            return .none
        case .routing, .answering, .modifying:
            break
        }
        // A part out of order cannot come from NIO's HTTP decoder; refuse it anyway.
        state = .closed
        return .close
    }

    private mutating func readClient(_ on: Bool) -> Action {
        guard clientPaused == on else { return .none }
        clientPaused = !on
        return .readClient(on)
    }

    private mutating func readUpstream(_ on: Bool, _ upstream: Upstream) -> Action {
        guard upstreamPaused == on else { return .none }
        upstreamPaused = !on
        return .readUpstream(upstream, on)
    }

    /// Changes the exchange in place; the state must be `.forwarding`.
    private mutating func modifyExchange(_ change: (inout Exchange) -> Action) -> Action {
        guard case .forwarding(var exchange) = state else { return .none }
        state = .modifying
        let action = change(&exchange)
        state = .forwarding(exchange)
        return action
    }

    // MARK: - The gate's answer

    /// The gate admitted the collected request: it goes to the IdP.
    mutating func gateAdmitted(_ forward: Forward) -> Action {
        guard case .answering = state else { return .none }
        return startExchange(forward)
    }

    /// The gate's own response was written (but not its end).
    mutating func gateAnswered() -> Action {
        guard case .answering(let keepAlive) = state else { return .none }
        return endResponse(keepAlive: keepAlive)
    }

    private mutating func endResponse(keepAlive: Bool) -> Action {
        state = keepAlive ? .idle : .closed
        return .endResponse(keepAlive: keepAlive)
    }

    // MARK: - Upstream side

    private mutating func startExchange(_ forward: Forward) -> Action {
        var exchange = Exchange(
            upstream: nil, pending: Pending(head: forward.head), requestEnded: false, clientKeepAlive: forward.keepAlive,
            authorization: forward.authorization)
        if case .complete(let body) = forward.body {
            if let body { exchange.pending?.body.append(body) }
            exchange.pending?.ended = true
            exchange.requestEnded = true
        }
        state = .forwarding(exchange)
        return .connectUpstream
    }

    /// An upstream connection is ready for the exchange; `writable` is its writability.
    mutating func upstreamConnected(_ upstream: Upstream, writable: Bool) -> Action {
        guard case .forwarding(var exchange) = state, exchange.upstream == nil, let pending = exchange.pending else {
            return .returnUpstream(upstream)
        }
        state = .modifying
        exchange.upstream = upstream
        exchange.pending = nil
        exchange.pendingBytes = 0
        let requestEnded = exchange.requestEnded
        state = .forwarding(exchange)
        upstreamPaused = false
        let on = requestEnded || writable
        var change: Bool? = nil
        if clientPaused == on {
            clientPaused = !on
            change = on
        }
        return .startExchange(upstream, pending, flush: !inReadBurst, readClient: change)
    }

    /// No upstream connection could be had.
    mutating func upstreamUnavailable() -> Action {
        failed(Refusal(status: .badGateway, message: Self.unreachable), closeUpstream: false)
    }

    /// The upstream connection closed during the exchange.
    mutating func upstreamClosed() -> Action {
        failed(Refusal(status: .badGateway, message: Self.unreachable), closeUpstream: false)
    }

    /// The upstream said nothing for the response timeout. A slow upload is not a slow IdP: only a wait
    /// for the IdP's answer times out.
    mutating func upstreamTimedOut() -> Action {
        guard case .forwarding(let exchange) = state, exchange.requestEnded else { return .none }
        return failed(Refusal(status: .gatewayTimeout, message: Self.timedOut), closeUpstream: true)
    }

    static var unreachable: String { "the identity provider cannot be reached" }
    static var timedOut: String { "the identity provider did not answer in time" }

    private mutating func failed(_ refusal: Refusal, closeUpstream: Bool) -> Action {
        guard case .forwarding(let exchange) = state else { return .none }
        let then: AfterFailure
        if exchange.responseStarted {
            state = .closed
            then = .close
        } else if exchange.requestEnded && exchange.clientKeepAlive {
            state = .idle
            then = .respondAndContinue(refusal)
        } else {
            state = .closed
            then = .respondAndClose(refusal)
        }
        return .abandonExchange(exchange.upstream, closeUpstream: closeUpstream, then: then)
    }

    /// The IdP's response head arrived.
    mutating func upstreamResponseHead(_ head: UpstreamResponseHead) -> Action {
        modifyExchange { exchange in
            exchange.upstreamKeepAlive = head.isKeepAlive
            exchange.responseStarted = true
            return .writeResponseHead(head, close: !exchange.clientKeepAlive, authorization: exchange.authorization)
        }
    }

    /// A part of the IdP's response body arrived.
    mutating func upstreamResponseBody(_ buffer: ByteBuffer) -> Action {
        guard case .forwarding = state else { return .none }
        return .writeResponseBody(buffer)
    }

    /// The IdP's response ended.
    mutating func upstreamResponseEnd() -> Action {
        guard case .forwarding(let exchange) = state else { return .none }
        let resume = upstreamPaused
        upstreamPaused = false
        let keepAlive = exchange.clientKeepAlive && exchange.requestEnded
        state = keepAlive ? .idle : .closed
        return .finishExchange(
            exchange.upstream, reuse: exchange.requestEnded && exchange.upstreamKeepAlive, resumeRead: resume,
            keepAlive: keepAlive)
    }

    /// A read burst from the upstream ended; `clientWritable` is the client connection's writability.
    mutating func upstreamReadComplete(clientWritable: Bool) -> Action {
        guard case .forwarding(let exchange) = state else { return .none }
        guard !clientWritable, let upstream = exchange.upstream, !upstreamPaused else { return .flushClient(pauseUpstream: nil) }
        upstreamPaused = true
        return .flushClient(pauseUpstream: upstream)
    }

    /// The upstream connection's writability changed: the client's reading follows it while the
    /// request body is still coming.
    mutating func upstreamWritabilityChanged(_ writable: Bool) -> Action {
        guard case .forwarding(let exchange) = state, !exchange.requestEnded else { return .none }
        return readClient(writable)
    }
}
