#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A glob over scope tokens: `*` matches any run of characters (also none), `?` exactly one, and every
/// other character only itself. Matching is case-sensitive, as scopes are.
///
/// Patterns and the names they match are printable ASCII (the configuration and the parsers check it),
/// so matching runs over bytes, without building anything per call.
public struct GlobPattern: Sendable, Hashable, CustomStringConvertible {
    /// The pattern as written in the configuration.
    public let source: String
    private let bytes: [UInt8]
    private let hasWildcards: Bool

    /// Creates a pattern from its text.
    public init(_ source: String) {
        self.source = source
        self.bytes = Array(source.utf8)
        self.hasWildcards = bytes.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") }
    }

    /// Whether `text` matches the whole pattern.
    public func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { matches(utf8: $0) }
    }

    /// Whether the UTF-8 bytes `input` match the whole pattern (for callers matching one text against
    /// many patterns: the text's bytes are reached once, and nothing is copied or retained per pattern).
    public func matches(utf8 input: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.withUnsafeBufferPointer { pattern in
            if !hasWildcards {
                return pattern.count == input.count && (input.isEmpty || memcmp(pattern.baseAddress!, input.baseAddress!, input.count) == 0)
            }
            return Self.matches(pattern: pattern, input)
        }
    }

    private static func matches(pattern: UnsafeBufferPointer<UInt8>, _ input: UnsafeBufferPointer<UInt8>) -> Bool {
        let star = UInt8(ascii: "*")
        let any = UInt8(ascii: "?")
        var p = 0
        var t = 0
        var starP = -1
        var starT = 0
        while t < input.count {
            if p < pattern.count, pattern[p] == any || (pattern[p] != star && pattern[p] == input[t]) {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == star {
                starP = p
                starT = t
                p += 1
            } else if starP >= 0 {
                p = starP + 1
                starT += 1
                t = starT
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == star { p += 1 }
        return p == pattern.count
    }

    public var description: String { source }

    /// Whether some text matches both this pattern and `other`: a walk over pairs of positions in the
    /// two patterns, each step matching one character on both sides or letting a `*` match nothing.
    public func overlaps(_ other: GlobPattern) -> Bool {
        let a = bytes, b = other.bytes
        let star = UInt8(ascii: "*"), any = UInt8(ascii: "?")
        var seen = Set<Int>()
        var pending = [(0, 0)]
        while let (i, j) = pending.popLast() {
            guard seen.insert(i * (b.count + 1) + j).inserted else { continue }
            if i == a.count, j == b.count { return true }
            if i < a.count, a[i] == star { pending.append((i + 1, j)) }
            if j < b.count, b[j] == star { pending.append((i, j + 1)) }
            guard i < a.count, j < b.count else { continue }
            // One character on both sides: literals must agree; `?` and `*` take any.
            let compatible = a[i] == star || a[i] == any || b[j] == star || b[j] == any || a[i] == b[j]
            if compatible, !(a[i] == star && b[j] == star) {
                pending.append((a[i] == star ? i : i + 1, b[j] == star ? j : j + 1))
            }
        }
        return false
    }
}
