import NIOCore
import NIOHTTP1
import Testing

@testable import ScopeGateServer

/// The public listener's reader of clients' requests: what it hands to the connection handler, and
/// everything it refuses (a refusal ends the connection: nothing after it is read as a request).
@Suite struct HTTP1RequestParserTests {

    /// Everything read from `chunks`, fed one after the other, as text; the refusal's reason last.
    static func read(_ chunks: [String]) -> [String] {
        var parser = HTTP1RequestParser()
        var out: [String] = []
        var pending = ByteBuffer()
        for chunk in chunks {
            pending.writeString(chunk)
            do {
                while let part = try parser.next(&pending) {
                    switch part {
                    case .head(let head):
                        let fields = head.headers.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
                        out.append("head \(head.method.rawValue) \(head.uri) 1.\(head.version.minor) [\(fields)]")
                    case .body(let body): out.append("body \(String(buffer: body))")
                    case .end: out.append("end")
                    }
                }
            } catch {
                out.append("refused: \(error.reason)")
                return out
            }
            pending.discardReadBytes()
        }
        return out
    }

    /// Fed whole and one byte at a time: the parts must not depend on how reads split the bytes.
    static func readBothWays(_ text: String) -> [String] {
        let whole = read([text])
        let bytes = read(text.map { String($0) })
        // Body parts may come in more pieces when the bytes do; join them to compare.
        func joined(_ parts: [String]) -> [String] {
            parts.reduce(into: []) { out, part in
                if part.hasPrefix("body "), let last = out.last, last.hasPrefix("body ") {
                    out[out.count - 1] = last + part.dropFirst(5)
                } else {
                    out.append(part)
                }
            }
        }
        #expect(joined(whole) == joined(bytes), "split reads read differently")
        return joined(whole)
    }

    @Test func readsPipelinedRequestsWithTheirBodies() {
        let parts = Self.readBothWays(
            "\r\nGET /a?x=1 HTTP/1.1\r\nHost: idp\r\n\r\n"
                + "POST /t HTTP/1.1\r\nHost: idp\r\nContent-Length: 5\r\n\r\nhello"
                + "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n")
        #expect(
            parts == [
                "head GET /a?x=1 1.1 [Host=idp]", "end",
                "head POST /t 1.1 [Host=idp,Content-Length=5]", "body hello", "end",
                "head POST /c 1.1 [Transfer-Encoding=chunked]", "body abcde", "end",
            ])
    }

    @Test func fieldValuesLoseTheirSurroundingWhitespaceOnly() {
        #expect(Self.read(["GET / HTTP/1.1\r\nX-A: \t a  b \t\r\nX-B:\r\n\r\n"]) == ["head GET / 1.1 [X-A=a  b,X-B=]", "end"])
    }

    @Test(arguments: [
        ("get / HTTP/1.1\r\n\r\n", "unknown or malformed method"),
        ("PROPFIND / HTTP/1.1\r\n\r\n", "unknown or malformed method"),
        ("GET  / HTTP/1.1\r\n\r\n", "malformed request target"),
        ("GET /a b HTTP/1.1\r\n\r\n", "unsupported HTTP version"),
        ("GET /\u{e9} HTTP/1.1\r\n\r\n", "malformed request target"),
        ("GET / HTTP/2.0\r\n\r\n", "unsupported HTTP version"),
        ("GET / HTTP/1.1 \r\n\r\n", "unsupported HTTP version"),
        ("GET / HTTP/1.1\r\nHost : idp\r\n\r\n", "malformed field name"),
        ("GET / HTTP/1.1\r\nHost: idp\r\n folded\r\n\r\n", "malformed field name"),
        ("GET / HTTP/1.1\r\nX: a\u{0}b\r\n\r\n", "control character in a field value"),
        ("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "bare LF"),
        ("GET / HTTP/1.1\nHost: idp\r\n\r\n", "unsupported HTTP version"),
        ("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", "Content-Length given twice"),
        ("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", "bad Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello", "bad Content-Length"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", "both Transfer-Encoding and Content-Length"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "the last transfer coding is not chunked"),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 request"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", "chunk without CRLF"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n", "bare LF"),
    ])
    func refuses(_ request: String, _ reason: String) {
        let parts = Self.read([request])
        #expect(parts.last == "refused: \(reason)", "\(parts)")
        #expect(!parts.contains { $0.hasPrefix("end") }, "no request of a refused head is handed on")
    }

    @Test func aCodingListEndingInChunkedIsChunkedAndLeftToTheHandlerToRefuse() {
        // The handler answers 501 to any coding but `chunked` alone; the framing is still the one every
        // IdP reads (the last coding is chunked), so nothing after it can be read as another request.
        let parts = Self.read(["POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"])
        #expect(parts == ["head POST / 1.1 [Transfer-Encoding=gzip, chunked]", "body a", "end"])
    }

    @Test func nothingAfterAnUpgradeOrCONNECTIsReadAsHTTP() {
        #expect(
            Self.read(["GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /next HTTP/1.1\r\n\r\n"])
                == ["head GET /ws 1.1 [Connection=Upgrade,Upgrade=websocket,Connection=close]", "end"])
        #expect(
            Self.read(["CONNECT idp:443 HTTP/1.1\r\nContent-Length: 4\r\n\r\nGET /next HTTP/1.1\r\n\r\n"])
                == ["head CONNECT idp:443 1.1 [Content-Length=4,Connection=close]", "end"])
    }

    @Test func aHeadLongerThanTheLimitIsRefusedBeforeItsEnd() {
        let long = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: HTTP1RequestParser.maximumHeadLength)
        #expect(Self.read([long]).last == "refused: request head too long")
    }
}
