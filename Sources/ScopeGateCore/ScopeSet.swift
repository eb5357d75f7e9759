/// A set of OAuth scope tokens (RFC 6749 §3.3), kept sorted so it has one canonical form.
///
/// Scope tokens are case-sensitive and separated by exactly one space. Any other whitespace, an empty
/// token, or a character outside `%x21 / %x23-5B / %x5D-7E` is refused, because an IdP might split or
/// read such a value differently than the gate did.
public struct ScopeSet: Sendable, Hashable, Codable, Sequence, CustomStringConvertible {
    /// The tokens in ascending order, without duplicates.
    public let tokens: [String]

    /// Creates a set from tokens that are already known to be valid.
    public init<S: Sequence>(_ tokens: S) where S.Element == String {
        var sorted = Array(tokens)
        // Most requests name their scopes in order already, and few name any twice.
        if sorted.indices.dropFirst().allSatisfy({ sorted[$0 - 1] < sorted[$0] }) {
            self.tokens = sorted
            return
        }
        sorted.sort()
        var unique: [String] = []
        unique.reserveCapacity(sorted.count)
        for token in sorted where unique.last != token { unique.append(token) }
        self.tokens = unique
    }

    /// The most scope tokens one request may carry; more is refused before any store or chat work.
    public static let maximumCount = 100

    /// Parses a `scope` parameter value strictly.
    public init(parsing value: String) throws(GateError) {
        if value.isEmpty {
            self.init([String]())
            return
        }
        var text = value
        var failure: GateError?
        let tokens = text.withUTF8 { bytes -> [String] in
            do throws(GateError) {
                return try Self.split(bytes)
            } catch {
                failure = error
                return []
            }
        }
        if let failure { throw failure }
        self.init(tokens)
    }

    /// The tokens of a `scope` value, split over bytes (not grapheme clusters) and checked byte by byte.
    private static func split(_ bytes: UnsafeBufferPointer<UInt8>) throws(GateError) -> [String] {
        var tokens: [String] = []
        // Sized once: growing the array token by token reallocated it twice for three scopes.
        tokens.reserveCapacity(Swift.min(bytes.reduce(1) { $1 == UInt8(ascii: " ") ? $0 + 1 : $0 }, maximumCount + 1))
        var start = 0
        while true {
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: " ") {
                guard isScopeTokenByte(bytes[end]) else {
                    throw GateError(.invalidScope, "a scope token has a character that RFC 6749 §3.3 does not allow")
                }
                end += 1
            }
            guard tokens.count < maximumCount else {
                throw GateError(.invalidScope, "the scope has more than \(maximumCount) tokens")
            }
            guard end > start else {
                throw GateError(.invalidScope, "the scope has an empty token (leading, trailing or doubled space)")
            }
            let token = UnsafeBufferPointer(rebasing: bytes[start..<end])
            guard !PermissionKind.isReserved(scopeToken: token) else {
                throw GateError(
                    .invalidScope,
                    "a scope token may not begin with @resource:, @audience:, @authorization_details: or @claim: (ScopeGate names other permissions so)")
            }
            tokens.append(String(decoding: token, as: UTF8.self))
            if end == bytes.count { return tokens }
            start = end + 1
        }
    }

    /// Whether the byte may appear in a scope token (RFC 6749 §3.3).
    public static func isScopeTokenByte(_ byte: UInt8) -> Bool {
        byte == 0x21 || (0x23...0x5B).contains(byte) || (0x5D...0x7E).contains(byte)
    }

    /// The value as a `scope` parameter: tokens joined by one space.
    public var parameterValue: String { tokens.joined(separator: " ") }

    /// Whether there are no tokens.
    public var isEmpty: Bool { tokens.isEmpty }

    /// Whether the set contains `token`.
    public func contains(_ token: String) -> Bool { tokens.contains(token) }

    /// The tokens of this set that are not in `other`.
    public func subtracting(_ other: ScopeSet) -> ScopeSet {
        let drop = Set(other.tokens)
        return ScopeSet(tokens.filter { !drop.contains($0) })
    }

    /// Whether every token is also in `other`.
    public func isSubset(of other: ScopeSet) -> Bool {
        subtracting(other).isEmpty
    }

    /// The tokens of this set that are also in `other`, in this set's order.
    public func intersection(_ other: ScopeSet) -> ScopeSet {
        let keep = Set(other.tokens)
        return ScopeSet(tokens.filter { keep.contains($0) })
    }

    /// The union of two sets.
    public func union(_ other: ScopeSet) -> ScopeSet {
        if other.isEmpty { return self }
        if isEmpty { return other }
        return ScopeSet(tokens + other.tokens)
    }

    public func makeIterator() -> IndexingIterator<[String]> { tokens.makeIterator() }

    public var description: String { parameterValue }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        self.init(try container.decode([String].self))
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(tokens)
    }
}
