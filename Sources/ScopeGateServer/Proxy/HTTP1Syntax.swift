import NIOCore

/// Why bytes read from a client or from the IdP are not HTTP/1.1 as RFC 9112 writes it.
struct HTTP1Malformed: Error, Equatable {
    let reason: String
}

/// What ScopeGate's two HTTP/1.1 readers share — `HTTP1RequestParser` for clients' requests,
/// `UpstreamResponseParser` for the IdP's responses: finding a head's end and a line's, reading field
/// lines strictly, and the bytes a token and a field value may hold.
enum HTTP1Syntax {
    static let maximumChunkLineLength = 1024
    static let maximumTrailerLength = 16 * 1024

    /// The length of the head in `buffer` (through the empty line), if it is all there; `scanned`
    /// bytes at its start are known to hold no empty line.
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

    /// Reads the field lines of a head, `raw[start..<end]` (`end` before the empty line's CRLF), each
    /// `token ":" OWS value OWS CRLF`, and calls `body` with where its name and its value (without the
    /// surrounding whitespace) are and where its line ends. Returns why the lines are malformed, or
    /// `nil`: whitespace before a colon, obsolete folding, a control character in a value, a bare LF.
    @inline(__always)
    static func forEachField(
        in raw: UnsafeRawBufferPointer, from start: Int, to end: Int,
        _ body: (_ name: Range<Int>, _ value: Range<Int>, _ lineEnd: Int) -> Void
    ) -> String? {
        var index = start
        while index < end {
            let nameStart = index
            while index < end, isTokenByte(raw[index]) { index += 1 }
            guard index > nameStart, index < end, raw[index] == UInt8(ascii: ":") else { return "malformed field name" }
            let nameEnd = index
            index += 1
            while index < end, raw[index] == 0x20 || raw[index] == 0x09 { index += 1 }
            let valueStart = index
            var valueEnd = index
            while index < end, raw[index] != 0x0D {
                let byte = raw[index]
                guard isValueByte(byte) else { return "control character in a field value" }
                index += 1
                if byte != 0x20 && byte != 0x09 { valueEnd = index }
            }
            guard index + 1 < raw.count, raw[index] == 0x0D, raw[index + 1] == 0x0A else { return "bare LF" }
            index += 2
            body(nameStart..<nameEnd, valueStart..<valueEnd, index)
        }
        return nil
    }

    /// The length of the line at the start of `buffer` without its CRLF, if its CRLF is there.
    fileprivate static func lineLength(_ buffer: ByteBuffer, limit: Int) throws(HTTP1Malformed) -> Int? {
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
            throw HTTP1Malformed(reason: "bare LF")
        }
        return found - 1
    }

    /// A chunk's size from its line: hexadecimal digits, then optional extensions (ignored).
    fileprivate static func chunkSize(_ buffer: ByteBuffer, lineLength: Int) throws(HTTP1Malformed) -> Int {
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
        guard let result else { throw HTTP1Malformed(reason: "bad chunk size") }
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

    fileprivate static func checkTrailer(_ line: ByteBuffer) throws(HTTP1Malformed) {
        let fine = line.withUnsafeReadableBytes { bytes -> Bool in
            guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return false }
            return bytes[..<colon].allSatisfy(isTokenByte) && bytes[(colon + 1)...].allSatisfy(isValueByte)
        }
        guard fine else { throw HTTP1Malformed(reason: "bad trailer field") }
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

/// A message's body as its framing delimits it (RFC 9112 §6.3, §7.1), read from bytes as they arrive:
/// the body's bytes (without chunked framing), then its end. Chunk lines and trailers are checked and
/// bounded; trailer fields are dropped (never relayed: a proxy may not know their meaning).
struct HTTP1BodyReader {
    enum Part {
        case body(ByteBuffer)
        case end
    }

    private enum State {
        case length(remaining: Int)
        case chunkLine
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers(length: Int)
        case untilClose
    }

    private var state: State

    /// A body of `length` bytes (`0`: none).
    static func length(_ length: Int) -> HTTP1BodyReader { .init(state: .length(remaining: length)) }
    static let chunked = HTTP1BodyReader(state: .chunkLine)
    /// A body that runs until the connection closes (a response only).
    static let untilClose = HTTP1BodyReader(state: .untilClose)

    var readsUntilClose: Bool {
        if case .untilClose = state { return true }
        return false
    }

    /// The next part from `buffer`, consuming what it reads; `nil` when more bytes are needed. After
    /// `.end` the reader is spent.
    mutating func next(_ buffer: inout ByteBuffer) throws(HTTP1Malformed) -> Part? {
        while true {
            switch state {
            case .length(let remaining):
                if remaining == 0 { return .end }
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                state = .length(remaining: remaining - count)
                return .body(buffer.readSlice(length: count)!)

            case .chunkLine:
                let limit = HTTP1Syntax.maximumChunkLineLength
                guard let lineLength = try HTTP1Syntax.lineLength(buffer, limit: limit) else {
                    guard buffer.readableBytes < limit else { throw HTTP1Malformed(reason: "chunk line too long") }
                    return nil
                }
                let size = try HTTP1Syntax.chunkSize(buffer, lineLength: lineLength)
                buffer.moveReaderIndex(forwardBy: lineLength + 2)
                state = size == 0 ? .trailers(length: 0) : .chunkData(remaining: size)

            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                state = count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - count)
                return .body(buffer.readSlice(length: count)!)

            case .chunkDataEnd:
                guard buffer.readableBytes >= 2 else { return nil }
                guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw HTTP1Malformed(reason: "chunk without CRLF") }
                state = .chunkLine

            case .trailers(let length):
                let limit = HTTP1Syntax.maximumTrailerLength - length
                guard let lineLength = try HTTP1Syntax.lineLength(buffer, limit: limit) else {
                    guard buffer.readableBytes < limit else { throw HTTP1Malformed(reason: "trailers too long") }
                    return nil
                }
                if lineLength > 0 { try HTTP1Syntax.checkTrailer(buffer.getSlice(at: buffer.readerIndex, length: lineLength)!) }
                buffer.moveReaderIndex(forwardBy: lineLength + 2)
                if lineLength == 0 {
                    state = .length(remaining: 0)
                    return .end
                }
                state = .trailers(length: length + lineLength + 2)

            case .untilClose:
                guard buffer.readableBytes > 0 else { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            }
        }
    }
}
