/// Which upstream paths are reachable at all (`upstream.expose`): a path is exposed when it starts
/// with one of the prefixes both as sent and as an IdP might read it (decoded, dot segments resolved),
/// so that `/realms/../admin` is not exposed by a `/realms/` prefix.
struct Exposure: Sendable {
    let prefixes: [(raw: String, normalized: String)]

    init(prefixes: [String]) {
        self.prefixes = prefixes.map { ($0, PathGuard.normalize($0)) }
    }

    func allows(_ rawPath: Substring) -> Bool {
        let normalized = PathGuard.normalize(rawPath)
        return prefixes.contains { prefix in
            rawPath.hasPrefix(prefix.raw)
                && (prefix.normalized == "/" || normalized == prefix.normalized || normalized.hasPrefix(prefix.normalized + "/"))
        }
    }
}

/// Classifies request paths against the gated endpoints.
///
/// An IdP, a framework or a proxy in between may read `/o/Authorize`, `/o//authorize`,
/// `/o/x/../authorize`, `/o/authorize;a=b` or `/o/%61uthorize` as the authorization endpoint. ScopeGate
/// gates only the exact path and refuses every other spelling that normalizes to a gated one, so that
/// no variant reaches the IdP ungated.
struct PathGuard: Sendable {
    /// What a path is to the gate.
    enum Match: Equatable {
        /// Exactly a gated endpoint.
        case gated(GatedEndpoint)
        /// Another spelling of a gated endpoint: refuse.
        case ambiguous
        /// Not gated.
        case other
    }

    /// The gated paths as they are spelled: a handful, compared in place (no string is built per request).
    private let exact: [(path: String, endpoint: GatedEndpoint)]
    /// The normalized forms of the endpoints that carry permissions (a handful: compared byte by byte).
    private let normalized: [[UInt8]]

    init(_ endpoints: [String: GatedEndpoint]) {
        self.exact = endpoints.map { ($0.key, $0.value) }
        self.normalized = Array(Set(endpoints.filter(\.value.carriesPermissions).map { Array(Self.normalize($0.key).utf8) }))
    }

    func classify(_ rawPath: Substring) -> Match {
        let length = rawPath.utf8.count
        for entry in exact where entry.path.utf8.count == length && rawPath == entry.path { return .gated(entry.endpoint) }
        if normalized.isEmpty { return .other }
        let ambiguous = Self.withNormalized(rawPath) { path in
            normalized.contains { $0.count == path.count && $0.elementsEqual(path) }
        }
        return ambiguous ? .ambiguous : .other
    }

    /// A deliberately lossy form: decoded (up to three times), ASCII lower-cased, without `;`
    /// parameters, empty or dot segments, surrounding blanks or control bytes, or a suffix after a dot
    /// in the last segment, and with `\\` read as `/`. Two paths an IdP might confuse share it.
    /// Byte-level: it runs for every proxied request.
    static func normalize(_ path: some StringProtocol) -> String {
        withNormalized(path) { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with the normalized form of `path`, built in scratch space (nothing is allocated
    /// unless the path holds a `%`).
    static func withNormalized<Result>(
        _ path: some StringProtocol, _ body: (UnsafeBufferPointer<UInt8>) -> Result
    ) -> Result {
        if let result = path.utf8.withContiguousStorageIfAvailable({ bytes -> Result? in
            guard !bytes.contains(UInt8(ascii: "%")) else { return nil }
            return withNormalizedBytes(bytes, body)
        }), let result {
            return result
        }
        var bytes = Array(path.utf8)
        for _ in 0..<3 where bytes.contains(UInt8(ascii: "%")) {
            bytes = percentDecodedLossy(bytes)
        }
        return bytes.withUnsafeBufferPointer { withNormalizedBytes($0, body) }
    }

    private static func withNormalizedBytes<Result>(
        _ input: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Result
    ) -> Result {
        // The output is never longer than the input plus a leading slash: build it in scratch space.
        do {
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: input.count + 1) { output in
                var count = 0
                var index = 0
                while index <= input.count {
                    // Read one segment up to the next separator.
                    var end = index
                    while end < input.count, input[end] != UInt8(ascii: "/"), input[end] != UInt8(ascii: "\\") { end += 1 }
                    var segmentEnd = index
                    while segmentEnd < end, input[segmentEnd] != UInt8(ascii: ";") { segmentEnd += 1 }
                    var start = index
                    while start < segmentEnd, isBlank(input[start]) { start += 1 }
                    while segmentEnd > start, isBlank(input[segmentEnd - 1]) { segmentEnd -= 1 }
                    let length = segmentEnd - start
                    if length == 0 || (length == 1 && input[start] == UInt8(ascii: ".")) {
                        // empty or "." segment: dropped
                    } else if length == 2 && input[start] == UInt8(ascii: ".") && input[start + 1] == UInt8(ascii: ".") {
                        // ".." removes the last segment written, if any.
                        while count > 0 {
                            count -= 1
                            if output[count] == UInt8(ascii: "/") { break }
                        }
                    } else {
                        output[count] = UInt8(ascii: "/")
                        count += 1
                        for position in start..<segmentEnd {
                            let byte = input[position]
                            output[count] = (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
                            count += 1
                        }
                    }
                    index = end + 1
                }
                // Suffix patterns (Spring MVC's `/token.*`, format extensions): the last segment up to
                // its first dot, so that `/token.json` and `/token.` read as `/token`.
                if count > 0 {
                    var slash = count - 1
                    while slash > 0, output[slash] != UInt8(ascii: "/") { slash -= 1 }
                    var dot = slash + 1
                    while dot < count, output[dot] != UInt8(ascii: ".") { dot += 1 }
                    if dot < count { count = dot == slash + 1 ? slash : dot }
                }
                if count == 0 {
                    output[0] = UInt8(ascii: "/")
                    count = 1
                }
                return body(UnsafeBufferPointer(rebasing: output[..<count]))
            }
        }
    }

    private static func isBlank(_ byte: UInt8) -> Bool { byte <= 0x20 || byte == 0x7F }

    private static func percentDecodedLossy(_ input: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            if input[index] == UInt8(ascii: "%"), index + 2 < input.count,
                let high = hex(input[index + 1]), let low = hex(input[index + 2])
            {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(input[index])
                index += 1
            }
        }
        return bytes
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// The endpoints ScopeGate intercepts.
enum GatedEndpoint: String, Sendable {
    /// The authorization endpoint (front channel).
    case authorization
    /// A discovery document, served rewritten.
    case discovery
    /// The token endpoint (back channel).
    case token
    /// The pushed authorization request endpoint (RFC 9126, back channel).
    case pushedAuthorization
    /// The device authorization endpoint (RFC 8628, back channel).
    case deviceAuthorization
    /// An endpoint that carries permissions and that ScopeGate does not gate (CIBA, dynamic client
    /// registration, and `mtls_endpoint_aliases` of gated endpoints at other paths): refused.
    case blocked

    /// Whether requests here carry permissions, so that every other spelling of the path is refused.
    /// Another spelling of a discovery path is simply passed through unrewritten.
    var carriesPermissions: Bool { self != .discovery }
}
