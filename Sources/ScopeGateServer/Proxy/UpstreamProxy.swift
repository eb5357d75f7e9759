import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ScopeGateCore

/// Forwards requests to the IdP: streaming both bodies, over pooled connections, with the forwarding
/// headers ScopeGate owns. An unreachable upstream answers 502, a slow one 504; nothing here ever
/// decides anything about the gate.
struct UpstreamProxy: Sendable {
    let client: HTTPClient
    let configuration: ScopeGateConfiguration
    let rewriter: DiscoveryRewriter
    let upstreamHost: String
    let logger: Logger

    init(client: HTTPClient, configuration: ScopeGateConfiguration, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.rewriter = DiscoveryRewriter(upstream: configuration.upstreamURL, public: configuration.publicURL)
        self.logger = logger
        let upstreamAuthority = Self.authority(of: configuration.upstreamURL)
        switch configuration.hostHeader {
        case .public: upstreamHost = Self.authority(of: configuration.publicURL)
        case .upstream: upstreamHost = upstreamAuthority
        case .literal(let value): upstreamHost = value
        }
    }

    /// A whole document fetched from the upstream, or the answer to give when that failed.
    enum Fetched {
        case document(HTTPResponse.Status, HTTPFields, ByteBuffer)
        case failed(Response)
    }

    /// The body to send upstream.
    enum Body {
        /// The client's body, streamed as it arrives.
        case stream(RequestBody)
        /// A body ScopeGate built (a re-serialized form).
        case bytes(ByteBuffer)
        /// No body.
        case none
    }

    /// Forwards `request` with `pathAndQuery` as the request target, streaming the answer back.
    func forward(_ request: Request, pathAndQuery: String, body: Body, peer: String?) async -> Response {
        do {
            let response = try await send(request, pathAndQuery: pathAndQuery, body: body, peer: peer)
            return Response(
                status: .init(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase),
                headers: responseHeaders(response.headers), body: ResponseBody(asyncSequence: response.body))
        } catch {
            return failure(error)
        }
    }

    /// Fetches `pathAndQuery` from the upstream with the client's headers and returns the status, the
    /// headers and the whole body, bounded by `limit` (for documents ScopeGate rewrites).
    func fetch(_ request: Request, pathAndQuery: String, peer: String?, limit: Int) async -> Fetched {
        do {
            let response = try await send(request, pathAndQuery: pathAndQuery, body: .none, peer: peer)
            let body = try await response.body.collect(upTo: limit)
            return .document(
                HTTPResponse.Status(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase),
                responseHeaders(response.headers), body)
        } catch {
            return .failed(failure(error))
        }
    }

    private func send(_ request: Request, pathAndQuery: String, body: Body, peer: String?) async throws
        -> HTTPClientResponse
    {
        var upstream = HTTPClientRequest(url: DiscoveryRewriter.join(configuration.upstreamURL, pathAndQuery))
        upstream.method = HTTPMethod(rawValue: request.method.rawValue)
        upstream.headers = ForwardingHeaders.upstreamRequest(
            from: request.headers, authority: request.head.authority, peer: peer,
            peerIsTrusted: peer.map(configuration.trustedProxies.contains) ?? false,
            scheme: configuration.publicURL.scheme ?? "http", host: upstreamHost)
        switch body {
        case .stream(let stream):
            if let length = request.headers[.contentLength].flatMap(Int.init) {
                upstream.body = .stream(stream, length: .known(Int64(length)))
            } else if request.headers[.transferEncoding] != nil {
                upstream.body = .stream(stream, length: .unknown)
            }
        case .bytes(let buffer):
            upstream.headers.replaceOrAdd(name: "Content-Length", value: String(buffer.readableBytes))
            upstream.body = .bytes(buffer)
        case .none:
            upstream.headers.remove(name: "Content-Length")
        }
        return try await client.execute(upstream, timeout: .init(configuration.responseTimeout))
    }

    private func responseHeaders(_ headers: HTTPHeaders) -> HTTPFields {
        ForwardingHeaders.downstreamResponse(from: headers, rewriteLocation: rewriter.rewrite(url:))
    }

    private func failure(_ error: any Error) -> Response {
        if let error = error as? HTTPClientError,
            error == .deadlineExceeded || error == .readTimeout
        {
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

