/// An ordered list of `application/x-www-form-urlencoded` parameters, parsed strictly.
///
/// ScopeGate parses what it gates exactly once and refuses anything a different parser could read
/// differently: a name that appears twice, malformed percent-encoding, bytes that are not UTF-8, or an
/// empty or nameless pair. The same type serializes the parameters again for the upstream, so the IdP
/// sees precisely what was evaluated.
public struct FormParameters: Sendable, Equatable {
    /// The parameters in the order they arrived.
    public private(set) var pairs: [(name: String, value: String)] {
        didSet { canonical = nil }
    }
    /// The parsed text, when re-serializing the pairs would give it back byte for byte (every byte
    /// unreserved or an upper-case escape of a reserved one, no `+`, every pair with `=`): then
    /// `encoded` is that text, without encoding anything again.
    private var canonical: String?

    /// Creates parameters from already-decoded pairs; names must be unique.
    public init(_ pairs: [(name: String, value: String)]) throws(GateError) {
        self.pairs = []
        for pair in pairs { try append(pair.name, pair.value) }
    }

    /// Parses an encoded query string or form body (without a leading `?`).
    public init(parsing encoded: Substring, plusIsSpace: Bool = true) throws(GateError) {
        self.pairs = []
        if encoded.isEmpty { return }
        var canonical = true
        guard encoded.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw GateError(.invalidRequest, "the request has a character that must be percent-encoded")
        }
        // Split over bytes: the text is ASCII, and splitting by `Character` would walk grapheme clusters.
        let utf8 = encoded.utf8
        var start = utf8.startIndex
        while true {
            let end = utf8[start...].firstIndex(of: UInt8(ascii: "&")) ?? utf8.endIndex
            let piece = encoded[start..<end]
            if piece.isEmpty {
                throw GateError(.invalidRequest, "the request has an empty parameter (a stray '&')")
            }
            let name: Substring
            let value: Substring
            if let eq = piece.utf8.firstIndex(of: UInt8(ascii: "=")) {
                name = piece[..<eq]
                value = piece[piece.utf8.index(after: eq)...]
                canonical = canonical && Self.isCanonical(name) && Self.isCanonical(value)
            } else {
                name = piece
                value = ""
                canonical = false
            }
            let decodedName = try Self.decode(name, plusIsSpace: plusIsSpace)
            if decodedName.isEmpty {
                throw GateError(.invalidRequest, "the request has a parameter without a name")
            }
            try append(decodedName, try Self.decode(value, plusIsSpace: plusIsSpace))
            if end == utf8.endIndex { break }
            start = utf8.index(after: end)
        }
        if canonical { self.canonical = String(encoded) }
    }

    /// Whether `text` is exactly what `encode` makes of what `decode` makes of it.
    static func isCanonical(_ text: Substring) -> Bool {
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(), let h = upperHexValue(high), let l = upperHexValue(low),
                    !isUnreserved(h << 4 | l)
                else { return false }
            } else if !isUnreserved(byte) {
                return false
            }
        }
        return true
    }

    private static func upperHexValue(_ byte: UInt8) -> UInt8? {
        (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte) ? nil : hexValue(byte)
    }

    /// The value of `name`, if present.
    public subscript(name: String) -> String? {
        pairs.first { $0.name == name }?.value
    }

    /// The parameter names, in order.
    public var names: [String] { pairs.map(\.name) }

    /// Whether `name` is present.
    public func contains(_ name: String) -> Bool { pairs.contains { $0.name == name } }

    /// The parameters that may legitimately appear more than once: `resource` (RFC 8707 §2) and
    /// `audience` (RFC 8693 §2.1). Every value of theirs is gated.
    public static let repeatable: Set<String> = ["resource", "audience"]

    /// Every value of `name`, in order.
    public func values(_ name: String) -> [String] {
        pairs.compactMap { $0.name == name ? $0.value : nil }
    }

    /// Adds a parameter; a repeated name is refused as ambiguous (RFC 6749 §3.1), except the few
    /// `repeatable` ones.
    public mutating func append(_ name: String, _ value: String) throws(GateError) {
        if contains(name), !Self.repeatable.contains(name) {
            throw GateError(.invalidRequest, "the parameter '\(Self.printable(name))' is repeated")
        }
        pairs.append((name, value))
    }

    /// Merges the parameters of `other`; a name present in both is refused as ambiguous.
    public func merging(_ other: FormParameters) throws(GateError) -> FormParameters {
        var merged = self
        for pair in other.pairs {
            if merged.contains(pair.name) {
                throw GateError(
                    .invalidRequest, "the parameter '\(Self.printable(pair.name))' appears in both the query and the body")
            }
            merged.pairs.append(pair)
        }
        return merged
    }

    /// The parameters encoded again, each byte outside the unreserved set percent-encoded.
    public var encoded: String {
        if let canonical { return canonical }
        var out = ""
        out.reserveCapacity(pairs.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 2 } + 32)
        for (index, pair) in pairs.enumerated() {
            if index > 0 { out += "&" }
            out += Self.encode(pair.name)
            out += "="
            out += Self.encode(pair.value)
        }
        return out
    }

    public static func == (lhs: FormParameters, rhs: FormParameters) -> Bool {
        lhs.pairs.elementsEqual(rhs.pairs) { $0.name == $1.name && $0.value == $1.value }
    }

    // MARK: - Encoding

    static func decode(_ text: Substring, plusIsSpace: Bool) throws(GateError) -> String {
        // Most names and many values need no decoding: the caller has checked they are printable ASCII.
        if !text.utf8.contains(where: { $0 == UInt8(ascii: "%") || ($0 == UInt8(ascii: "+") && plusIsSpace) }) {
            return String(text)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw GateError(.invalidRequest, "the request has malformed percent-encoding")
                }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+") where plusIsSpace:
                bytes.append(UInt8(ascii: " "))
            default:
                bytes.append(byte)
            }
        }
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw GateError(.invalidRequest, "the request has a parameter that is not valid UTF-8")
        }
        return string
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

    /// A parameter name made safe to put in an error message: printable ASCII only, bounded length.
    static func printable(_ name: String) -> String {
        let cleaned = name.unicodeScalars.prefix(64).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" }
        return String(cleaned)
    }
}
