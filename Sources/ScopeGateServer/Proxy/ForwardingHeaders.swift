import HTTPTypes
import NIOCore
import NIOHTTP1

/// The headers that cross ScopeGate in each direction.
///
/// Hop-by-hop headers (RFC 9110 §7.6.1), and any header a `Connection` header names, are dropped.
/// `X-Forwarded-*` and `Forwarded` describe what ScopeGate saw; a client's own are kept only when its
/// peer is a configured trusted proxy, so nobody can claim another address, host or scheme.
enum ForwardingHeaders {
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization",
    ]
    static let forwarding: Set<String> = [
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix",
        "forwarded", "x-real-ip", "x-original-url", "x-rewrite-url", "x-original-host",
    ]

    /// The header names a message's `Connection` header declares hop-by-hop.
    static func connectionOptions(_ fields: HTTPFields) -> Set<String> {
        var names = Set<String>()
        for value in fields[values: .connection] {
            for token in value.split(separator: ",") {
                names.insert(token.trimmingCharacters(in: .whitespaces).lowercased())
            }
        }
        return names
    }

    /// The headers for the upstream request.
    static func upstreamRequest(
        from fields: HTTPFields, authority: String?, peer: String?, peerIsTrusted: Bool, scheme: String,
        host: String
    ) -> HTTPHeaders {
        let dropped = hopByHop.union(connectionOptions(fields))
        var headers = HTTPHeaders()
        var priorForwardedFor: [String] = []
        var priorForwarded: [String] = []
        for field in fields {
            let name = field.name.canonicalName
            if dropped.contains(name) || name == "host" || name == "content-length" { continue }
            if forwarding.contains(name) {
                guard peerIsTrusted else { continue }
                if name == "x-forwarded-for" { priorForwardedFor.append(field.value); continue }
                if name == "forwarded" { priorForwarded.append(field.value); continue }
            }
            headers.add(name: field.name.rawName, value: field.value)
        }
        headers.replaceOrAdd(name: "Host", value: host)
        if let length = fields[.contentLength] { headers.replaceOrAdd(name: "Content-Length", value: length) }
        let peerText = peer ?? "unknown"
        headers.replaceOrAdd(name: "X-Forwarded-For", value: (priorForwardedFor + [peerText]).joined(separator: ", "))
        if !(peerIsTrusted && fields[.init("X-Forwarded-Proto")!] != nil) {
            headers.replaceOrAdd(name: "X-Forwarded-Proto", value: scheme)
        }
        if !(peerIsTrusted && fields[.init("X-Forwarded-Host")!] != nil), let authority {
            headers.replaceOrAdd(name: "X-Forwarded-Host", value: authority)
        }
        var element = "for=\(forwardedNode(peerText));proto=\(scheme)"
        if let authority { element += ";host=\"\(authority.replacingOccurrences(of: "\"", with: ""))\"" }
        headers.replaceOrAdd(name: "Forwarded", value: (priorForwarded + [element]).joined(separator: ", "))
        return headers
    }

    /// The headers for the client's response.
    static func downstreamResponse(from headers: HTTPHeaders, rewriteLocation: (String) -> String) -> HTTPFields {
        var dropped = hopByHop
        for value in headers["connection"] {
            for token in value.split(separator: ",") { dropped.insert(token.trimmingCharacters(in: .whitespaces).lowercased()) }
        }
        var fields = HTTPFields()
        fields.reserveCapacity(headers.count)
        for (name, value) in headers {
            let lower = name.lowercased()
            if dropped.contains(lower) { continue }
            guard let fieldName = HTTPField.Name(name) else { continue }
            fields.append(HTTPField(name: fieldName, value: lower == "location" ? rewriteLocation(value) : value))
        }
        return fields
    }

    /// A `Forwarded` node (RFC 7239 §6): IPv6 addresses quoted in brackets.
    static func forwardedNode(_ address: String) -> String {
        address.contains(":") ? "\"[\(address)]\"" : address
    }
}
