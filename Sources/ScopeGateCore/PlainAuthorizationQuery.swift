#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An authorization request's query in its plainest, most common shape, read in place.
///
/// Most authorization requests a browser brings are a canonical query of the common parameters:
/// `response_type=code`, a `client_id`, a `scope`, `state`, PKCE, a nonce. For those the proxy's hot
/// path needs only the client and the scope tokens, and building an `AuthorizationRequest` (a `String`
/// for every value, an array of pairs, sorted scope sets) costs more than the rest of the admission.
///
/// This type recognizes that shape and nothing else. It never refuses and never decides: it either
/// reads a query in which every rule `AuthorizationRequest` applies is already satisfied, or it
/// returns `nil` and leaves the query to `AuthorizationRequest`, the strict parser, which refuses,
/// holds or admits it. So it accepts only what that parser accepts and re-serializes to the same bytes
/// (`FormParameters.encoded`), but for `+`:
///
/// - every pair is `name=value`, no pair is empty, nothing is repeated;
/// - every name is a `KnownParameter`, unescaped, and none is `request`, `request_uri` or a parameter
///   carrying permissions beyond scope (`resource`, `audience`, `authorization_details`, `claims`);
/// - every value byte is unreserved (RFC 3986 §2.3), an upper-case escape of a reserved ASCII byte, or
///   a `+` (a space, as most form encoders write it: the query is then forwarded with `%20` for each);
/// - `client_id` is present, not empty and unescaped; `response_type` is exactly `code`;
///   `response_mode`, when present, is `query`, `fragment` or `form_post`;
/// - `scope` is present and holds 1 to `ScopeSet.maximumCount` tokens separated by single spaces, each
///   of RFC 6749 §3.3 characters and none beginning with `@` (the spelling of other permissions).
///
/// The tests hold it to that: on every query of a generated corpus, a query it reads is one
/// `AuthorizationRequest` parses to the same client and scopes and re-serializes to `serialized`.
public struct PlainAuthorizationQuery: Sendable {
    /// Whether the query is forwarded as it came: it has no `+`.
    public let isCanonical: Bool
    private let query: Substring
    /// Where the `client_id` and `scope` values are, in the query's UTF-8 bytes.
    private let clientIDRange: Range<Int>
    private let scopeRange: Range<Int>

    /// Reads `query` (without the leading `?`), or returns `nil` when it is not of the plain shape.
    ///
    /// Nothing is copied out of the query: the values are read (and checked) in place, and made
    /// `String`s only when asked for (an answer the snapshot remembers needs neither).
    public init?(_ query: Substring) {
        var text = query
        guard let (clientID, scope, hasPlus) = text.withUTF8({ Self.read($0) }) else { return nil }
        self.clientIDRange = clientID
        self.scopeRange = scope
        self.isCanonical = !hasPlus
        self.query = text
    }

    /// The `client_id`.
    public var clientID: String {
        withValues { clientID, _ in String(decoding: clientID, as: UTF8.self) }
    }

    /// The `scope` value, decoded: tokens separated by one space.
    public var scope: String {
        withValues { _, scope in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: scope.count) { out in
                // Checked by `read`: this decodes.
                let count = Self.decodeScope(scope, into: out.baseAddress)!
                return String(decoding: UnsafeBufferPointer(rebasing: out[..<count]), as: UTF8.self)
            }
        }
    }

    /// Calls `body` with the `client_id` value and the `scope` value as they came (escapes and `+`
    /// undecoded): equal bytes are the same request to the gate, which is what remembered answers are
    /// keyed by.
    public func withValues<Result>(
        _ body: (_ clientID: UnsafeBufferPointer<UInt8>, _ scope: UnsafeBufferPointer<UInt8>) throws -> Result
    ) rethrows -> Result {
        var text = query
        return try text.withUTF8 { bytes in
            try body(UnsafeBufferPointer(rebasing: bytes[clientIDRange]), UnsafeBufferPointer(rebasing: bytes[scopeRange]))
        }
    }

    /// The query as the IdP receives it: as it came, each `+` written `%20` (what the strict parser's
    /// re-serialization gives for a query of this shape).
    public var serialized: String {
        if isCanonical { return String(query) }
        var out = [UInt8]()
        out.reserveCapacity(query.utf8.count + 32)
        for byte in query.utf8 {
            if byte == UInt8(ascii: "+") {
                out.append(UInt8(ascii: "%"))
                out.append(UInt8(ascii: "2"))
                out.append(UInt8(ascii: "0"))
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Calls `body` with each scope token, in the order sent, until it returns `false`; returns whether
    /// every call returned `true`.
    public func allScopes(_ body: (String) -> Bool) -> Bool {
        var scope = scope
        return scope.withUTF8 { bytes in
            var start = 0
            for end in 0...bytes.count where end == bytes.count || bytes[end] == UInt8(ascii: " ") {
                if !body(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)) { return false }
                start = end + 1
            }
            return true
        }
    }

    private static func read(_ bytes: UnsafeBufferPointer<UInt8>) -> (clientID: Range<Int>, scope: Range<Int>, hasPlus: Bool)? {
        let classes = FormParameters.byteClasses.utf8Start
        var seen: UInt64 = 0
        var clientID: Range<Int>?
        var responseType: Range<Int>?
        var responseMode: Range<Int>?
        var scope: Range<Int>?
        var hasPlus = false
        var start = 0
        while start < bytes.count {
            // The name: everything up to the next `=`, which must spell a known parameter exactly (their
            // spellings are unreserved bytes only, so a name with any other byte, a `&` included, is none).
            guard let found = memchr(bytes.baseAddress! + start, Int32(UInt8(ascii: "=")), bytes.count - start) else { return nil }
            let equals = start + (bytes.baseAddress! + start).distance(to: found.assumingMemoryBound(to: UInt8.self))
            guard let known = KnownParameter.named(UnsafeBufferPointer(rebasing: bytes[start..<equals])) else { return nil }
            let bit: UInt64 = 1 << known.rawValue
            guard seen & bit == 0 else { return nil }
            seen |= bit
            // The value: unreserved bytes and upper-case escapes of reserved ASCII, up to the `&`.
            var end = equals + 1
            var escaped = false
            while end < bytes.count {
                // Runs of unreserved bytes, most of a value, four at a time (one branch for the four).
                let unreserved = UInt8(ascii: "1")
                while end + 4 <= bytes.count,
                    (classes[Int(bytes[end])] ^ unreserved) | (classes[Int(bytes[end + 1])] ^ unreserved)
                        | (classes[Int(bytes[end + 2])] ^ unreserved) | (classes[Int(bytes[end + 3])] ^ unreserved) == 0
                {
                    end += 4
                }
                guard end < bytes.count else { break }
                let byteClass = classes[Int(bytes[end])]
                if byteClass == UInt8(ascii: "1") {
                    end += 1
                } else if byteClass == UInt8(ascii: "3") {
                    guard end + 2 < bytes.count, let high = FormParameters.upperHexValue(bytes[end + 1]),
                        let low = FormParameters.upperHexValue(bytes[end + 2]), high < 8,
                        !FormParameters.isUnreserved(high << 4 | low)
                    else { return nil }
                    escaped = true
                    end += 3
                } else if byteClass == UInt8(ascii: "4") {  // `+`: a space
                    escaped = true
                    hasPlus = true
                    end += 1
                } else if byteClass == UInt8(ascii: "6") {
                    break
                } else {
                    return nil
                }
            }
            let value = equals + 1..<end
            switch known {
            case .clientID:
                guard !escaped, !value.isEmpty else { return nil }
                clientID = value
            case .responseType: responseType = value
            case .responseMode: responseMode = value
            case .scope: scope = value
            case .request, .requestURI: return nil
            default: if known.carriesPermissions { return nil }
            }
            // A `&` must be followed by another pair.
            if end == bytes.count { break }
            start = end + 1
            if start == bytes.count { return nil }
        }
        // `code` compared in place: a `String` built for it showed in the instruction counts.
        let code: StaticString = "code"
        func isCode(_ range: Range<Int>) -> Bool {
            range.count == code.utf8CodeUnitCount && memcmp(bytes.baseAddress! + range.lowerBound, code.utf8Start, range.count) == 0
        }
        guard let clientID, let responseType, let scope, isCode(responseType),
            responseMode.map({ ResponseMode(rawValue: String(decoding: UnsafeBufferPointer(rebasing: bytes[$0]), as: UTF8.self)) != nil })
                ?? true,
            decodeScope(UnsafeBufferPointer(rebasing: bytes[scope]), into: nil) != nil
        else { return nil }
        return (clientID, scope, hasPlus)
    }

    /// Decodes a `scope` value (canonical, checked above) into `out` (at most as many bytes as it has),
    /// or only checks it when `out` is `nil`; returns the decoded length when its tokens are plain: 1 to
    /// `ScopeSet.maximumCount` of them, single spaces between, RFC 6749 §3.3 characters, no leading `@`.
    private static func decodeScope(_ bytes: UnsafeBufferPointer<UInt8>, into out: UnsafeMutablePointer<UInt8>?) -> Int? {
        guard !bytes.isEmpty else { return nil }
        var count = 0
        var tokens = 1
        var atTokenStart = true
        var index = 0
        while index < bytes.count {
            var byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "%") {
                // Checked by `read`: two upper-case hex digits.
                byte = FormParameters.upperHexValue(bytes[index])! << 4 | FormParameters.upperHexValue(bytes[index + 1])!
                index += 2
            } else if byte == UInt8(ascii: "+") {
                byte = UInt8(ascii: " ")
            }
            if byte == UInt8(ascii: " ") {
                guard !atTokenStart, tokens < ScopeSet.maximumCount else { return nil }
                tokens += 1
                atTokenStart = true
            } else {
                guard ScopeSet.isScopeTokenByte(byte), !(atTokenStart && byte == UInt8(ascii: "@")) else { return nil }
                atTokenStart = false
            }
            out?[count] = byte
            count += 1
        }
        return atTokenStart ? nil : count
    }
}
