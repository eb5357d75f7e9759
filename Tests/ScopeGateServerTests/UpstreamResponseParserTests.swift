import NIOCore
import NIOHTTP1
import Testing

@testable import ScopeGateServer

/// The relay's reader of the IdP's responses: what it hands on, byte for byte, and everything it refuses
/// (a refusal closes the upstream connection and the client gets 502, never a guess at the framing).
@Suite struct UpstreamResponseParserTests {

    /// Everything `parser` reads from `chunks`, fed one after the other, as text; `nil` when it refuses.
    static func read(_ chunks: [String], head: Bool = false, parser: inout UpstreamResponseParser) -> [String]? {
        var out: [String] = []
        var pending = ByteBuffer()
        for chunk in chunks {
            pending.writeString(chunk)
            do {
                while let part = try parser.next(&pending) {
                    switch part {
                    case .head(let head):
                        out.append("head \(head.status.code) \(head.framing) keepAlive:\(head.isKeepAlive)")
                    case .body(let body): out.append("body \(String(buffer: body))")
                    case .end: out.append("end")
                    }
                }
            } catch {
                return nil
            }
            pending.discardReadBytes()
        }
        return out
    }

    static func read(_ chunks: [String], method: HTTPMethod = .GET) -> [String]? {
        var parser = UpstreamResponseParser()
        parser.requestSent(method: method)
        return read(chunks, parser: &parser)
    }

    /// Feeds `text` one byte at a time: the result must not depend on how reads split it.
    static func readBytewise(_ text: String, method: HTTPMethod = .GET) -> [String]? {
        guard let parts = read(text.map { String($0) }, method: method) else { return nil }
        // Adjacent body pieces are joined, as they are the same bytes.
        var joined: [String] = []
        for part in parts {
            if part.hasPrefix("body "), let last = joined.last, last.hasPrefix("body ") {
                joined[joined.count - 1] = last + part.dropFirst(5)
            } else {
                joined.append(part)
            }
        }
        return joined
    }

    @Test func aLengthDelimitedResponse() {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: idp\r\n\r\nhello"
        #expect(Self.read([text]) == ["head 200 length(5) keepAlive:true", "body hello", "end"])
        #expect(Self.readBytewise(text) == ["head 200 length(5) keepAlive:true", "body hello", "end"])
    }

    @Test func aChunkedResponseIsUnchunkedAndItsTrailersDropped() {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n"
        let expected = ["head 200 chunked keepAlive:true", "body hello", "body !", "end"]
        #expect(Self.read([text]) == expected)
        #expect(Self.readBytewise(text) == ["head 200 chunked keepAlive:true", "body hello!", "end"])
    }

    @Test func aBodyWithoutLengthRunsUntilTheIdPCloses() {
        #expect(
            Self.read(["HTTP/1.1 200 OK\r\n\r\nall", " of it"])
                == ["head 200 untilClose keepAlive:false", "body all", "body  of it"])
    }

    @Test func responsesWithoutABody() {
        #expect(Self.read(["HTTP/1.1 204 No Content\r\n\r\n"]) == ["head 204 none keepAlive:true", "end"])
        #expect(Self.read(["HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"]) == ["head 304 none keepAlive:true", "end"])
        #expect(Self.read(["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"], method: .HEAD) == ["head 200 none keepAlive:true", "end"])
    }

    @Test func informationalResponsesAreDropped() {
        #expect(
            Self.read(["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
                == ["head 200 length(0) keepAlive:true", "end"])
    }

    @Test func persistence() {
        #expect(Self.read(["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"]) == ["head 200 length(0) keepAlive:false", "end"])
        #expect(Self.read(["HTTP/1.1 200 OK\r\nConnection: x-other, Close\r\nContent-Length: 0\r\n\r\n"]) == ["head 200 length(0) keepAlive:false", "end"])
        #expect(Self.read(["HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"]) == ["head 200 length(0) keepAlive:false", "end"])
        #expect(
            Self.read(["HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"]) == ["head 200 length(0) keepAlive:true", "end"])
    }

    @Test func twoResponsesInOneRead() {
        var parser = UpstreamResponseParser()
        parser.requestSent(method: .GET)
        parser.requestSent(method: .GET)
        #expect(
            Self.read(["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nb"], parser: &parser)
                == ["head 200 length(1) keepAlive:true", "body a", "end", "head 404 length(1) keepAlive:true", "body b", "end"])
    }

    @Test func aResponseNobodyAskedForIsRefused() {
        var parser = UpstreamResponseParser()
        #expect(Self.read(["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], parser: &parser) == nil)
    }

    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",  // two lengths
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",  // a list
        "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",  // both
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",  // obs-fold
        "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",  // space before the colon
        "HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\nContent-Length: 0\r\n\r\n",  // NUL in a value
        "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",  // bare CR
        "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",  // bare LF
        "HTTP/1.1 200 OK\r\nX(A): 1\r\nContent-Length: 0\r\n\r\n",  // not a token
        "HTTP/1.1 200 OK\r\n: 1\r\nContent-Length: 0\r\n\r\n",  // no name
        "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        "http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  // a chunk size that is not hex
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",  // no CRLF after the data
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n",  // bare LF on the size line
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",  // too large
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n",
    ])
    func whatIsRefused(_ text: String) {
        #expect(Self.read([text]) == nil)
    }

    @Test func anEndlessHeadIsRefused() {
        let endless = "HTTP/1.1 200 OK\r\n" + String(repeating: "X-Filler: 0123456789abcdef\r\n", count: 5_000)
        #expect(Self.read([endless]) == nil)
    }

    @Test func theHeadKeepsItsBytes() throws {
        var buffer = ByteBuffer(string: "HTTP/1.1 302 Found\r\nLocation:  https://idp.example/cb?code=1 \r\nX-Empty:\r\n\r\n")
        var parser = UpstreamResponseParser()
        parser.requestSent(method: .GET)
        guard case .head(let head) = try parser.next(&buffer) else {
            Issue.record("no head")
            return
        }
        #expect(head.location == "https://idp.example/cb?code=1")
        let empty = head.fields.first { UpstreamResponseHead.equals(head.name($0), "x-empty") }
        #expect(empty.map { head.value($0).isEmpty } == true)
        #expect(String(decoding: head.statusLine, as: UTF8.self) == "302 Found")
        #expect(head.head.headers["Location"] == ["https://idp.example/cb?code=1"])
    }
}

/// What an HTTP/1.1 client is sent of a relayed response.
@Suite struct HTTP1WriterTests {
    static func written(_ text: String, close: Bool = false, method: HTTPMethod = .GET) throws -> (String, HTTP1Writer.Framing) {
        var buffer = ByteBuffer(string: text)
        var parser = UpstreamResponseParser()
        parser.requestSent(method: method)
        guard case .head(let head) = try parser.next(&buffer) else { throw UpstreamResponseParser.Malformed(reason: "no head") }
        var bytes = ByteBuffer()
        let framing = HTTP1Writer.responseHead(
            head, into: &bytes, close: close,
            rewriteLocation: { $0.replacingOccurrences(of: "http://idp:8080", with: "https://gate.example") })
        return (String(buffer: bytes), framing)
    }

    @Test func hopByHopFieldsAreDroppedAndTheRestKeptAsTheyCame() throws {
        let (head, framing) = try Self.written(
            "HTTP/1.1 200 Fine Thanks\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nset-cookie: a=b\r\nProxy-Authenticate: Basic\r\nContent-Length: 2\r\n\r\nok"
        )
        #expect(head == "HTTP/1.1 200 Fine Thanks\r\nset-cookie: a=b\r\nContent-Length: 2\r\n\r\n")
        #expect(framing == .identity)
    }

    @Test func aBodyWithoutLengthIsChunkedAndTheClientToldWhenItsConnectionCloses() throws {
        let (chunked, framing) = try Self.written("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", close: true)
        #expect(chunked == "HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(framing == .chunked)
        let (untilClose, _) = try Self.written("HTTP/1.0 200 OK\r\n\r\n")
        #expect(untilClose == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    }

    @Test func aLocationOnTheIdPsOriginMovesToScopeGates() throws {
        let (head, _) = try Self.written("HTTP/1.1 302 Found\r\nLocation: http://idp:8080/login\r\nContent-Length: 0\r\n\r\n")
        #expect(head == "HTTP/1.1 302 Found\r\nLocation: https://gate.example/login\r\nContent-Length: 0\r\n\r\n")
    }

    @Test func noLengthOnAResponseThatCannotHaveABody() throws {
        let (head, framing) = try Self.written("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n")
        #expect(head == "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
        #expect(framing == .identity)
        let (toHead, _) = try Self.written("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", method: .HEAD)
        #expect(toHead == "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    }

    @Test func theRequestHeadForTheIdPHasTheSameFieldsAsTheHeadersAndScopeGatesOwnFormType() {
        let headers: HTTPHeaders = [
            "Host": "gate.example", "Content-Type": "text/plain", "Connection": "keep-alive, X-Drop", "X-Drop": "1",
            "X-HTTP-Method-Override": "DELETE", "Accept": "*/*",
        ]
        let peer = ForwardingHeaders.Peer(address: "192.0.2.7", trusted: false, scheme: "https")
        let fields = ForwardingHeaders.upstreamRequest(
            from: headers, peer: peer, host: "idp:8080", publicHost: "gate.example", bodyFraming: .length(4))
        let written = ForwardingHeaders.upstreamRequestHead(
            method: .POST, target: "/token", from: headers, peer: peer, host: "idp:8080", publicHost: "gate.example",
            bodyFraming: .length(4), allocator: .init())
        let expected = "POST /token HTTP/1.1\r\n" + fields.map { "\($0.name): \($0.value)\r\n" }.joined() + "\r\n"
        #expect(String(buffer: written) == expected)
        #expect(!expected.contains("X-Drop") && !expected.contains("Override") && expected.contains("Content-Type: text/plain"))
        let form = ForwardingHeaders.upstreamRequestHead(
            method: .POST, target: "/token", from: headers, peer: peer, host: "idp:8080", publicHost: "gate.example",
            bodyFraming: .length(4), contentType: "application/x-www-form-urlencoded", allocator: .init())
        // The forwarding fields made once per connection are the same as those made per request.
        let cached = ForwardingHeaders.upstreamRequestHead(
            method: .POST, target: "/token", from: headers, peer: peer, host: "idp:8080", publicHost: "gate.example",
            bodyFraming: .length(4),
            forwardingFields: ForwardingHeaders.forwardingFields(peer: peer, publicHost: "gate.example", allocator: .init()),
            allocator: .init())
        #expect(cached == written)
        #expect(!String(buffer: form).contains("text/plain"))
        #expect(String(buffer: form).hasSuffix("Content-Type: application/x-www-form-urlencoded\r\n\r\n"))
    }
}
