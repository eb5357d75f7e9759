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

    private let exact: [String: GatedEndpoint]
    private let normalized: [String: GatedEndpoint]

    init(_ endpoints: [String: GatedEndpoint]) {
        self.exact = endpoints
        self.normalized = Dictionary(
            endpoints.filter(\.value.carriesPermissions).map { (Self.normalize($0.key), $0.value) },
            uniquingKeysWith: { first, _ in first })
    }

    func classify(_ rawPath: Substring) -> Match {
        if let endpoint = exact[String(rawPath)] { return .gated(endpoint) }
        if normalized.isEmpty { return .other }
        return normalized[Self.normalize(rawPath)] == nil ? .other : .ambiguous
    }

    /// A deliberately lossy form: decoded, lower-cased, without `;` parameters, empty or dot segments,
    /// and with `\` read as `/`. Two paths an IdP might confuse share it.
    static func normalize(_ path: some StringProtocol) -> String {
        var text = String(path)
        for _ in 0..<3 where text.contains("%") {
            text = percentDecodedLossy(text)
        }
        text = text.replacingOccurrences(of: "\\", with: "/").lowercased()
        var segments: [Substring] = []
        for raw in text.split(separator: "/", omittingEmptySubsequences: true) {
            let segment = raw.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let trimmed = segment.trimmingCharacters(in: .whitespacesAndNewlines.union(.controlCharacters))
            switch trimmed {
            case "", ".": continue
            case "..": _ = segments.popLast()
            default: segments.append(Substring(trimmed))
            }
        }
        return "/" + segments.joined(separator: "/")
    }

    private static func percentDecodedLossy(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let high = hex(iterator[iterator.startIndex]), let low = hex(iterator[iterator.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
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

    /// Whether requests here carry permissions, so that every other spelling of the path is refused.
    /// Another spelling of a discovery path is simply passed through unrewritten.
    var carriesPermissions: Bool { self == .authorization }
}
