import NIOCore
import NIOHTTP1

/// The headers that cross ScopeGate in each direction.
///
/// Hop-by-hop headers (RFC 9110 §7.6.1), and any header a `Connection` header names, are dropped.
/// `X-Forwarded-*` and `Forwarded` describe what ScopeGate saw; a client's own are kept only when its
/// peer is a configured trusted proxy, so nobody can claim another address or scheme; the same holds
/// for the headers some servers route by (`X-Original-URL`, `X-Rewrite-URL`, …). The host they name is
/// always ScopeGate's own (`public_url`), never a `Host` a client sent, from anyone: some IdPs build
/// issuers and password-reset links from it. Method overrides (`X-HTTP-Method-Override`, …) are never
/// passed on.
enum ForwardingHeaders {

    /// Who sent a request, as ScopeGate saw it.
    struct Peer {
        /// The TCP peer's IP address.
        var address: String?
        /// Whether it is a configured trusted proxy.
        var trusted: Bool
        /// The scheme ScopeGate received the request over.
        var scheme: String
        /// `address` as a `Forwarded` node, computed once per connection.
        let node: String

        init(address: String?, trusted: Bool, scheme: String) {
            self.address = address
            self.trusted = trusted
            self.scheme = scheme
            self.node = ForwardingHeaders.forwardedNode(address ?? "unknown")
        }
    }

    /// What ScopeGate does with one header name on the way through.
    enum Disposition {
        /// Passed on.
        case keep
        /// Dropped in both directions (hop-by-hop).
        case hopByHop
        /// A forwarding header: kept only from a trusted peer.
        case forwarding
        /// `Host` or `Content-Length`: ScopeGate writes its own.
        case replaced
        /// A method override some frameworks obey: never passed to the IdP, from anyone, because the
        /// gate decides by the request's real method.
        case methodOverride
    }

    /// Every name that is not simply passed on, with what happens to it.
    private static let table: [(name: StaticString, disposition: Disposition)] = [
        ("host", .replaced), ("content-length", .replaced),
        ("connection", .hopByHop), ("keep-alive", .hopByHop), ("proxy-connection", .hopByHop), ("te", .hopByHop),
        ("trailer", .hopByHop), ("transfer-encoding", .hopByHop), ("upgrade", .hopByHop),
        ("proxy-authenticate", .hopByHop), ("proxy-authorization", .hopByHop),
        ("x-forwarded-for", .forwarding), ("x-forwarded-proto", .forwarding), ("x-forwarded-host", .forwarding),
        ("x-forwarded-port", .forwarding), ("x-forwarded-prefix", .forwarding), ("forwarded", .forwarding),
        ("x-real-ip", .forwarding), ("x-original-url", .forwarding), ("x-rewrite-url", .forwarding),
        ("x-original-host", .forwarding), ("x-original-uri", .forwarding), ("x-forwarded-uri", .forwarding),
        ("x-forwarded-path", .forwarding), ("x-forwarded-server", .forwarding), ("x-forwarded-scheme", .forwarding),
        ("x-forwarded-ssl", .forwarding), ("x-host", .forwarding), ("x-http-host-override", .forwarding),
        ("x-http-method-override", .methodOverride), ("x-http-method", .methodOverride),
        ("x-method-override", .methodOverride), ("x-original-method", .methodOverride),
    ]

    /// Bit `n` is set when some hop-by-hop name is `n` bytes long: most names are passed over by their
    /// length alone.
    static let hopByHopLengths: UInt64 = table.reduce(0) { mask, entry in
        guard case .hopByHop = entry.disposition else { return mask }
        return mask | (1 << UInt64(entry.name.utf8CodeUnitCount))
    }

    /// Classifies `name` without allocating: header names are ASCII and compared case-insensitively.
    static func disposition(of name: String) -> Disposition {
        var name = name
        return name.withUTF8(disposition(of:))
    }

    /// Classifies the header name in `bytes`.
    static func disposition(of bytes: UnsafeBufferPointer<UInt8>) -> Disposition {
        for entry in table where matches(bytes, entry.name) { return entry.disposition }
        return .keep
    }

    /// Whether `bytes` equals the lower-case ASCII `name`, ignoring ASCII case.
    @inline(__always)
    static func matches(_ bytes: UnsafeBufferPointer<UInt8>, _ name: StaticString) -> Bool {
        guard bytes.count == name.utf8CodeUnitCount else { return false }
        let expected = name.utf8Start
        for index in 0..<bytes.count where bytes[index] | 0x20 != expected[index] | 0x20 {
            return false
        }
        return true
    }

    /// The extra names a `Connection` header lists, lower-cased (rare: most messages have none, and a
    /// plain `keep-alive` or `close` is passed over without splitting or allocating).
    static func connectionOptions(_ headers: HTTPHeaders) -> [String] {
        var names: [String] = []
        for (name, value) in headers where isConnection(name) {
            if equalsIgnoringCase(value, "keep-alive") || equalsIgnoringCase(value, "close") { continue }
            for token in value.split(separator: ",") {
                let trimmed = token.trimmingCharacters(in: .whitespaces).lowercased()
                if trimmed != "close" && trimmed != "keep-alive" { names.append(trimmed) }
            }
        }
        return names
    }

    private static func isConnection(_ name: String) -> Bool {
        name.utf8.count == 10 && equalsIgnoringCase(name, "connection")
    }

    /// ASCII case-insensitive equality with a lower-case `expected`.
    static func equalsIgnoringCase(_ text: String, _ expected: StaticString) -> Bool {
        guard text.utf8.count == expected.utf8CodeUnitCount else { return false }
        let bytes = expected.utf8Start
        var index = 0
        for byte in text.utf8 {
            if byte | 0x20 != bytes[index] | 0x20 { return false }
            index += 1
        }
        return true
    }

    /// The headers for the upstream request. `bodyFraming` is how the body will be sent: its length,
    /// chunked, or none; ScopeGate sets it itself rather than trusting what the client declared.
    static func upstreamRequest(
        from headers: HTTPHeaders, peer: Peer, host: String, publicHost: String, bodyFraming: BodyFraming
    ) -> HTTPHeaders {
        var result = HTTPHeaders()
        result.reserveCapacity(headers.count + 5)
        forEachUpstreamField(from: headers, peer: peer, host: host, publicHost: publicHost, bodyFraming: bodyFraming) {
            result.add(name: $0, value: $1)
        }
        return result
    }

    /// The upstream request's head, written straight into one buffer (the pass-through path): the
    /// fields of `upstreamRequest`, with `contentType` in place of the client's when given.
    ///
    /// `forwardingFields` is `forwardingFields(peer:publicHost:)`, made once per connection: from a peer
    /// that is not a trusted proxy, the forwarding fields never depend on the request.
    static func upstreamRequestHead(
        method: HTTPMethod, target: String, from headers: HTTPHeaders, peer: Peer, host: String, publicHost: String,
        bodyFraming: BodyFraming, contentType: String? = nil, forwardingFields: ByteBuffer? = nil,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 0)
        writeUpstreamRequestHead(
            into: &buffer, method: method, target: target, from: headers, peer: peer, host: host, publicHost: publicHost,
            bodyFraming: bodyFraming, contentType: contentType, forwardingFields: forwardingFields)
        return buffer
    }

    /// `upstreamRequestHead`, written at the end of `buffer`.
    static func writeUpstreamRequestHead(
        into buffer: inout ByteBuffer, method: HTTPMethod, target: String, from headers: HTTPHeaders, peer: Peer,
        host: String, publicHost: String, bodyFraming: BodyFraming, contentType: String? = nil,
        forwardingFields: ByteBuffer? = nil
    ) {
        buffer.reserveCapacity(minimumWritableBytes: 320 + target.utf8.count + headers.count * 48)
        buffer.writeString(method.rawValue)
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(target)
        buffer.writeStaticString(" HTTP/1.1\r\n")
        let cached = peer.trusted ? nil : forwardingFields
        forEachUpstreamField(
            from: headers, peer: peer, host: host, publicHost: publicHost, bodyFraming: bodyFraming,
            forwarding: cached == nil
        ) { name, value in
            if contentType != nil, name.utf8.count == 12, equalsIgnoringCase(name, "content-type") { return }
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        if let contentType {
            buffer.writeStaticString("Content-Type: ")
            buffer.writeString(contentType)
            buffer.writeStaticString("\r\n")
        }
        if var cached { buffer.writeBuffer(&cached) }
        buffer.writeStaticString("\r\n")
    }

    /// The forwarding fields ScopeGate sends for a peer that is not a trusted proxy, written.
    static func forwardingFields(peer: Peer, publicHost: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 160)
        forEachForwardingField(peer: peer, publicHost: publicHost, priorForwardedFor: [], priorForwarded: [], keptProto: false) {
            buffer.writeString($0)
            buffer.writeStaticString(": ")
            buffer.writeString($1)
            buffer.writeStaticString("\r\n")
        }
        return buffer
    }

    /// Calls `emit` with each field of the upstream request, in order: `Host`, the client's fields that
    /// pass, the framing, then (unless `forwarding` is false) the forwarding fields.
    private static func forEachUpstreamField(
        from headers: HTTPHeaders, peer: Peer, host: String, publicHost: String, bodyFraming: BodyFraming,
        forwarding: Bool = true, _ emit: (String, String) -> Void
    ) {
        let options = headers.contains(name: "connection") ? connectionOptions(headers) : []
        emit("Host", host)
        var priorForwardedFor: [String] = []
        var priorForwarded: [String] = []
        var keptProto = false
        for (name, value) in headers {
            switch disposition(of: name) {
            case .hopByHop, .methodOverride, .replaced:
                continue
            case .forwarding:
                guard peer.trusted else { continue }
                let lower = name.lowercased()
                switch lower {
                case "x-forwarded-for": priorForwardedFor.append(value); continue
                case "forwarded":
                    // A trusted proxy's elements, unless one names a host: that is a client's `Host`.
                    if !value.lowercased().contains("host=") { priorForwarded.append(value) }
                    continue
                case "x-forwarded-proto": keptProto = true
                case "x-forwarded-host", "x-original-host", "x-host", "x-http-host-override", "x-forwarded-server": continue
                default: break
                }
            case .keep:
                if !options.isEmpty, options.contains(name.lowercased()) { continue }
            }
            emit(name, value)
        }
        switch bodyFraming {
        case .length(let length): emit("Content-Length", String(length))
        case .chunked: emit("Transfer-Encoding", "chunked")
        case .none: break
        }
        guard forwarding else { return }
        forEachForwardingField(
            peer: peer, publicHost: publicHost, priorForwardedFor: priorForwardedFor, priorForwarded: priorForwarded,
            keptProto: keptProto, emit)
    }

    /// The forwarding fields, after what a trusted proxy said before (`prior…`, `keptProto`).
    private static func forEachForwardingField(
        peer: Peer, publicHost: String, priorForwardedFor: [String], priorForwarded: [String], keptProto: Bool,
        _ emit: (String, String) -> Void
    ) {
        let address = peer.address ?? "unknown"
        emit("X-Forwarded-For", priorForwardedFor.isEmpty ? address : (priorForwardedFor + [address]).joined(separator: ", "))
        if !keptProto { emit("X-Forwarded-Proto", peer.scheme) }
        emit("X-Forwarded-Host", publicHost)
        // Built in one string: this runs for every forwarded request.
        var element = ""
        element.reserveCapacity(peer.node.utf8.count + publicHost.utf8.count + 24)
        element += "for="
        element += peer.node
        element += ";proto="
        element += peer.scheme
        element += ";host=\""
        element += publicHost
        element += "\""
        emit("Forwarded", priorForwarded.isEmpty ? element : (priorForwarded + [element]).joined(separator: ", "))
    }

    /// How a forwarded request's body is framed.
    enum BodyFraming: Equatable {
        case length(Int)
        case chunked
        case none

        /// The framing the client's request declared (after NIO's parser has checked it: never both a
        /// length and a transfer coding). `hasTransferEncoding` is whether it has the header, which the
        /// caller has already looked for.
        init(_ head: HTTPRequestHead, hasTransferEncoding: Bool) {
            if hasTransferEncoding {
                self = .chunked
            } else if let length = head.headers.first(name: "content-length").flatMap(Int.init) {
                self = .length(length)
            } else {
                self = .none
            }
        }
    }

    /// The headers for the client's response.
    static func downstreamResponse(from headers: HTTPHeaders, rewriteLocation: (String) -> String) -> HTTPHeaders {
        let options = headers.contains(name: "connection") ? connectionOptions(headers) : []
        // Most responses have no `Location` and only a `Connection` (or nothing) to drop: those names are
        // removed from the IdP's headers in place, the others kept as they are, without building a copy
        // of every header.
        var dropped: [String] = []
        var hasLocation = false
        for (name, _) in headers {
            if case .hopByHop = disposition(of: name) {
                dropped.append(name)
            } else if !options.isEmpty, options.contains(name.lowercased()) {
                dropped.append(name)
            } else if name.utf8.count == 8, equalsIgnoringCase(name, "location") {
                hasLocation = true
                break
            }
        }
        if !hasLocation {
            var result = headers
            for name in dropped { result.remove(name: name) }
            return result
        }
        var result = HTTPHeaders()
        result.reserveCapacity(headers.count)
        for (name, value) in headers {
            if case .hopByHop = disposition(of: name) { continue }
            if !options.isEmpty, options.contains(name.lowercased()) { continue }
            if name.utf8.count == 8, name.lowercased() == "location" {
                result.add(name: name, value: rewriteLocation(value))
            } else {
                result.add(name: name, value: value)
            }
        }
        return result
    }

    /// A `Forwarded` node (RFC 7239 §6): IPv6 addresses quoted in brackets.
    static func forwardedNode(_ address: String) -> String {
        address.utf8.contains(UInt8(ascii: ":")) ? "\"[\(address)]\"" : address
    }
}
