import NIOCore
import NIOHTTP1

/// The head of a response from the IdP, kept as the bytes it arrived in.
///
/// Pass-through responses are relayed without building a `String` per header: the head is checked
/// once (status line, every field's name and value, the framing), and its fields are written to the
/// client from these bytes, less the hop-by-hop ones (`ResponseHeadWriter`).
struct UpstreamResponseHead {
    /// One field: where its line, its name and its value (without surrounding whitespace) are in
    /// `bytes`, and what kind of field it is to a proxy.
    struct Field {
        var nameStart: Int32
        var nameLength: Int32
        var valueStart: Int32
        var valueLength: Int32
        /// Just past the line's CRLF.
        var lineEnd: Int32
        var kind: Kind
    }

    /// The fields a relay treats apart from the others.
    enum Kind: UInt8 {
        case other
        /// Hop-by-hop (RFC 9110 §7.6.1), other than the two below.
        case hopByHop
        case connection
        case transferEncoding
        case contentLength
        case location
    }

    /// How the response's body is delimited on the wire (RFC 9112 §6.3).
    enum Framing: Equatable {
        /// No body: a response to `HEAD`, a 204 or a 304.
        case none
        case length(Int)
        case chunked
        /// The body runs until the IdP closes the connection.
        case untilClose
    }

    var version: HTTPVersion
    var status: HTTPResponseStatus
    /// The whole head, status line to the empty line.
    var bytes: ByteBuffer
    var fields: [Field]
    var framing: Framing
    /// Whether the IdP keeps the connection open after this response.
    var isKeepAlive: Bool
    /// Whether a `Connection` field names fields other than `close` and `keep-alive` (to be dropped).
    var hasConnectionOptions = false

    /// The name of `field`.
    func name(_ field: Field) -> ByteBufferView {
        bytes.readableBytesView[
            bytes.readerIndex + Int(field.nameStart)..<bytes.readerIndex + Int(field.nameStart + field.nameLength)]
    }

    /// The value of `field`.
    func value(_ field: Field) -> ByteBufferView {
        bytes.readableBytesView[
            bytes.readerIndex + Int(field.valueStart)..<bytes.readerIndex + Int(field.valueStart + field.valueLength)]
    }

    /// The first `Location` field's value, as text (its kind was noted when the head was read).
    var location: String? {
        for field in fields where field.kind == .location { return String(decoding: value(field), as: UTF8.self) }
        return nil
    }

    /// The head as NIO's type, for the places that need one (a stream of an HTTP/2 connection).
    var head: HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(fields.count)
        for field in fields {
            headers.add(
                name: String(decoding: name(field), as: UTF8.self), value: String(decoding: value(field), as: UTF8.self))
        }
        return HTTPResponseHead(version: version, status: status, headers: headers)
    }

    /// The status code and reason phrase as they arrived ("200 OK").
    var statusLine: ByteBufferView {
        let view = bytes.readableBytesView
        let start = view.startIndex + 9
        let end = view[start...].firstIndex(of: 0x0D) ?? start + 3
        return view[start..<end]
    }

    /// Calls `body` with each comma-separated element of `value`, without surrounding whitespace.
    static func forEachToken(_ value: ByteBufferView, _ body: (ByteBufferView) -> Void) {
        var start = value.startIndex
        while start <= value.endIndex {
            let end = value[start...].firstIndex(of: UInt8(ascii: ",")) ?? value.endIndex
            var first = start
            var last = end
            while first < last, value[first] == 0x20 || value[first] == 0x09 { first += 1 }
            while last > first, value[last - 1] == 0x20 || value[last - 1] == 0x09 { last -= 1 }
            if first < last { body(value[first..<last]) }
            start = end + 1
        }
    }

    /// Whether `bytes` equals the lower-case ASCII `name`, ignoring ASCII case.
    static func equals(_ bytes: ByteBufferView, _ name: StaticString) -> Bool {
        bytes.withContiguousStorageIfAvailable { ForwardingHeaders.matches($0, name) }
            ?? ForwardingHeaders.equalsIgnoringCase(String(decoding: bytes, as: UTF8.self), name)
    }
}

/// One part of a response from the IdP.
enum UpstreamResponsePart {
    case head(UpstreamResponseHead)
    /// Body bytes, without any chunked framing.
    case body(ByteBuffer)
    case end
}

/// Reads the IdP's responses on one upstream connection, strictly: anything this parser does not read
/// exactly as RFC 9112 writes it ends the connection (the client gets `502`), so a response can never
/// be framed differently here than the IdP meant. Refused: obsolete line folding, whitespace before a
/// field's colon, control characters in a value, bare LF line ends, `Content-Length` with anything but
/// digits or with two different values, a transfer coding other than `chunked`, `Transfer-Encoding`
/// together with `Content-Length`, `101` (no upgrade is ever asked for), heads over `maximumHeadLength`.
/// Informational (1xx) responses are read and dropped: the final response follows.
struct UpstreamResponseParser {
    typealias Malformed = HTTP1Malformed

    static let maximumHeadLength = 96 * 1024

    private enum State {
        /// Waiting for a response head; `scanned` bytes of the pending head have no empty line.
        case head(scanned: Int)
        case body(HTTP1BodyReader)
    }

    private var state = State.head(scanned: 0)
    /// Whether the responses still to come answer `HEAD` requests, oldest first.
    private var expectingHEAD: [Bool] = []

    /// Notes a request sent on this connection (its response to a `HEAD` has no body).
    mutating func requestSent(method: HTTPMethod) {
        expectingHEAD.append(method == .HEAD)
    }

    /// Whether a response's body is being read until the connection closes.
    var readsUntilClose: Bool {
        if case .body(let reader) = state { return reader.readsUntilClose }
        return false
    }

    /// Whether the parser is between responses, none of them awaited.
    var isIdle: Bool {
        if case .head(let scanned) = state { return scanned == 0 && expectingHEAD.isEmpty }
        return false
    }

    /// The next part from `buffer`, consuming what it reads; `nil` when more bytes are needed.
    mutating func next(_ buffer: inout ByteBuffer) throws(Malformed) -> UpstreamResponsePart? {
        while true {
            switch state {
            case .head(let scanned):
                guard let headLength = HTTP1Syntax.headLength(buffer, from: scanned) else {
                    guard buffer.readableBytes <= Self.maximumHeadLength else { throw Malformed(reason: "response head too long") }
                    state = .head(scanned: max(0, buffer.readableBytes - 3))
                    return nil
                }
                guard headLength <= Self.maximumHeadLength else { throw Malformed(reason: "response head too long") }
                let bytes = buffer.readSlice(length: headLength)!
                state = .head(scanned: 0)
                var head = try Self.parseHead(bytes)
                if head.status.code < 200 {
                    // 100 Continue, 103 Early Hints, …: the final response to the same request follows.
                    continue
                }
                guard !expectingHEAD.isEmpty else { throw Malformed(reason: "a response nobody asked for") }
                if expectingHEAD.removeFirst() { head.framing = .none }
                switch head.framing {
                case .none: state = .body(.length(0))
                case .length(let length): state = .body(.length(length))
                case .chunked: state = .body(.chunked)
                case .untilClose:
                    head.isKeepAlive = false
                    state = .body(.untilClose)
                }
                return .head(head)

            case .body(var reader):
                let part = try reader.next(&buffer)
                switch part {
                case nil:
                    state = .body(reader)
                    return nil
                case .body(let bytes)?:
                    state = .body(reader)
                    return .body(bytes)
                case .end?:
                    state = .head(scanned: 0)
                    return .end
                }
            }
        }
    }

    // MARK: - The head

    /// Reads a head: its status line, its fields, and from them its framing and persistence.
    static func parseHead(_ bytes: ByteBuffer) throws(Malformed) -> UpstreamResponseHead {
        var fields: [UpstreamResponseHead.Field] = []
        fields.reserveCapacity(12)
        let parsed = bytes.withUnsafeReadableBytes { raw -> (HTTPVersion, Int)? in
            // The status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF.
            let count = raw.count - 2  // the final CRLF of the empty line
            guard count >= 14, raw[0] == UInt8(ascii: "H"), raw[1] == UInt8(ascii: "T"), raw[2] == UInt8(ascii: "T"),
                raw[3] == UInt8(ascii: "P"), raw[4] == UInt8(ascii: "/"), raw[5] == UInt8(ascii: "1"),
                raw[6] == UInt8(ascii: "."), raw[7] == UInt8(ascii: "1") || raw[7] == UInt8(ascii: "0"), raw[8] == 0x20
            else { return nil }
            let minor = Int(raw[7] - UInt8(ascii: "0"))
            var status = 0
            for index in 9..<12 {
                guard raw[index] >= UInt8(ascii: "0"), raw[index] <= UInt8(ascii: "9") else { return nil }
                status = status * 10 + Int(raw[index] - UInt8(ascii: "0"))
            }
            guard status >= 100, status < 600 else { return nil }
            var index = 12
            if raw[index] == 0x20 {
                index += 1
                while index < count, raw[index] != 0x0D {
                    guard raw[index] == 0x09 || (raw[index] >= 0x20 && raw[index] != 0x7F) else { return nil }
                    index += 1
                }
            }
            guard index + 1 < count + 2, raw[index] == 0x0D, raw[index + 1] == 0x0A else { return nil }
            index += 2
            // The fields, each: token ":" OWS value OWS CRLF.
            let failure = HTTP1Syntax.forEachField(in: raw, from: index, to: count) { name, value, lineEnd in
                fields.append(
                    .init(
                        nameStart: Int32(name.lowerBound), nameLength: Int32(name.count), valueStart: Int32(value.lowerBound),
                        valueLength: Int32(value.count), lineEnd: Int32(lineEnd), kind: kind(UnsafeRawBufferPointer(rebasing: raw[name]))))
            }
            guard failure == nil else { return nil }
            return (HTTPVersion(major: 1, minor: minor), status)
        }
        guard let (version, code) = parsed else { throw Malformed(reason: "malformed response head") }
        // The reason phrase is relayed from `bytes` (`statusLine`), never rebuilt.
        var head = UpstreamResponseHead(
            version: version, status: .init(statusCode: code), bytes: bytes, fields: fields, framing: .untilClose,
            isKeepAlive: version.minor == 1)
        guard code != 101 else { throw Malformed(reason: "101 without an upgrade asked for") }
        try frame(&head)
        return head
    }

    /// Sets the head's framing and persistence from its `Content-Length`, `Transfer-Encoding` and
    /// `Connection` fields.
    private static func frame(_ head: inout UpstreamResponseHead) throws(Malformed) {
        var length: Int?
        var chunked = false
        var connectionClose = false
        var connectionKeepAlive = false
        for field in head.fields where field.kind != .other && field.kind != .hopByHop && field.kind != .location {
            let value = head.value(field)
            switch field.kind {
            case .contentLength:
                guard !value.isEmpty, value.count <= 15, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    throw Malformed(reason: "bad Content-Length")
                }
                let parsed = value.reduce(0) { $0 * 10 + Int($1 - 0x30) }
                guard length == nil || length == parsed else { throw Malformed(reason: "two different Content-Lengths") }
                length = parsed
            case .transferEncoding:
                guard !chunked, UpstreamResponseHead.equals(value, "chunked") else {
                    throw Malformed(reason: "a transfer coding other than chunked")
                }
                chunked = true
            case .connection:
                if UpstreamResponseHead.equals(value, "keep-alive") {
                    connectionKeepAlive = true
                } else if UpstreamResponseHead.equals(value, "close") {
                    connectionClose = true
                } else {
                    UpstreamResponseHead.forEachToken(value) { token in
                        if UpstreamResponseHead.equals(token, "close") {
                            connectionClose = true
                        } else if UpstreamResponseHead.equals(token, "keep-alive") {
                            connectionKeepAlive = true
                        } else {
                            head.hasConnectionOptions = true
                        }
                    }
                }
            case .other, .hopByHop, .location:
                break
            }
        }
        if chunked && length != nil { throw Malformed(reason: "both Transfer-Encoding and Content-Length") }
        let code = head.status.code
        if code == 204 || code == 304 {
            head.framing = .none
        } else if chunked {
            head.framing = .chunked
        } else if let length {
            head.framing = .length(length)
        } else {
            head.framing = .untilClose
        }
        head.isKeepAlive = head.version.minor == 1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        if case .untilClose = head.framing { head.isKeepAlive = false }
    }

    /// What kind of field the name in `name` is. Most names are told apart by their length alone.
    static func kind(_ name: UnsafeRawBufferPointer) -> UpstreamResponseHead.Kind {
        let bytes = name.bindMemory(to: UInt8.self)
        switch bytes.count {
        case 8 where ForwardingHeaders.matches(bytes, "location"): return .location
        case 10 where ForwardingHeaders.matches(bytes, "connection"): return .connection
        case 14 where ForwardingHeaders.matches(bytes, "content-length"): return .contentLength
        case 17 where ForwardingHeaders.matches(bytes, "transfer-encoding"): return .transferEncoding
        default:
            guard bytes.count < 64, ForwardingHeaders.hopByHopLengths & (1 << UInt64(bytes.count)) != 0,
                case .hopByHop = ForwardingHeaders.disposition(of: bytes)
            else { return .other }
            return .hopByHop
        }
    }
}
