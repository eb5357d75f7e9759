import NIOCore
import NIOHTTP1

/// Reads clients' HTTP/1.1 requests, strictly, as parts for `ProxyConnectionHandler`.
///
/// What NIO's request decoder does for this listener, without its C parser's per-byte callbacks and
/// the cumulation of `ByteToMessageHandler`: the head is found with one scan for its empty line and
/// checked once. Whatever an IdP framework could frame or name differently is refused (RFC 9112): a
/// method other than the standard ones (case matters: `get` is refused, never forwarded for an IdP that
/// upper-cases it), a request target with anything but visible ASCII, a version other than 1.0 and 1.1,
/// whitespace before a field's colon, obsolete line folding, control characters in a value, bare LF
/// line ends, `Content-Length` with anything but digits or given twice, `Transfer-Encoding` whose last
/// coding is not `chunked` or together with `Content-Length`, heads over `maximumHeadLength`. A refusal
/// reaches the handler as an `HTTPParserError` (answered `400` when nothing else is under way) and
/// nothing more of the connection is read. An upgrade or `CONNECT` request ends with its head: nothing
/// after it is read as HTTP (the handler refuses or forwards the head alone, then closes the connection:
/// the head is handed on with `Connection: close`). An HTTP/1.0 request with a transfer coding is
/// refused (RFC 9112 §6.1).
///
/// Parts go straight to the connection's `ProxyConnectionHandler` (the next handler), not through the
/// pipeline: no boxing and casting of each part on its way.
final class HTTP1RequestDecoder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let receiver: ProxyConnectionHandler
    private var parser = HTTP1RequestParser()
    /// Bytes received and not read yet (a part of a head, a chunk line, …).
    private var pending: ByteBuffer?
    private var failed = false

    init(delivering receiver: ProxyConnectionHandler) {
        self.receiver = receiver
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var buffer = unwrapInboundIn(data)
        if var earlier = pending {
            pending = nil
            earlier.writeBuffer(&buffer)
            buffer = earlier
        }
        do {
            while let part = try parser.next(&buffer) {
                receiver.received(part)
            }
        } catch {
            failed = true
            pending = nil
            context.fireErrorCaught(error.parserError)
            return
        }
        if buffer.readableBytes > 0 {
            if buffer.readerIndex > 4096 { buffer.discardReadBytes() }
            pending = buffer
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        pending = nil
    }
}

/// The request parser of `HTTP1RequestDecoder`, as a value: bytes in, parts out.
struct HTTP1RequestParser {
    struct Malformed: Error, Equatable {
        let reason: String
        /// The error NIO's decoder would have raised for it.
        let parserError: HTTPParserError
    }

    /// The largest head read (NIO's decoder's default).
    static let maximumHeadLength = 80 * 1024

    private enum State {
        /// Waiting for a request head; `scanned` bytes of the pending head have no empty line.
        case head(scanned: Int)
        case body(HTTP1BodyReader)
        /// After an upgrade or `CONNECT`: nothing more is HTTP to read.
        case stopped
    }

    private var state = State.head(scanned: 0)
    /// Whether the request whose head was read ends the HTTP on this connection.
    private var stopsAfterEnd = false

    /// The next part from `buffer`, consuming what it reads; `nil` when more bytes are needed.
    mutating func next(_ buffer: inout ByteBuffer) throws(Malformed) -> HTTPServerRequestPart? {
        switch state {
        case .head(var scanned):
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            if scanned == 0 {
                while buffer.readableBytes >= 2, buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
                    buffer.moveReaderIndex(forwardBy: 2)
                }
            }
            guard let headLength = HTTP1Syntax.headLength(buffer, from: scanned), headLength <= Self.maximumHeadLength else {
                guard buffer.readableBytes <= Self.maximumHeadLength else {
                    throw Malformed(reason: "request head too long", parserError: .headerOverflow)
                }
                scanned = max(0, buffer.readableBytes - 3)
                state = .head(scanned: scanned)
                return nil
            }
            let parsed = try Self.parseHead(buffer.readSlice(length: headLength)!)
            stopsAfterEnd = parsed.stops
            switch parsed.framing {
            case .length(let length) where !parsed.stops: state = .body(.length(length))
            case .chunked where !parsed.stops: state = .body(.chunked)
            default: state = .body(.length(0))
            }
            return .head(parsed.head)

        case .body(var reader):
            let part: HTTP1BodyReader.Part?
            do {
                part = try reader.next(&buffer)
            } catch {
                throw Malformed(reason: error.reason, parserError: .invalidChunkSize)
            }
            switch part {
            case nil:
                state = .body(reader)
                return nil
            case .body(let bytes)?:
                state = .body(reader)
                return .body(bytes)
            case .end?:
                state = stopsAfterEnd ? .stopped : .head(scanned: 0)
                return .end(nil)
            }

        case .stopped:
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            return nil
        }
    }

    enum Framing: Equatable {
        case length(Int)
        case chunked
    }

    /// Reads a request head: its request line, its fields, and from them its framing.
    static func parseHead(_ bytes: ByteBuffer) throws(Malformed) -> (head: HTTPRequestHead, framing: Framing, stops: Bool) {
        var headers = HTTPHeaders()
        var contentLength: Int?
        var contentLengths = 0
        var lastCoding: ByteBufferView?
        var codings = 0
        var connectionUpgrade = false
        var upgrade = false
        var badContentLength = false
        var failure: Malformed?
        let line = bytes.withUnsafeReadableBytes { raw -> (HTTPMethod, String, HTTPVersion)? in
            let count = raw.count - 2  // the final CRLF of the empty line
            // The request line: method SP request-target SP HTTP-version CRLF.
            var index = 0
            while index < count, HTTP1Syntax.isTokenByte(raw[index]) { index += 1 }
            guard index > 0, index < count, raw[index] == 0x20,
                let method = method(UnsafeRawBufferPointer(rebasing: raw[0..<index]))
            else {
                failure = Malformed(reason: "unknown or malformed method", parserError: .invalidMethod)
                return nil
            }
            index += 1
            let targetStart = index
            while index < count, raw[index] > 0x20, raw[index] < 0x7F { index += 1 }
            guard index > targetStart, index + 10 <= count, raw[index] == 0x20 else {
                failure = Malformed(reason: "malformed request target", parserError: .invalidURL)
                return nil
            }
            let target = String(decoding: UnsafeRawBufferPointer(rebasing: raw[targetStart..<index]), as: UTF8.self)
            index += 1
            guard raw[index] == UInt8(ascii: "H"), raw[index + 1] == UInt8(ascii: "T"), raw[index + 2] == UInt8(ascii: "T"),
                raw[index + 3] == UInt8(ascii: "P"), raw[index + 4] == UInt8(ascii: "/"), raw[index + 5] == UInt8(ascii: "1"),
                raw[index + 6] == UInt8(ascii: "."), raw[index + 7] == UInt8(ascii: "1") || raw[index + 7] == UInt8(ascii: "0"),
                raw[index + 8] == 0x0D, raw[index + 9] == 0x0A
            else {
                failure = Malformed(reason: "unsupported HTTP version", parserError: .invalidVersion)
                return nil
            }
            let version = HTTPVersion(major: 1, minor: Int(raw[index + 7] - UInt8(ascii: "0")))
            index += 10
            // The fields, each: token ":" OWS value OWS CRLF.
            let malformedField = HTTP1Syntax.forEachField(in: raw, from: index, to: count) { nameRange, valueRange, _ in
                let name = UnsafeRawBufferPointer(rebasing: raw[nameRange])
                let value = UnsafeRawBufferPointer(rebasing: raw[valueRange])
                let field = bytes.readableBytesView[bytes.readerIndex + valueRange.lowerBound..<bytes.readerIndex + valueRange.upperBound]
                if name.count == 7, ForwardingHeaders.matches(name.bindMemory(to: UInt8.self), "upgrade") { upgrade = true }
                switch UpstreamResponseParser.kind(name) {
                case .contentLength:
                    contentLengths += 1
                    guard !value.isEmpty, value.count <= 15, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                        badContentLength = true
                        return
                    }
                    contentLength = value.reduce(0) { $0 * 10 + Int($1 - 0x30) }
                case .transferEncoding:
                    codings += 1
                    UpstreamResponseHead.forEachToken(field) { lastCoding = $0 }
                case .connection:
                    UpstreamResponseHead.forEachToken(field) { token in
                        if UpstreamResponseHead.equals(token, "upgrade") { connectionUpgrade = true }
                    }
                default:
                    break
                }
                headers.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
            }
            if let malformedField {
                failure = Malformed(reason: malformedField, parserError: .invalidHeaderToken)
                return nil
            }
            if badContentLength {
                failure = Malformed(reason: "bad Content-Length", parserError: .unexpectedContentLength)
                return nil
            }
            return (method, target, version)
        }
        guard let (method, target, version) = line else {
            throw failure ?? Malformed(reason: "malformed request head", parserError: .unknown)
        }
        guard contentLengths <= 1 else {
            throw Malformed(reason: "Content-Length given twice", parserError: .unexpectedContentLength)
        }
        var framing = Framing.length(contentLength ?? 0)
        if codings > 0 {
            guard contentLengths == 0 else {
                throw Malformed(reason: "both Transfer-Encoding and Content-Length", parserError: .unexpectedContentLength)
            }
            // An HTTP/1.0 message with a transfer coding is framed faultily (RFC 9112 §6.1).
            guard version.minor == 1 else {
                throw Malformed(reason: "Transfer-Encoding in an HTTP/1.0 request", parserError: .invalidVersion)
            }
            guard let lastCoding, UpstreamResponseHead.equals(lastCoding, "chunked") else {
                throw Malformed(reason: "the last transfer coding is not chunked", parserError: .invalidConstant)
            }
            framing = .chunked
        }
        let stops = method == .CONNECT || (connectionUpgrade && upgrade)
        // Nothing after such a request is read: the connection closes once it is answered.
        if stops { headers.add(name: "Connection", value: "close") }
        let head = HTTPRequestHead(version: version, method: method, uri: target, headers: headers)
        return (head, framing, stops)
    }

    /// The standard methods (RFC 9110 §9, RFC 5789), exactly as written there.
    static func method(_ bytes: UnsafeRawBufferPointer) -> HTTPMethod? {
        func equals(_ name: StaticString) -> Bool {
            guard name.utf8CodeUnitCount == bytes.count else { return false }
            let expected = name.utf8Start
            for index in 0..<bytes.count where bytes[index] != expected[index] { return false }
            return true
        }
        switch bytes.count {
        case 3: return equals("GET") ? .GET : equals("PUT") ? .PUT : nil
        case 4: return equals("POST") ? .POST : equals("HEAD") ? .HEAD : nil
        case 5: return equals("PATCH") ? .PATCH : equals("TRACE") ? .TRACE : nil
        case 6: return equals("DELETE") ? .DELETE : nil
        case 7: return equals("OPTIONS") ? .OPTIONS : equals("CONNECT") ? .CONNECT : nil
        default: return nil
        }
    }
}
