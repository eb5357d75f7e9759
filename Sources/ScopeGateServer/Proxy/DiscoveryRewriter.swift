import Foundation

/// Rewrites a discovery document so every endpoint on the IdP's own origin points at ScopeGate.
struct DiscoveryRewriter: Sendable {
    let upstreamOrigin: String?
    let publicOrigin: String

    init(upstream: URL, public publicURL: URL) {
        self.upstreamOrigin = Self.origin(of: upstream)
        self.publicOrigin = Self.origin(of: publicURL) ?? publicURL.absoluteString
    }

    /// The document with every URL on the upstream origin moved to the public origin, or `nil` when the
    /// body is not a JSON object.
    func rewrite(_ body: Data) -> Data? {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { return nil }
        let rewritten = rewriteValue(object)
        return try? JSONSerialization.data(withJSONObject: rewritten, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// A URL string on the upstream origin, moved to the public origin; anything else unchanged.
    func rewrite(url text: String) -> String {
        guard let upstreamOrigin, upstreamOrigin != publicOrigin, text.hasPrefix(upstreamOrigin) else { return text }
        let rest = text.dropFirst(upstreamOrigin.count)
        guard rest.isEmpty || rest.first == "/" || rest.first == "?" else { return text }
        return publicOrigin + rest
    }

    private func rewriteValue(_ value: Any) -> Any {
        switch value {
        case let text as String: return rewrite(url: text)
        case let dictionary as [String: Any]: return dictionary.mapValues(rewriteValue)
        case let array as [Any]: return array.map(rewriteValue)
        default: return value
        }
    }

    /// `scheme://host[:port]` in lower case, with the default port left out.
    static func origin(of url: URL) -> String? {
        guard let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased() else { return nil }
        let defaultPort = scheme == "https" ? 443 : 80
        let hostPart = host.contains(":") ? "[\(host)]" : host
        if let port = url.port, port != defaultPort { return "\(scheme)://\(hostPart):\(port)" }
        return "\(scheme)://\(hostPart)"
    }

    /// `base` (an origin with an optional path prefix) joined with `path`.
    static func join(_ base: URL, _ path: String) -> String {
        var text = base.absoluteString
        while text.hasSuffix("/") { text.removeLast() }
        return text + path
    }
}
