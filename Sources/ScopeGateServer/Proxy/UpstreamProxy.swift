import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Prometheus
import ScopeGateCore

/// Fetches whole documents from the IdP for ScopeGate to rewrite (discovery), over AsyncHTTPClient.
/// Pass-through traffic does not use it: the public listener forwards that at the channel level.
struct UpstreamProxy: Sendable {
    let client: HTTPClient
    let configuration: ScopeGateConfiguration
    let rewriter: DiscoveryRewriter
    let upstreamHost: String
    /// ScopeGate's own name (`public_url`'s host and port): the only host the IdP is told of in
    /// `X-Forwarded-Host` and `Forwarded`.
    let publicHost: String
    /// The IdP's latency, head to head (`/metrics`).
    let latency: DurationHistogram?
    let logger: Logger

    init(client: HTTPClient, configuration: ScopeGateConfiguration, latency: DurationHistogram? = nil, logger: Logger) {
        self.client = client
        self.latency = latency
        self.configuration = configuration
        self.rewriter = DiscoveryRewriter(upstream: configuration.upstreamURL, public: configuration.publicURL)
        self.logger = logger
        self.upstreamHost = Self.upstreamHost(configuration)
        self.publicHost = Self.authority(of: configuration.publicURL)
    }

    /// Sends `request` to the IdP and returns its response head, timing it.
    func execute(_ request: HTTPClientRequest) async throws -> HTTPClientResponse {
        let start = ContinuousClock.now
        let response = try await client.execute(request, timeout: .init(configuration.responseTimeout))
        latency?.record(ContinuousClock.now - start)
        return response
    }

    /// The `Host` header the IdP receives.
    static func upstreamHost(_ configuration: ScopeGateConfiguration) -> String {
        switch configuration.hostHeader {
        case .public: authority(of: configuration.publicURL)
        case .upstream: authority(of: configuration.upstreamURL)
        case .literal(let value): value
        }
    }

    /// A whole document fetched from the upstream, or the answer to give when that failed.
    enum Fetched {
        case document(HTTPResponse.Status, HTTPFields, ByteBuffer)
        case failed(Response)
    }

    /// Fetches `pathAndQuery` from the upstream with the client's headers and returns the status, the
    /// headers and the whole body, bounded by `limit`.
    func fetch(_ request: Request, pathAndQuery: String, peer: ForwardingHeaders.Peer, limit: Int) async -> Fetched {
        var upstream = HTTPClientRequest(url: DiscoveryRewriter.join(configuration.upstreamURL, pathAndQuery))
        upstream.method = .GET
        upstream.headers = ForwardingHeaders.upstreamRequest(
            from: HTTPHeaders(request.headers), peer: peer, host: upstreamHost, publicHost: publicHost, bodyFraming: .none)
        // ScopeGate reads this answer: it must come as it is, not compressed.
        upstream.headers.remove(name: "Accept-Encoding")
        do {
            let response = try await execute(upstream)
            let body = try await response.body.collect(upTo: limit)
            let headers = ForwardingHeaders.downstreamResponse(from: response.headers, rewriteLocation: rewriter.rewrite(url:))
            return .document(
                HTTPResponse.Status(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase),
                HTTPFields(headers, splitCookie: false), body)
        } catch {
            return .failed(failure(error))
        }
    }

    /// A whole answer from the IdP, its headers already rewritten for the client.
    struct Answer: Sendable {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: ByteBuffer

        /// The answer as a response to the client.
        var response: Response {
            var fields = HTTPFields(headers, splitCookie: false)
            fields[.contentLength] = String(body.readableBytes)
            return Response(
                status: .init(code: Int(status.code), reasonPhrase: status.reasonPhrase), headers: fields,
                body: .init(byteBuffer: body))
        }
    }

    /// The forwarding identity of a client connection, from what ScopeGate saw.
    func peer(_ context: GateRequestContext) -> ForwardingHeaders.Peer {
        ForwardingHeaders.Peer(
            address: context.peerAddress, trusted: context.peerAddress.map(configuration.trustedProxies.contains) ?? false,
            scheme: configuration.publicURL.scheme ?? "http")
    }

    /// The address a request comes from, for limits kept per client: the TCP peer, or, when the peer is
    /// a trusted proxy, the nearest `X-Forwarded-For` entry that is not itself a trusted proxy. Entries
    /// further left are whatever the client wrote; the nearest one the proxies appended is not.
    func clientAddress(_ request: Request, context: GateRequestContext) -> String {
        Self.clientAddress(
            peer: context.peerAddress, forwardedFor: request.headers[values: .xForwardedFor],
            trustedProxies: configuration.trustedProxies)
    }

    static func clientAddress(peer: String?, forwardedFor: [String], trustedProxies: Set<String>) -> String {
        guard let peer else { return "unknown" }
        guard trustedProxies.contains(peer) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        return hops.reversed().first { !trustedProxies.contains($0) } ?? peer
    }

    /// POSTs `form` (re-serialized by ScopeGate) to `path` on the IdP with the client's headers,
    /// rewritten as for any forwarded request, and reads the whole answer, bounded by `limit`.
    func post(_ form: FormParameters, to path: String, from request: Request, peer: ForwardingHeaders.Peer, limit: Int)
        async throws -> Answer
    {
        let body = ByteBuffer(string: form.encoded)
        var upstream = HTTPClientRequest(url: DiscoveryRewriter.join(configuration.upstreamURL, path))
        upstream.method = .POST
        var headers = ForwardingHeaders.upstreamRequest(
            from: HTTPHeaders(request.headers), peer: peer, host: upstreamHost, publicHost: publicHost,
            bodyFraming: .length(body.readableBytes))
        headers.replaceOrAdd(name: "Content-Type", value: "application/x-www-form-urlencoded")
        // ScopeGate reads this answer (the second gate reads every token): it must come as it is, not
        // compressed; a client that asked for gzip gets it uncompressed.
        headers.remove(name: "Accept-Encoding")
        upstream.headers = headers
        upstream.body = .bytes(body)
        let response = try await execute(upstream)
        return Answer(
            status: response.status,
            headers: ForwardingHeaders.downstreamResponse(from: response.headers, rewriteLocation: rewriter.rewrite(url:)),
            body: try await response.body.collect(upTo: limit))
    }

    /// POSTs a form of ScopeGate's own (not a client's) to `path` on the IdP, as the public URL's host,
    /// and reads the whole answer.
    func postOwn(_ form: String, to path: String, authorization: String) async throws -> (status: UInt, body: ByteBuffer) {
        var upstream = HTTPClientRequest(url: DiscoveryRewriter.join(configuration.upstreamURL, path))
        upstream.method = .POST
        upstream.headers.add(name: "Host", value: upstreamHost)
        upstream.headers.add(name: "X-Forwarded-Proto", value: configuration.publicURL.scheme ?? "https")
        upstream.headers.add(name: "X-Forwarded-Host", value: publicHost)
        upstream.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        upstream.headers.add(name: "Accept", value: "application/json")
        upstream.headers.add(name: "Authorization", value: authorization)
        upstream.body = .bytes(ByteBuffer(string: form))
        let response = try await execute(upstream)
        return (response.status.code, try await response.body.collect(upTo: 1 << 20))
    }

    private func failure(_ error: any Error) -> Response {
        if let error = error as? HTTPClientError, error == .deadlineExceeded || error == .readTimeout {
            logger.warning("upstream timed out", metadata: ["sg.upstream.error": "\(error)"])
            return ErrorResponses.plain(.gatewayTimeout, "the identity provider did not answer in time")
        }
        logger.warning("upstream unreachable", metadata: ["sg.upstream.error": "\(String(describing: error))"])
        return ErrorResponses.plain(.badGateway, "the identity provider cannot be reached")
    }

    static func authority(of url: URL) -> String {
        let host = url.host ?? "localhost"
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return url.port.map { "\(hostPart):\($0)" } ?? hostPart
    }
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}
