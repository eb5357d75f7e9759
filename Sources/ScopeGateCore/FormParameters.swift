/// An ordered list of `application/x-www-form-urlencoded` parameters, parsed strictly.
///
/// ScopeGate parses what it gates exactly once and refuses anything a different parser could read
/// differently: a name repeated with different values (but for the parameters read as a union, see
/// `KnownParameter.isReadAsUnion`), malformed percent-encoding, bytes that are not UTF-8, or an empty or
/// nameless pair. A name repeated with the same value is not ambiguous (first, last or any value is the
/// same) and is kept as it came: IdPs' own consent forms send parameters that way. The same type
/// serializes the parameters again for the upstream, so the IdP sees precisely what was evaluated.
public struct FormParameters: Sendable, Equatable {
    /// One decoded parameter.
    public struct Pair: Sendable, Equatable {
        public let name: String
        public let value: String
        /// The name as one of the common parameters, when it is one (always worked out from `name`).
        public let known: KnownParameter?

        public init(_ name: String, _ value: String) {
            self.init(name, value, known: KnownParameter.named(name))
        }

        private init(_ name: String, _ value: String, known: KnownParameter?) {
            self.name = name
            self.value = value
            self.known = known
        }

        /// A parameter whose name's bytes (unescaped, printable) are `bytes`, its `String` shared when known.
        static func parsed(name bytes: UnsafeBufferPointer<UInt8>, value: String) -> Pair {
            if let known = KnownParameter.named(bytes) { return Pair(known.name, value, known: known) }
            return Pair(String(decoding: bytes, as: UTF8.self), value, known: nil)
        }
    }

    /// The parameters in the order they arrived. (A struct rather than a tuple: arrays of tuples are
    /// copied and destroyed through generic runtime calls, which showed on the gated path.)
    public private(set) var pairs: [Pair] {
        didSet { canonical = nil }
    }
    /// The parsed text, when re-serializing the pairs would give it back byte for byte (every byte
    /// unreserved or an upper-case escape of a reserved one, no `+`, every pair with `=`): then
    /// `encoded` is that text, without encoding anything again.
    private var canonical: Substring?

    /// Whether `encoded` is the parsed text exactly, byte for byte.
    public var isCanonical: Bool { canonical != nil }

    /// Creates parameters from already-decoded pairs, by the parser's rules for repeated names.
    public init(_ pairs: [Pair]) throws(GateError) {
        var checked: [Pair] = []
        var seen: UInt64 = 0
        for pair in pairs {
            try Self.checkNew(pair, in: checked, seen: &seen)
            checked.append(pair)
        }
        self.pairs = checked
    }

    /// Creates parameters from already-decoded `(name, value)` pairs, by the parser's rules for repeated names.
    public init(_ pairs: [(name: String, value: String)]) throws(GateError) {
        try self.init(pairs.map { Pair($0.name, $0.value) })
    }

    /// Parses an encoded query string or form body (without a leading `?`).
    public init(parsing encoded: Substring, plusIsSpace: Bool = true) throws(GateError) {
        self.pairs = []
        if encoded.isEmpty { return }
        // One pass over the bytes: the request line is ASCII, and walking `Substring` indices (or
        // grapheme clusters) per byte costs more than everything else the gate does.
        var text = encoded
        var parsed: [Pair] = []
        var failure: GateError?
        let canonical = text.withUTF8 { bytes -> Bool in
            do throws(GateError) {
                return try Self.parse(bytes, plusIsSpace: plusIsSpace, into: &parsed)
            } catch {
                failure = error
                return false
            }
        }
        if let failure { throw failure }
        self.pairs = parsed
        if canonical { self.canonical = encoded }
    }

    /// Splits `bytes` into decoded pairs; returns whether the text is canonical (see `canonical`).
    /// One pass over each pair's bytes checks them, finds its `=`, and notes what needs decoding.
    private static func parse(
        _ bytes: UnsafeBufferPointer<UInt8>, plusIsSpace: Bool, into pairs: inout [Pair]
    ) throws(GateError) -> Bool {
        pairs.reserveCapacity(8)
        let classes = byteClasses.utf8Start
        var canonical = true
        // The known names seen so far, one bit each.
        var seen: UInt64 = 0
        var start = 0
        while true {
            var end = start
            var equals = -1
            var nameEscaped = false
            var valueEscaped = false
            scan: while true {
                // Most bytes are unreserved: a run of them costs a load, a compare and a branch per byte.
                while end < bytes.count, classes[Int(bytes[end])] == UInt8(ascii: "1") { end += 1 }
                guard end < bytes.count else { break }
                switch classes[Int(bytes[end])] {
                case UInt8(ascii: "6"):  // `&`
                    break scan
                case UInt8(ascii: "5") where equals < 0:  // the first `=`
                    equals = end
                case UInt8(ascii: "4") where !plusIsSpace:  // `+` read literally: not canonical
                    canonical = false
                case UInt8(ascii: "3"), UInt8(ascii: "4"):
                    // `%`, or `+` read as a space: decoded below, where an escape's canonical form is checked too.
                    if equals < 0 { nameEscaped = true } else { valueEscaped = true }
                case UInt8(ascii: "0"):
                    throw GateError(.invalidRequest, "the request has a character that must be percent-encoded")
                default:  // printable but reserved (or a later `=`): not canonical
                    canonical = false
                }
                end += 1
            }
            if end == start {
                throw GateError(.invalidRequest, "the request has an empty parameter (a stray '&')")
            }
            if equals < 0 { canonical = false }
            let nameEnd = equals < 0 ? end : equals
            let valueStart = equals < 0 ? end : equals + 1
            if nameEnd == start {
                throw GateError(.invalidRequest, "the request has a parameter without a name")
            }
            let nameBytes = UnsafeBufferPointer(rebasing: bytes[start..<nameEnd])
            let valueBytes = UnsafeBufferPointer(rebasing: bytes[valueStart..<end])
            let value = try valueEscaped
                ? decode(valueBytes, plusIsSpace: plusIsSpace, canonical: &canonical) : String(decoding: valueBytes, as: UTF8.self)
            let pair: Pair
            if nameEscaped {
                // A decoded name is known by what it decodes to (`sc%6Fpe` is `scope`), and can hold
                // anything: `checkNew` refuses what is not printable.
                pair = Pair(try decode(nameBytes, plusIsSpace: plusIsSpace, canonical: &canonical), value)
            } else {
                pair = Pair.parsed(name: nameBytes, value: value)
            }
            try checkNew(pair, in: pairs, seen: &seen)
            pairs.append(pair)
            if end == bytes.count { return canonical }
            start = end + 1
        }
    }

    /// What each byte is to the parser, by value: `0` never allowed unencoded (controls, space, DEL,
    /// non-ASCII), `1` unreserved (RFC 3986 §2.3), `2` other printable ASCII (allowed, but not
    /// canonical), `3` `%`, `4` `+`, `5` `=`, `6` `&`. One load per byte instead of a chain of comparisons.
    static let byteClasses: StaticString = "0000000000000000000000000000000002222362222421121111111111222522211111111111111111111111111222212111111111111111111111111112221000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

    /// Decodes one name or value of printable ASCII that has escapes (or `+`), clearing `canonical`
    /// unless `encode` would give the same bytes back: every byte unreserved, or an upper-case escape
    /// of a reserved one.
    private static func decode(
        _ bytes: UnsafeBufferPointer<UInt8>, plusIsSpace: Bool, canonical: inout Bool
    ) throws(GateError) -> String {
        // Decoded text is never longer than its encoding: decode into scratch space on the stack.
        let result = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bytes.count) { out -> Result<String, GateError> in
            var count = 0
            var ascii = true
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "%") {
                    guard index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else {
                        return .failure(GateError(.invalidRequest, "the request has malformed percent-encoding"))
                    }
                    let decoded = high << 4 | low
                    if canonical, upperHexValue(bytes[index + 1]) == nil || upperHexValue(bytes[index + 2]) == nil || isUnreserved(decoded) {
                        canonical = false
                    }
                    ascii = ascii && decoded < 0x80
                    out[count] = decoded
                    index += 3
                } else if byte == UInt8(ascii: "+"), plusIsSpace {
                    canonical = false
                    out[count] = UInt8(ascii: " ")
                    index += 1
                } else {
                    out[count] = byte
                    index += 1
                }
                count += 1
            }
            let decoded = UnsafeBufferPointer(rebasing: out[..<count])
            // ASCII is valid UTF-8; anything else is checked (the generic validation is the slow part).
            if ascii { return .success(String(decoding: decoded, as: UTF8.self)) }
            guard let string = String(validating: decoded, as: UTF8.self) else {
                return .failure(GateError(.invalidRequest, "the request has a parameter that is not valid UTF-8"))
            }
            return .success(string)
        }
        return try result.get()
    }

    /// The value of an upper-case hex digit (the canonical spelling of an escape). Inlined: the readers
    /// call it for every escape, and a call each showed in their instruction counts.
    @inline(__always)
    static func upperHexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The value of `name`, if present.
    public subscript(name: String) -> String? {
        pairs.first { $0.name == name }?.value
    }

    /// The parameter names, in order.
    public var names: [String] { pairs.map(\.name) }

    /// Whether `name` is present.
    public func contains(_ name: String) -> Bool { pairs.contains { $0.name == name } }

    /// Every value of `name`, in order.
    public func values(_ name: String) -> [String] {
        pairs.compactMap { $0.name == name ? $0.value : nil }
    }

    /// Adds a parameter; a name repeated with another value is refused as ambiguous (RFC 6749 §3.1),
    /// but for the parameters read as a union (`KnownParameter.isReadAsUnion`).
    public mutating func append(_ name: String, _ value: String) throws(GateError) {
        let pair = Pair(name, value)
        var seen = pairs.reduce(UInt64(0)) { seen, pair in pair.known.map { seen | 1 << $0.rawValue } ?? seen }
        try Self.checkNew(pair, in: pairs, seen: &seen)
        pairs.append(pair)
    }

    /// Refuses `pair` when `pairs` already has its name with another value, unless the name is read as
    /// a union (`KnownParameter.isReadAsUnion`). `seen` holds a bit for each known name in `pairs`, so
    /// a known name's first appearance is one bit not yet set; other names are compared with the other
    /// unknown ones. Earlier values of a name that is not read as a union all equal its first, so the
    /// first is the one to compare with.
    private static func checkNew(
        _ pair: Pair, in pairs: [Pair], seen: inout UInt64, source: String = ""
    ) throws(GateError) {
        if pair.known == nil { try checkName(pair.name) }
        let earlier: Pair?
        if let known = pair.known {
            let bit: UInt64 = 1 << known.rawValue
            defer { seen |= bit }
            guard seen & bit != 0, !known.isReadAsUnion else { return }
            earlier = pairs.first { $0.known == known }
        } else {
            let name = pair.name
            let length = name.utf8.count
            earlier = pairs.first { $0.known == nil && $0.name.utf8.count == length && $0.name == name }
        }
        if let earlier, earlier.value != pair.value {
            throw GateError(.invalidRequest, "the parameter '\(printable(pair.name))' is repeated with different values\(source)")
        }
    }

    /// Refuses a name that is not a known one exactly (those are fine as they are) when it is not
    /// printable ASCII without spaces (a decoded name can hold anything), or when some IdP framework
    /// reads it as a known one (`KnownParameter.foldedOnto`).
    private static func checkName(_ name: String) throws(GateError) {
        guard isPrintable(name) else {
            throw GateError(.invalidRequest, "a parameter name has a control, space or non-ASCII character")
        }
        if let folded = KnownParameter.foldedOnto(name) {
            throw GateError(
                .invalidRequest, "the parameter name '\(printable(name))' could be read as '\(folded.name)' by some identity providers")
        }
    }

    /// The parameters of `self` followed by those of `other` (a query and a form body, OIDC Core
    /// §3.1.2.1), by the same rules as one source: a name in both with the same value is kept twice,
    /// with different values refused, but for the parameters read as a union.
    public func merging(_ other: FormParameters) throws(GateError) -> FormParameters {
        var merged = self
        var seen = pairs.reduce(UInt64(0)) { seen, pair in pair.known.map { seen | 1 << $0.rawValue } ?? seen }
        for pair in other.pairs {
            try Self.checkNew(pair, in: merged.pairs, seen: &seen, source: " in the query and the body")
            merged.pairs.append(pair)
        }
        return merged
    }

    /// The parameters encoded again, each byte outside the unreserved set percent-encoded.
    public var encoded: String { appendingEncoded(to: "") }

    /// `prefix` followed by `encoded`, built in one string.
    public func appendingEncoded(to prefix: String) -> String {
        var out = prefix
        if let canonical {
            out += canonical
            return out
        }
        out.reserveCapacity(out.utf8.count + pairs.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 2 } + 32)
        for (index, pair) in pairs.enumerated() {
            if index > 0 { out += "&" }
            out += Self.encode(pair.name)
            out += "="
            out += Self.encode(pair.value)
        }
        return out
    }

    public static func == (lhs: FormParameters, rhs: FormParameters) -> Bool {
        lhs.pairs == rhs.pairs
    }

    // MARK: - Encoding

    /// A form of ScopeGate's own (a token request, a Slack call) as `application/x-www-form-urlencoded`.
    public static func encode(pairs: [(String, String)]) -> String {
        pairs.map { encode($0.0) + "=" + encode($0.1) }.joined(separator: "&")
    }

    /// `text` percent-encoded: every byte outside the unreserved set (RFC 3986 §2.3).
    public static func encode(_ text: String) -> String {
        if text.utf8.allSatisfy(isUnreserved) { return text }
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count + 16)
        for byte in text.utf8 {
            if isUnreserved(byte) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let hex = Array("0123456789ABCDEF".utf8)

    @inline(__always)
    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Whether `text` is printable ASCII without spaces (`%x21-7E`).
    static func isPrintable(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
    }

    /// A parameter name made safe to put in an error message: printable ASCII only, bounded length.
    static func printable(_ name: String) -> String {
        let cleaned = name.unicodeScalars.prefix(64).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" }
        return String(cleaned)
    }
}
