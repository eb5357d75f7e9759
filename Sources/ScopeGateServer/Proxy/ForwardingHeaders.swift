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

    /// Who sent a request, as ScopeGate saw it.
    struct Peer {
        /// The TCP peer's IP address.
        var address: String?
        /// Whether it is a configured trusted proxy.
        var trusted: Bool
        /// The scheme ScopeGate received the request over.
        var scheme: String
    }

    /// The names a message's `Connection` header declares hop-by-hop, with the standard ones.
    static func dropped(_ headers: HTTPHeaders) -> Set<String> {
        var names = hopByHop
        for value in headers["connection"] {
            for token in value.split(separator: ",") {
                names.insert(token.trimmingCharacters(in: .whitespaces).lowercased())
            }
        }
        return names
    }

    /// The headers for the upstream request. `bodyFraming` is how the body will be sent: its length,
    /// chunked, or none; ScopeGate sets it itself rather than trusting what the client declared.
    static func upstreamRequest(from headers: HTTPHeaders, peer: Peer, host: String, bodyFraming: BodyFraming)
        -> HTTPHeaders
    {
        let dropped = dropped(headers)
        var result = HTTPHeaders()
        result.reserveCapacity(headers.count + 5)
        result.add(name: "Host", value: host)
        var priorForwardedFor: [String] = []
        var priorForwarded: [String] = []
        var keptProto = false
        var keptHost = false
        let authority = headers.first(name: "host")
        for (name, value) in headers {
            let lower = name.lowercased()
            if dropped.contains(lower) || lower == "host" || lower == "content-length" { continue }
            if forwarding.contains(lower) {
                guard peer.trusted else { continue }
                switch lower {
                case "x-forwarded-for": priorForwardedFor.append(value); continue
                case "forwarded": priorForwarded.append(value); continue
                case "x-forwarded-proto": keptProto = true
                case "x-forwarded-host": keptHost = true
                default: break
                }
            }
            result.add(name: name, value: value)
        }
        switch bodyFraming {
        case .length(let length): result.add(name: "Content-Length", value: String(length))
        case .chunked: result.add(name: "Transfer-Encoding", value: "chunked")
        case .none: break
        }
        let address = peer.address ?? "unknown"
        result.add(name: "X-Forwarded-For", value: (priorForwardedFor + [address]).joined(separator: ", "))
        if !keptProto { result.add(name: "X-Forwarded-Proto", value: peer.scheme) }
        if !keptHost, let authority { result.add(name: "X-Forwarded-Host", value: authority) }
        var element = "for=\(forwardedNode(address));proto=\(peer.scheme)"
        if let authority { element += ";host=\"\(authority.replacingOccurrences(of: "\"", with: ""))\"" }
        result.add(name: "Forwarded", value: (priorForwarded + [element]).joined(separator: ", "))
        return result
    }

    /// How a forwarded request's body is framed.
    enum BodyFraming: Equatable {
        case length(Int)
        case chunked
        case none

        /// The framing the client's request declared (after NIO's parser has checked it).
        init(_ head: HTTPRequestHead) {
            if let length = head.headers.first(name: "content-length").flatMap(Int.init) {
                self = .length(length)
            } else if head.headers.contains(name: "transfer-encoding") {
                self = .chunked
            } else {
                self = .none
            }
        }
    }

    /// The headers for the client's response.
    static func downstreamResponse(from headers: HTTPHeaders, rewriteLocation: (String) -> String) -> HTTPHeaders {
        let dropped = dropped(headers)
        var result = HTTPHeaders()
        result.reserveCapacity(headers.count)
        for (name, value) in headers {
            let lower = name.lowercased()
            if dropped.contains(lower) { continue }
            result.add(name: name, value: lower == "location" ? rewriteLocation(value) : value)
        }
        return result
    }

    /// A `Forwarded` node (RFC 7239 §6): IPv6 addresses quoted in brackets.
    static func forwardedNode(_ address: String) -> String {
        address.contains(":") ? "\"[\(address)]\"" : address
    }
}
