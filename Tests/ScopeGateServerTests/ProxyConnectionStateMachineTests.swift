import NIOCore
import NIOHTTP1
import Testing

@testable import ScopeGateServer

/// The client connection's state machine, event by event, without I/O: the handler's every side effect
/// is one of these actions, so what the connection does is what these tests read.
@Suite struct ProxyConnectionStateMachineTests {
    typealias Machine = ProxyConnectionStateMachine<TestUpstream>

    static func head(_ uri: String = "/x", keepAlive: Bool = true) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)
        if !keepAlive { head.headers.add(name: "Connection", value: "close") }
        return head
    }

    static func forward(_ uri: String = "/x", keepAlive: Bool = true, body: Machine.Forward.Body = .streamed) -> Machine.Route {
        .forward(.init(head: written(uri), body: body, keepAlive: keepAlive, authorization: nil))
    }

    /// A request head as the IdP is sent it.
    static func written(_ uri: String) -> UpstreamRequestHead {
        UpstreamRequestHead(method: .GET, bytes: ByteBuffer(string: "GET \(uri) HTTP/1.1\r\n\r\n"), chunked: false)
    }

    static func bytes(_ count: Int) -> ByteBuffer { ByteBuffer(repeating: 0x61, count: count) }

    /// Drives a request to the point where upstream 1 carries it: head routed, forwarded, connected.
    static func forwarding(_ machine: inout Machine, keepAlive: Bool = true) {
        #expect(summary(machine.read(.head(head(keepAlive: keepAlive)))) == "route /x")
        #expect(summary(machine.routed(forward(keepAlive: keepAlive))) == "connect")
        #expect(summary(machine.upstreamConnected(1, writable: true)) == "start 1 [head /x] flush:false read:-")
    }

    @Test func aPassThroughExchangeEndsWithTheConnectionReusedOnBothSides() {
        var machine = Machine()
        #expect(summary(machine.read(.head(Self.head()))) == "route /x")
        #expect(summary(machine.routed(Self.forward())) == "connect")
        // The body and end arrive before the upstream connection: they wait and are written with the head.
        #expect(summary(machine.read(.body(Self.bytes(5)))) == "none")
        #expect(summary(machine.read(.end(nil))) == "none")
        #expect(summary(machine.upstreamConnected(1, writable: true)) == "start 1 [head /x, body 5, end] flush:false read:-")
        #expect(summary(machine.readComplete()) == "flush 1 read:-")
        #expect(summary(machine.upstreamResponseHead(response(.ok))) == "response head 200 close:false")
        #expect(summary(machine.upstreamResponseBody(Self.bytes(3))) == "response body 3")
        #expect(summary(machine.upstreamReadComplete(clientWritable: true)) == "flush client")
        #expect(summary(machine.upstreamResponseEnd()) == "finish 1 reuse:true resume:false keepAlive:true")
        #expect(machine.nextQueued().map(summary) == nil)
        #expect(summary(machine.drained()) == "none")
        #expect(machine.isIdle)
    }

    @Test func partsArrivingOnceConnectedGoStraightToTheUpstream() {
        var machine = Machine()
        Self.forwarding(&machine)
        #expect(summary(machine.read(.body(Self.bytes(7)))) == "write 1 body 7")
        #expect(summary(machine.read(.end(nil))) == "write 1 end")
        #expect(summary(machine.readComplete()) == "flush 1 read:-")
    }

    @Test func aPipelinedRequestWaitsUntilTheResponseBeforeItEnds() {
        var machine = Machine()
        Self.forwarding(&machine)
        #expect(summary(machine.read(.end(nil))) == "write 1 end")
        #expect(summary(machine.read(.head(Self.head("/second")))) == "none")
        #expect(summary(machine.read(.end(nil))) == "none")
        #expect(summary(machine.readComplete()) == "flush 1 read:-")
        #expect(summary(machine.upstreamResponseHead(response(.ok))) == "response head 200 close:false")
        #expect(summary(machine.upstreamResponseEnd()) == "finish 1 reuse:true resume:false keepAlive:true")
        // Only now is the second request taken, in order.
        #expect(machine.nextQueued().map(summary) == "route /second")
        #expect(summary(machine.routed(Self.forward("/second"))) == "connect")
        #expect(machine.nextQueued().map(summary) == "none")
        #expect(machine.nextQueued().map(summary) == nil)
        #expect(summary(machine.upstreamConnected(2, writable: true)) == "start 2 [head /second, end] flush:true read:-")
    }

    @Test func aFullQueuePausesReadingUntilItDrains() {
        var machine = Machine(limits: .init(maximumQueuedParts: 3))
        Self.forwarding(&machine)
        _ = machine.read(.end(nil))
        #expect(summary(machine.read(.head(Self.head("/a")))) == "none")
        #expect(summary(machine.read(.end(nil))) == "none")
        #expect(summary(machine.read(.head(Self.head("/b")))) == "read client false")
        _ = machine.upstreamResponseHead(response(.ok))
        _ = machine.upstreamResponseEnd()
        #expect(machine.nextQueued().map(summary) == "route /a")
        #expect(summary(machine.routed(.refuse(.init(status: .notFound, message: "no", counting: nil)))) == "refuse 404")
        // Refused: what is left of the queue is dropped, and the connection never reads again.
        #expect(machine.nextQueued().map(summary) == "none")
        #expect(machine.nextQueued().map(summary) == "none")
        #expect(machine.nextQueued().map(summary) == nil)
        #expect(summary(machine.drained()) == "none")
    }

    @Test func readingResumesOnceTheQueuedRequestsAreAnswered() {
        var machine = Machine(limits: .init(maximumQueuedParts: 2))
        Self.forwarding(&machine)
        _ = machine.read(.end(nil))
        _ = machine.read(.head(Self.head("/a")))
        #expect(summary(machine.read(.end(nil))) == "read client false")
        _ = machine.upstreamResponseHead(response(.ok))
        _ = machine.upstreamResponseEnd()
        #expect(machine.nextQueued().map(summary) == "route /a")
        #expect(summary(machine.routed(.collect(Self.head("/a"), .own))) == "none")
        #expect(machine.nextQueued().map(summary) == "answer /a 0 own")
        #expect(machine.nextQueued().map(summary) == nil)
        #expect(summary(machine.drained()) == "read client true")
    }

    @Test func bodyWaitingForAConnectionIsBoundedAndResumesWhenItIsSent() {
        var machine = Machine(limits: .init(maximumPendingBody: 10))
        _ = machine.read(.head(Self.head()))
        _ = machine.routed(Self.forward())
        #expect(summary(machine.read(.body(Self.bytes(6)))) == "none")
        #expect(summary(machine.read(.body(Self.bytes(6)))) == "read client false")
        #expect(summary(machine.read(.body(Self.bytes(1)))) == "none")
        #expect(summary(machine.readComplete()) == "none")
        #expect(summary(machine.upstreamConnected(1, writable: true)) == "start 1 [head /x, body 6, body 6, body 1] flush:true read:true")
    }

    @Test func aSlowUpstreamPausesTheClientWhileTheBodyIsComing() {
        var machine = Machine()
        Self.forwarding(&machine)
        #expect(summary(machine.upstreamWritabilityChanged(false)) == "read client false")
        #expect(summary(machine.upstreamWritabilityChanged(false)) == "none")
        #expect(summary(machine.upstreamWritabilityChanged(true)) == "read client true")
        _ = machine.read(.end(nil))
        // Once the request has ended, the upstream's writability no longer governs the client.
        #expect(summary(machine.upstreamWritabilityChanged(false)) == "none")
    }

    @Test func anUnwritableUpstreamAtConnectKeepsTheClientPaused() {
        var machine = Machine(limits: .init(maximumPendingBody: 1))
        _ = machine.read(.head(Self.head()))
        _ = machine.routed(Self.forward())
        #expect(summary(machine.read(.body(Self.bytes(2)))) == "read client false")
        _ = machine.readComplete()
        #expect(summary(machine.upstreamConnected(1, writable: false)) == "start 1 [head /x, body 2] flush:true read:-")
        #expect(summary(machine.upstreamWritabilityChanged(true)) == "read client true")
    }

    @Test func aSlowClientPausesTheUpstreamAndTheUpstreamIsResumedBeforeReuse() {
        var machine = Machine()
        Self.forwarding(&machine)
        _ = machine.read(.end(nil))
        _ = machine.upstreamResponseHead(response(.ok))
        #expect(summary(machine.upstreamReadComplete(clientWritable: false)) == "flush client, pause 1")
        #expect(summary(machine.upstreamReadComplete(clientWritable: false)) == "flush client")
        #expect(summary(machine.clientWritabilityChanged(true)) == "read upstream 1 true")
        #expect(summary(machine.clientWritabilityChanged(false)) == "read upstream 1 false")
        #expect(summary(machine.upstreamResponseEnd()) == "finish 1 reuse:true resume:true keepAlive:true")
    }

    @Test func anUpstreamThatFailsBeforeAnsweringGetsA502AndTheConnectionGoesOn() {
        var machine = Machine()
        Self.forwarding(&machine)
        _ = machine.read(.end(nil))
        #expect(summary(machine.upstreamClosed()) == "abandon 1 close:false then respond 502 and continue")
        #expect(machine.isIdle)
    }

    @Test func anUpstreamThatFailsMidUploadGetsA502AndTheConnectionCloses() {
        var machine = Machine()
        Self.forwarding(&machine)
        _ = machine.read(.body(Self.bytes(1)))
        #expect(summary(machine.upstreamClosed()) == "abandon 1 close:false then respond 502 and close")
        // The rest of the request is never read as a next request.
        #expect(summary(machine.read(.end(nil))) == "none")
        #expect(summary(machine.read(.head(Self.head("/smuggled")))) == "none")
    }

    @Test func anUpstreamThatFailsMidResponseCutsTheClient() {
        var machine = Machine()
        Self.forwarding(&machine)
        _ = machine.read(.end(nil))
        _ = machine.upstreamResponseHead(response(.ok))
        #expect(summary(machine.upstreamClosed()) == "abandon 1 close:false then close")
    }

    @Test func noUpstreamConnectionMeansA502() {
        var machine = Machine()
        _ = machine.read(.head(Self.head()))
        _ = machine.routed(Self.forward(body: .complete(nil)))
        #expect(summary(machine.upstreamUnavailable()) == "abandon - close:false then respond 502 and continue")
    }

    @Test func onlyAWaitForTheAnswerTimesOut() {
        var machine = Machine()
        Self.forwarding(&machine)
        // A slow upload is not a slow IdP.
        #expect(summary(machine.upstreamTimedOut()) == "none")
        _ = machine.read(.end(nil))
        #expect(summary(machine.upstreamTimedOut()) == "abandon 1 close:true then respond 504 and continue")
    }

    @Test func aClientAskingToCloseGetsConnectionCloseAndNothingMoreIsRead() {
        var machine = Machine()
        Self.forwarding(&machine, keepAlive: false)
        _ = machine.read(.end(nil))
        #expect(summary(machine.upstreamResponseHead(response(.ok))) == "response head 200 close:true")
        #expect(summary(machine.upstreamResponseEnd()) == "finish 1 reuse:true resume:false keepAlive:false")
        #expect(summary(machine.read(.head(Self.head()))) == "none")
    }

    @Test func anUpstreamAskingToCloseIsNotReused() {
        var machine = Machine()
        Self.forwarding(&machine)
        _ = machine.read(.end(nil))
        _ = machine.upstreamResponseHead(response(.ok, fields: "Connection: close\r\nContent-Length: 0\r\n"))
        #expect(summary(machine.upstreamResponseEnd()) == "finish 1 reuse:false resume:false keepAlive:true")
    }

    @Test func aResponseBeforeTheRequestEndedClosesBothConnections() {
        var machine = Machine()
        Self.forwarding(&machine)
        _ = machine.upstreamResponseHead(response(.payloadTooLarge))
        #expect(summary(machine.upstreamResponseEnd()) == "finish 1 reuse:false resume:false keepAlive:false")
    }

    @Test func aCollectedRequestIsBoundedThenHandedToTheGate() {
        var machine = Machine(limits: .init(maximumCollectedBody: 8))
        _ = machine.read(.head(Self.head("/o/token/")))
        #expect(summary(machine.routed(.collect(Self.head("/o/token/"), .gated(.token)))) == "none")
        #expect(summary(machine.read(.body(Self.bytes(5)))) == "none")
        #expect(summary(machine.read(.body(Self.bytes(3)))) == "none")
        #expect(summary(machine.read(.end(nil))) == "answer /o/token/ 8 gated")
        #expect(summary(machine.read(.head(Self.head("/next")))) == "none")
        #expect(summary(machine.gateAnswered()) == "end response keepAlive:true")
        #expect(machine.nextQueued().map(summary) == "route /next")
    }

    @Test func aCollectedBodyOverTheLimitIsRefusedAndCounted() {
        var machine = Machine(limits: .init(maximumCollectedBody: 8))
        _ = machine.read(.head(Self.head("/o/token/")))
        _ = machine.routed(.collect(Self.head("/o/token/"), .gated(.token)))
        #expect(summary(machine.read(.body(Self.bytes(9)))) == "refuse 413 counting token")
        #expect(summary(machine.read(.end(nil))) == "none")
    }

    @Test func aRequestTheGateAdmittedGoesUpstreamWhole() {
        var machine = Machine()
        _ = machine.read(.head(Self.head("/o/authorize/")))
        _ = machine.routed(.collect(Self.head("/o/authorize/"), .gated(.authorization)))
        _ = machine.read(.end(nil))
        #expect(summary(machine.readComplete()) == "none")
        #expect(summary(machine.gateAdmitted(Self.forwardValue("/o/authorize/", body: .complete(Self.bytes(4))))) == "connect")
        #expect(summary(machine.upstreamConnected(1, writable: false)) == "start 1 [head /o/authorize/, body 4, end] flush:true read:-")
        #expect(summary(machine.upstreamWritabilityChanged(false)) == "none")
    }

    @Test func theGatesAnswerAfterTheClientLeftIsDropped() {
        var machine = Machine()
        _ = machine.read(.head(Self.head("/o/authorize/")))
        _ = machine.routed(.collect(Self.head("/o/authorize/"), .gated(.authorization)))
        _ = machine.read(.end(nil))
        #expect(summary(machine.clientClosed()) == "none")
        #expect(summary(machine.gateAdmitted(Self.forwardValue("/o/authorize/", body: .complete(nil)))) == "none")
        #expect(summary(machine.gateAnswered()) == "none")
    }

    @Test func aClientThatLeavesMidExchangeClosesItsUpstream() {
        var machine = Machine()
        Self.forwarding(&machine)
        #expect(summary(machine.clientClosed()) == "abandon 1 close:true then close")
        #expect(summary(machine.upstreamResponseHead(response(.ok))) == "none")
    }

    @Test func aConnectionNoExchangeWantsGoesBackToThePool() {
        var machine = Machine()
        Self.forwarding(&machine)
        #expect(summary(machine.upstreamConnected(2, writable: true)) == "return 2")
    }

    @Test func idleAndQuiescingCloseOnlyBetweenRequests() {
        var machine = Machine()
        #expect(summary(machine.idleTimeout()) == "close")
        var busy = Machine()
        Self.forwarding(&busy)
        #expect(summary(busy.idleTimeout()) == "none")
        #expect(summary(busy.quiesce()) == "none")
        _ = busy.read(.end(nil))
        _ = busy.upstreamResponseHead(response(.ok))
        #expect(summary(busy.upstreamResponseEnd()) == "finish 1 reuse:true resume:false keepAlive:true")
        #expect(busy.nextQueued().map(summary) == "close")
        #expect(busy.nextQueued().map(summary) == nil)
    }

    @Test func aPartOutOfOrderClosesTheConnection() {
        var machine = Machine()
        #expect(summary(machine.read(.body(Self.bytes(1)))) == "close")
        #expect(summary(machine.read(.head(Self.head()))) == "none")
    }

    @Test func bytesThatAreNotHTTPGetA400OnlyWhenItAnswersTheRequestBeingRead() {
        // Between requests, or in the middle of a collected one: the 400 answers it.
        var idle = Machine()
        #expect(summary(idle.malformed()) == "refuse 400 counting malformed")
        #expect(summary(idle.read(.head(Self.head()))) == "none")
        var collecting = Machine()
        _ = collecting.read(.head(Self.head("/own")))
        _ = collecting.routed(.collect(Self.head("/own"), .own))
        #expect(summary(collecting.malformed()) == "refuse 400 counting malformed")
        // While an earlier request is being answered, a 400 would go out of order: the connection closes.
        var busy = Machine()
        Self.forwarding(&busy)
        _ = busy.read(.end(nil))
        #expect(summary(busy.malformed()) == "abandon 1 close:true then close")
        var waiting = Machine()
        Self.forwarding(&waiting)
        _ = waiting.read(.end(nil))
        _ = waiting.read(.head(Self.head("/next")))
        _ = waiting.upstreamResponseHead(response(.ok))
        _ = waiting.upstreamResponseEnd()
        #expect(summary(waiting.malformed()) == "none")
        #expect(waiting.nextQueued().map(summary) == nil)
    }

    static func forwardValue(_ uri: String, body: Machine.Forward.Body) -> Machine.Forward {
        .init(head: written(uri), body: body, keepAlive: true, authorization: nil)
    }
}

/// One line per action, so a sequence of events reads as a transcript.
private func summary(_ action: ProxyConnectionStateMachine<TestUpstream>.Action) -> String {
    func part(_ part: UpstreamRequestPart) -> String {
        switch part {
        case .head(let head): "head \(String(buffer: head.bytes).split(separator: " ")[1])"
        case .body(let data): "body \(data.readableBytes)"
        case .end: "end"
        }
    }
    func read(_ value: Bool?) -> String { value.map { "\($0)" } ?? "-" }
    func refusal(_ refusal: ProxyConnectionStateMachine<TestUpstream>.Refusal) -> String {
        "\(refusal.status.code)" + (refusal.counting.map { " counting \($0.label)" } ?? "")
    }
    switch action {
    case .none: return "none"
    case .route(let head): return "route \(head.uri)"
    case .connectUpstream: return "connect"
    case .writeUpstream(let upstream, let value): return "write \(upstream) \(part(value))"
    case .startExchange(let upstream, let pending, let flush, let readClient):
        let parts = [UpstreamRequestPart.head(pending.head)] + pending.body.map { .body($0) } + (pending.ended ? [.end] : [])
        return "start \(upstream) [\(parts.map(part).joined(separator: ", "))] flush:\(flush) read:\(read(readClient))"
    case .returnUpstream(let upstream): return "return \(upstream)"
    case .flushUpstream(let upstream, let readClient): return "flush \(upstream) read:\(read(readClient))"
    case .readClient(let on): return "read client \(on)"
    case .readUpstream(let upstream, let on): return "read upstream \(upstream) \(on)"
    case .flushClient(let pause): return "flush client" + (pause.map { ", pause \($0)" } ?? "")
    case .writeResponseHead(let head, let close, _): return "response head \(head.status.code) close:\(close)"
    case .writeResponseBody(let buffer): return "response body \(buffer.readableBytes)"
    case .finishExchange(let upstream, let reuse, let resume, let keepAlive):
        return "finish \(upstream.map { "\($0)" } ?? "-") reuse:\(reuse) resume:\(resume) keepAlive:\(keepAlive)"
    case .abandonExchange(let upstream, let close, let then):
        let after: String
        switch then {
        case .close: after = "close"
        case .respondAndContinue(let value): after = "respond \(refusal(value)) and continue"
        case .respondAndClose(let value): after = "respond \(refusal(value)) and close"
        }
        return "abandon \(upstream.map { "\($0)" } ?? "-") close:\(close) then \(after)"
    case .answer(let head, let body, let destination):
        let place: String
        switch destination {
        case .own: place = "own"
        case .gated: place = "gated"
        }
        return "answer \(head.uri) \(body.readableBytes) \(place)"
    case .endResponse(let keepAlive): return "end response keepAlive:\(keepAlive)"
    case .refuse(let value): return "refuse \(refusal(value))"
    case .close: return "close"
    }
}

/// A response head from the IdP, as the relay's parser reads it.
private func response(_ status: HTTPResponseStatus, fields: String = "Content-Length: 0\r\n") -> UpstreamResponseHead {
    try! UpstreamResponseParser.parseHead(ByteBuffer(string: "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\n\(fields)\r\n"))
}

/// An upstream connection as the tests name it: `1`, `2`, … (the machine holds its upstreams as objects).
final class TestUpstream: ExpressibleByIntegerLiteral, CustomStringConvertible {
    let number: Int
    init(integerLiteral number: Int) { self.number = number }
    var description: String { "\(number)" }
}
