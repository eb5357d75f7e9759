#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A request target (`path?query`) as the proxy reads it for every request: where the query begins
/// and whether a fragment was sent, found by `memchr` over the target's bytes rather than by walking
/// `String` indices, and the path as a slice that needs no index alignment.
struct RequestTarget {
    let text: String
    /// The target up to its query.
    let path: Substring
    /// The byte offset of the `?`, when there is a query.
    private let questionMark: Int?
    /// Whether the target has a `#` (a fragment is never part of a request target: RFC 9112 §3.2).
    let hasFragment: Bool

    init(_ text: String) {
        self.text = text
        var contiguous = text  // already contiguous for a target NIO decoded: nothing is copied
        (questionMark, hasFragment) = contiguous.withUTF8 { bytes in
            (Self.offset(of: UInt8(ascii: "?"), in: bytes), Self.offset(of: UInt8(ascii: "#"), in: bytes) != nil)
        }
        path = questionMark.map { Substring(text.utf8.prefix($0)) } ?? text[...]
    }

    /// The query without its `?`, when there is one.
    var query: Substring? {
        questionMark.map { Substring(text.utf8.dropFirst($0 + 1)) }
    }

    private static func offset(of byte: UInt8, in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let base = bytes.baseAddress, let found = memchr(base, Int32(byte), bytes.count) else { return nil }
        return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
    }
}
