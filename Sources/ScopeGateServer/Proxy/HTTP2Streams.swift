import NIOCore
import NIOHTTP1
import NIOHTTP2

/// HTTP/2 on the public listener (`tls.http2`, negotiated by ALPN): each stream becomes one HTTP/1
/// exchange for `ProxyConnectionHandler`, which forwards it to the IdP over HTTP/1.1 as ever.
///
/// HTTP/2 to HTTP/1.1 is where request smuggling hides, so what NIO's codec hands on is checked again
/// before the gate sees it. NIO's HTTP/2 handler already refuses connection-specific fields
/// (`transfer-encoding`, `connection`, …), upper-case or non-token names, CR, LF and NUL in values, and
/// DATA that disagrees with `content-length` (RFC 9113 §8.2, §8.1.1); the codec adds
/// `transfer-encoding: chunked` (or `content-length: 0`) to a body-bearing method without a length.
/// This guard also refuses:
/// - a field value with CR, LF or NUL, whatever NIO's validation settings (a header that would end
///   the HTTP/1.1 head early);
/// - a body on a request whose head has neither `content-length` nor `transfer-encoding` (a `GET`
///   with DATA frames: the IdP would see a request without a body, or read the DATA as the next
///   request);
/// and it joins several `cookie` fields into one (RFC 9113 §8.2.3), as HTTP/1.1 allows only one.
final class HTTP2RequestGuard: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Waiting for the head.
        case idle
        /// The head, held until the next part says whether a body follows.
        case holding(HTTPRequestHead)
        /// Passed on; body parts follow.
        case passing
        /// Refused: everything else of the request is dropped.
        case refused
    }

    private var state = State.idle

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.idle, .head(let head)):
            guard var checked = Self.checked(head) else { return refuse(context: context) }
            Self.joinCookies(&checked.headers)
            state = .holding(checked)
        case (.holding(let head), .body):
            guard head.headers.contains(name: "content-length") || head.headers.contains(name: "transfer-encoding") else {
                return refuse(context: context)
            }
            state = .passing
            context.fireChannelRead(wrapInboundOut(.head(head)))
            context.fireChannelRead(data)
        case (.holding(let head), .end):
            state = .passing
            context.fireChannelRead(wrapInboundOut(.head(head)))
            context.fireChannelRead(data)
        case (.passing, .body), (.passing, .end):
            context.fireChannelRead(data)
        case (.refused, _):
            break
        default:
            // A second head on one stream: not HTTP/2 as NIO's codec produces it.
            refuse(context: context)
        }
    }

    /// `head`, unless one of its field values holds CR, LF or NUL.
    static func checked(_ head: HTTPRequestHead) -> HTTPRequestHead? {
        for field in head.headers {
            if field.value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) { return nil }
        }
        return head
    }

    /// Several `cookie` fields become one, joined by "; " (RFC 9113 §8.2.3).
    static func joinCookies(_ headers: inout HTTPHeaders) {
        let cookies = headers["cookie"]
        guard cookies.count > 1 else { return }
        headers.replaceOrAdd(name: "cookie", value: cookies.joined(separator: "; "))
    }

    private func refuse(context: ChannelHandlerContext) {
        state = .refused
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        let body = context.channel.allocator.buffer(string: "ScopeGate refused the request: it cannot be passed on unambiguously\n")
        headers.add(name: "content-length", value: String(body.readableBytes))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http2, status: .badRequest, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
