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
    /// The byte offset of the `?`, when there is a query.
    let questionMark: Int?
    /// Whether the target has a `#` (a fragment is never part of a request target: RFC 9112 §3.2).
    let hasFragment: Bool

    init(_ text: String) {
        self.text = text
        let found = text.utf8.withContiguousStorageIfAvailable { bytes -> (Int?, Bool) in
            (Self.offset(of: UInt8(ascii: "?"), in: bytes), Self.offset(of: UInt8(ascii: "#"), in: bytes) != nil)
        }
        if let found {
            (questionMark, hasFragment) = found
        } else {
            // Not contiguous UTF-8 (never for a target NIO decoded): the same, the slow way.
            questionMark = text.utf8.firstIndex(of: UInt8(ascii: "?")).map { text.utf8.distance(from: text.utf8.startIndex, to: $0) }
            hasFragment = text.utf8.contains(UInt8(ascii: "#"))
        }
    }

    /// The path: the target up to its query.
    var path: Substring {
        guard let questionMark else { return text[...] }
        return Substring(text.utf8.prefix(questionMark))
    }

    /// The query without its `?`, when there is one.
    var query: Substring? {
        questionMark.map { Substring(text.utf8.dropFirst($0 + 1)) }
    }

    /// Whether the path starts with `prefix`, compared byte for byte (`hasPrefix` on a `Substring`
    /// compares characters).
    func pathStarts(with prefix: String) -> Bool {
        path.utf8.starts(with: prefix.utf8)
    }

    /// Whether the path is `other`, byte for byte.
    func pathIs(_ other: String) -> Bool {
        let path = path
        return path.utf8.count == other.utf8.count && path.utf8.elementsEqual(other.utf8)
    }

    private static func offset(of byte: UInt8, in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let base = bytes.baseAddress, let found = memchr(base, Int32(byte), bytes.count) else { return nil }
        return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
    }
}
