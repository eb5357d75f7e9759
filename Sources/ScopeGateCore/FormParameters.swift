#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An ordered list of `application/x-www-form-urlencoded` parameters, parsed strictly.
///
/// ScopeGate parses what it gates exactly once and refuses anything a different parser could read
/// differently: a name that appears twice, malformed percent-encoding, bytes that are not UTF-8, or an
/// empty or nameless pair. The same type serializes the parameters again for the upstream, so the IdP
/// sees precisely what was evaluated.
public struct FormParameters: Sendable, Equatable {
    /// The parameters in the order they arrived.
    public private(set) var pairs: [(name: String, value: String)] {
        didSet {
            canonical = nil
            namesArePrintable = pairs.allSatisfy { Self.isPrintable($0.name) }
        }
    }
    /// Whether every name is printable ASCII without spaces (a name can be anything once decoded), so
    /// that callers need not walk the names again.
    public private(set) var namesArePrintable = true
    /// The parsed text, when re-serializing the pairs would give it back byte for byte (every byte
    /// unreserved or an upper-case escape of a reserved one, no `+`, every pair with `=`): then
    /// `encoded` is that text, without encoding anything again.
    private var canonical: Substring?

    /// Creates parameters from already-decoded pairs; names must be unique.
    public init(_ pairs: [(name: String, value: String)]) throws(GateError) {
        self.pairs = []
        for pair in pairs { try append(pair.name, pair.value) }
    }

    /// Parses an encoded query string or form body (without a leading `?`).
    public init(parsing encoded: Substring, plusIsSpace: Bool = true) throws(GateError) {
        self.pairs = []
        if encoded.isEmpty { return }
        // One pass over the bytes: the request line is ASCII, and walking `Substring` indices (or
        // grapheme clusters) per byte costs more than everything else the gate does.
        var text = encoded
        var parsed: [(name: String, value: String)] = []
        var failure: GateError?
        var namesArePrintable = true
        let canonical = text.withUTF8 { bytes -> Bool in
            do throws(GateError) {
                return try Self.parse(bytes, plusIsSpace: plusIsSpace, into: &parsed, namesArePrintable: &namesArePrintable)
            } catch {
                failure = error
                return false
            }
        }
        if let failure { throw failure }
        self.pairs = parsed
        self.namesArePrintable = namesArePrintable
        if canonical { self.canonical = encoded }
    }

    /// Splits `bytes` into decoded pairs; returns whether the text is canonical (see `canonical`).
    /// One pass over each pair's bytes checks them, finds its `=`, and notes what needs decoding.
    private static func parse(
        _ bytes: UnsafeBufferPointer<UInt8>, plusIsSpace: Bool, into pairs: inout [(name: String, value: String)],
        namesArePrintable: inout Bool
    ) throws(GateError) -> Bool {
        pairs.reserveCapacity(8)
        let classes = byteClasses.utf8Start
        var canonical = true
        var start = 0
        while true {
            var end = start
            var equals = -1
            var nameEscaped = false
            var valueEscaped = false
            scan: while end < bytes.count {
                switch classes[Int(bytes[end])] {
                case UInt8(ascii: "1"):  // unreserved
                    break
                case UInt8(ascii: "6"):  // `&`
                    break scan
                case UInt8(ascii: "5") where equals < 0:  // the first `=`
                    equals = end
                case UInt8(ascii: "3"), UInt8(ascii: "4") where plusIsSpace:
                    // `%` or `+`: decoded below, where an escape's canonical form is checked too.
                    if equals < 0 { nameEscaped = true } else { valueEscaped = true }
                case UInt8(ascii: "0"):
                    throw GateError(.invalidRequest, "the request has a character that must be percent-encoded")
                default:  // printable but reserved (or `+` read literally, or a later `=`): not canonical
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
            let nameBytes = UnsafeBufferPointer(rebasing: bytes[start..<nameEnd])
            let name = try nameEscaped ? decode(nameBytes, plusIsSpace: plusIsSpace, canonical: &canonical) : knownName(nameBytes)
            if name.isEmpty {
                throw GateError(.invalidRequest, "the request has a parameter without a name")
            }
            // Bytes as sent are printable (checked above); only a decoded name can hold anything.
            if nameEscaped, !isPrintable(name) { namesArePrintable = false }
            let valueBytes = UnsafeBufferPointer(rebasing: bytes[valueStart..<end])
            let value = try valueEscaped
                ? decode(valueBytes, plusIsSpace: plusIsSpace, canonical: &canonical) : String(decoding: valueBytes, as: UTF8.self)
            try checkNew(name, in: pairs)
            pairs.append((name, value))
            if end == bytes.count { return canonical }
            start = end + 1
        }
    }

    /// What each byte is to the parser, by value: `0` never allowed unencoded (controls, space, DEL,
    /// non-ASCII), `1` unreserved (RFC 3986 §2.3), `2` other printable ASCII (allowed, but not
    /// canonical), `3` `%`, `4` `+`, `5` `=`, `6` `&`. One load per byte instead of a chain of comparisons.
    private static let byteClasses: StaticString = "0000000000000000000000000000000002222362222421121111111111222522211111111111111111111111111222212111111111111111111111111112221000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

    /// The OAuth and OpenID Connect parameter names requests carry most, as constants: a name that is
    /// one of them is not built again for every request (nor allocated, for the longer ones).
    private static let commonNames: [(bytes: StaticString, name: String)] = [
        "client_id", "response_type", "redirect_uri", "scope", "state", "nonce", "code_challenge",
        "code_challenge_method", "response_mode", "prompt", "login_hint", "max_age", "ui_locales", "acr_values",
        "id_token_hint", "display", "request", "request_uri", "resource", "audience", "claims",
        "authorization_details", "grant_type", "code", "code_verifier", "refresh_token", "client_secret",
        "client_assertion", "client_assertion_type", "device_code", "username", "password",
    ].map { (name: StaticString) in (name, name.description) }

    /// An unescaped name: one of `commonNames`, or its bytes (printable ASCII) copied.
    private static func knownName(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        commonNames.withUnsafeBufferPointer { names in
            for known in names where known.bytes.utf8CodeUnitCount == bytes.count {
                if memcmp(known.bytes.utf8Start, bytes.baseAddress!, bytes.count) == 0 { return known.name }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

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
        try Self.checkNew(name, in: pairs)
        pairs.append((name, value))
    }

    /// Refuses `name` when `pairs` already has it, unless it is `repeatable`.
    private static func checkNew(_ name: String, in pairs: [(name: String, value: String)]) throws(GateError) {
        let length = name.utf8.count
        if pairs.contains(where: { $0.name.utf8.count == length && $0.name == name }), !repeatable.contains(name) {
            throw GateError(.invalidRequest, "the parameter '\(printable(name))' is repeated")
        }
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
        lhs.pairs.elementsEqual(rhs.pairs) { $0.name == $1.name && $0.value == $1.value }
    }

    // MARK: - Encoding

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
