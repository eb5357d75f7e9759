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

    /// The first value of the field `name` (lower-case ASCII), as text.
    func first(_ name: StaticString) -> String? {
        for field in fields where Self.equals(self.name(field), name) { return String(decoding: value(field), as: UTF8.self) }
        return nil
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
    struct Malformed: Error, Equatable {
        let reason: String
    }

    static let maximumHeadLength = 96 * 1024
    static let maximumChunkLineLength = 1024
    static let maximumTrailerLength = 16 * 1024

    private enum State {
        /// Waiting for a response head; `scanned` bytes of the pending head have no empty line.
        case head(scanned: Int)
        case length(remaining: Int)
        case chunkLine
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers(length: Int)
        case untilClose
    }

    private var state = State.head(scanned: 0)
    /// Whether the responses still to come answer `HEAD` requests, oldest first.
    private var expectingHEAD: [Bool] = []
    private var answeringHEAD = false

    /// Notes a request sent on this connection (its response to a `HEAD` has no body).
    mutating func requestSent(method: HTTPMethod) {
        expectingHEAD.append(method == .HEAD)
    }

    /// Whether a response's body is being read until the connection closes.
    var readsUntilClose: Bool {
        if case .untilClose = state { return true }
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
                guard let headLength = Self.headLength(buffer, from: scanned) else {
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
                answeringHEAD = expectingHEAD.removeFirst()
                if answeringHEAD { head.framing = .none }
                switch head.framing {
                case .none: state = .length(remaining: 0)
                case .length(let length): state = .length(remaining: length)
                case .chunked: state = .chunkLine
                case .untilClose:
                    head.isKeepAlive = false
                    state = .untilClose
                }
                return .head(head)

            case .length(let remaining):
                if remaining == 0 {
                    state = .head(scanned: 0)
                    return .end
                }
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                state = .length(remaining: remaining - count)
                return .body(buffer.readSlice(length: count)!)

            case .chunkLine:
                guard let lineLength = try Self.lineLength(buffer, limit: Self.maximumChunkLineLength) else {
                    guard buffer.readableBytes < Self.maximumChunkLineLength else { throw Malformed(reason: "chunk line too long") }
                    return nil
                }
                let size = try Self.chunkSize(buffer, lineLength: lineLength)
                buffer.moveReaderIndex(forwardBy: lineLength + 2)
                state = size == 0 ? .trailers(length: 0) : .chunkData(remaining: size)

            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                state = count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - count)
                return .body(buffer.readSlice(length: count)!)

            case .chunkDataEnd:
                guard buffer.readableBytes >= 2 else { return nil }
                guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw Malformed(reason: "chunk without CRLF") }
                state = .chunkLine

            case .trailers(let length):
                // Trailer fields are read and dropped (never relayed: a proxy may not know their meaning).
                guard let lineLength = try Self.lineLength(buffer, limit: Self.maximumTrailerLength - length) else {
                    guard buffer.readableBytes < Self.maximumTrailerLength - length else {
                        throw Malformed(reason: "trailers too long")
                    }
                    return nil
                }
                if lineLength > 0 { try Self.checkTrailer(buffer.getSlice(at: buffer.readerIndex, length: lineLength)!) }
                buffer.moveReaderIndex(forwardBy: lineLength + 2)
                if lineLength == 0 {
                    state = .head(scanned: 0)
                    return .end
                }
                state = .trailers(length: length + lineLength + 2)

            case .untilClose:
                guard buffer.readableBytes > 0 else { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            }
        }
    }

    // MARK: - Reading lines

    /// The length of the head in `buffer` (through the empty line), if it is all there.
    static func headLength(_ buffer: ByteBuffer, from scanned: Int) -> Int? {
        buffer.withUnsafeReadableBytes { bytes -> Int? in
            var index = scanned
            while index + 3 < bytes.count {
                if bytes[index + 3] != 0x0A {
                    // Skip ahead: no CRLFCRLF can end before the next LF.
                    index += 1
                    continue
                }
                if bytes[index] == 0x0D, bytes[index + 1] == 0x0A, bytes[index + 2] == 0x0D { return index + 4 }
                index += 1
            }
            return nil
        }
    }

    /// The length of the line at the start of `buffer` without its CRLF, if its CRLF is there.
    static func lineLength(_ buffer: ByteBuffer, limit: Int) throws(Malformed) -> Int? {
        let found = buffer.withUnsafeReadableBytes { bytes -> Int? in
            var index = 0
            let end = min(bytes.count, limit + 2)
            while index < end {
                if bytes[index] == 0x0A { return index }
                index += 1
            }
            return nil
        }
        guard let found else { return nil }
        guard found > 0, buffer.getInteger(at: buffer.readerIndex + found - 1, as: UInt8.self) == 0x0D else {
            throw Malformed(reason: "bare LF")
        }
        return found - 1
    }

    /// A chunk's size from its line: hexadecimal digits, then optional extensions (ignored).
    static func chunkSize(_ buffer: ByteBuffer, lineLength: Int) throws(Malformed) -> Int {
        let result = buffer.withUnsafeReadableBytes { bytes -> Int? in
            var size = 0
            var index = 0
            while index < lineLength, let digit = hexValue(bytes[index]) {
                guard size < (1 << 52) else { return nil }
                size = size << 4 | digit
                index += 1
            }
            guard index > 0 else { return nil }
            // Only whitespace before an extension, and an extension's bytes are visible or tab/space.
            while index < lineLength, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
            if index < lineLength {
                guard bytes[index] == UInt8(ascii: ";") else { return nil }
                while index < lineLength {
                    let byte = bytes[index]
                    guard byte == 0x09 || (byte >= 0x20 && byte != 0x7F) else { return nil }
                    index += 1
                }
            }
            return size
        }
        guard let result else { throw Malformed(reason: "bad chunk size") }
        return result
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    static func checkTrailer(_ line: ByteBuffer) throws(Malformed) {
        let fine = line.withUnsafeReadableBytes { bytes -> Bool in
            guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return false }
            return bytes[..<colon].allSatisfy(isTokenByte) && bytes[(colon + 1)...].allSatisfy(isValueByte)
        }
        guard fine else { throw Malformed(reason: "bad trailer field") }
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
            while index < count {
                let nameStart = index
                while index < count, isTokenByte(raw[index]) { index += 1 }
                guard index > nameStart, index < count, raw[index] == UInt8(ascii: ":") else { return nil }
                let nameEnd = index
                index += 1
                while index < count, raw[index] == 0x20 || raw[index] == 0x09 { index += 1 }
                let valueStart = index
                var valueEnd = index
                while index < count, raw[index] != 0x0D {
                    let byte = raw[index]
                    guard isValueByte(byte) else { return nil }
                    index += 1
                    if byte != 0x20 && byte != 0x09 { valueEnd = index }
                }
                guard index + 1 < raw.count, raw[index] == 0x0D, raw[index + 1] == 0x0A else { return nil }
                index += 2
                fields.append(
                    .init(
                        nameStart: Int32(nameStart), nameLength: Int32(nameEnd - nameStart), valueStart: Int32(valueStart),
                        valueLength: Int32(valueEnd - valueStart), lineEnd: Int32(index),
                        kind: kind(UnsafeRawBufferPointer(rebasing: raw[nameStart..<nameEnd]))))
            }
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

    /// RFC 9110 §5.6.2 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    /// A byte a field value may hold: visible ASCII, space, tab, or obs-text (RFC 9110 §5.5).
    static func isValueByte(_ byte: UInt8) -> Bool {
        byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
    }
}
