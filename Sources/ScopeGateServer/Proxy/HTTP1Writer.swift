import NIOCore
import NIOHTTP1

/// A request head as it goes to the IdP, already written (`ForwardingHeaders.upstreamRequestHead`).
struct UpstreamRequestHead {
    var method: HTTPMethod
    var bytes: ByteBuffer
    /// Whether its body is sent chunked.
    var chunked: Bool

    init(method: HTTPMethod, bytes: ByteBuffer, chunked: Bool) {
        self.method = method
        self.bytes = bytes
        self.chunked = chunked
    }
}

/// A part of a request on its way to the IdP.
enum UpstreamRequestPart {
    case head(UpstreamRequestHead)
    case body(ByteBuffer)
    case end
}

/// The bytes ScopeGate writes on the pass-through path itself, each head in one buffer: the request to
/// the IdP, and the IdP's response to an HTTP/1.1 client, from the bytes it arrived in.
enum HTTP1Writer {

    /// How a relayed body is framed towards the client.
    enum Framing {
        /// As it came: a `Content-Length`, or no body at all.
        case identity
        /// Chunked by ScopeGate (the IdP's own chunks, or a body it ended by closing).
        case chunked
    }

    /// The size line of a chunk of `count` bytes.
    static func chunkLine(_ count: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 20)
        buffer.writeString(String(count, radix: 16))
        buffer.writeStaticString("\r\n")
        return buffer
    }

    static let crlf = ByteBuffer(staticString: "\r\n")
    static let lastChunk = ByteBuffer(staticString: "0\r\n\r\n")

    /// The IdP's response head as it goes to an HTTP/1.1 client: its status line and fields as they
    /// came, less the hop-by-hop ones (and any a `Connection` field names); a `Location` on the IdP's
    /// origin moved to ScopeGate's; `Connection: close` when the client's connection ends after it;
    /// chunked framing when the IdP's body has no length. Lines kept as they are copied in runs.
    static func responseHead(
        _ head: UpstreamResponseHead, into buffer: inout ByteBuffer, close: Bool, rewriteLocation: (String) -> String
    ) -> Framing {
        buffer.reserveCapacity(minimumWritableBytes: head.bytes.readableBytes + 64)
        let options = head.hasConnectionOptions ? connectionOptions(head) : []
        let code = head.status.code
        let bodiless = code < 200 || code == 204 || code == 304
        buffer.writeStaticString("HTTP/1.1 ")
        head.bytes.withUnsafeReadableBytes { raw in
            // The first run: the status code and reason phrase with their CRLF.
            var runStart = 9
            func flush(to end: Int) {
                if end > runStart { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[runStart..<end])) }
            }
            for field in head.fields {
                let start = Int(field.nameStart)
                var replacement: String?
                switch field.kind {
                case .other:
                    guard !options.isEmpty, options.contains(where: { UpstreamResponseHead.equalsIgnoringCase(head.name(field), $0) })
                    else { continue }
                case .hopByHop, .connection, .transferEncoding:
                    break
                case .contentLength:
                    guard bodiless else { continue }
                case .location:
                    let location = String(decoding: head.value(field), as: UTF8.self)
                    let rewritten = rewriteLocation(location)
                    guard rewritten != location else { continue }
                    replacement = rewritten
                }
                flush(to: start)
                runStart = Int(field.lineEnd)
                if let replacement {
                    buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[start..<Int(field.valueStart)]))
                    buffer.writeString(replacement)
                    buffer.writeStaticString("\r\n")
                }
            }
            flush(to: raw.count - 2)
        }
        if close { buffer.writeStaticString("Connection: close\r\n") }
        var framing = Framing.identity
        switch head.framing {
        case .chunked, .untilClose:
            buffer.writeStaticString("Transfer-Encoding: chunked\r\n")
            framing = .chunked
        case .none, .length:
            break
        }
        buffer.writeStaticString("\r\n")
        return framing
    }

    /// The extra field names the head's `Connection` fields list.
    private static func connectionOptions(_ head: UpstreamResponseHead) -> [ByteBufferView] {
        var names: [ByteBufferView] = []
        for field in head.fields where field.kind == .connection {
            UpstreamResponseHead.forEachToken(head.value(field)) { token in
                if !UpstreamResponseHead.equals(token, "close") && !UpstreamResponseHead.equals(token, "keep-alive") {
                    names.append(token)
                }
            }
        }
        return names
    }
}

extension UpstreamResponseHead {
    /// Whether two header names are equal, ignoring ASCII case.
    static func equalsIgnoringCase(_ a: ByteBufferView, _ b: ByteBufferView) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0 | 0x20 == $1 | 0x20 }
    }
}
