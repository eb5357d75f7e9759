import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ScopeGateCore

/// The public listener's responder. Decides, from the exact request target, whether a request is the
/// gated authorization endpoint, a discovery document, one of ScopeGate's own pages, another spelling
/// of a gated path (refused), or pass-through traffic for the IdP.
struct ScopeGateResponder: HTTPResponder {
    typealias Context = GateRequestContext

    let pathGuard: PathGuard
    let authorization: AuthorizationEndpoint
    let holds: HoldEndpoints
    let discovery: DiscoveryEndpoint
    let proxy: UpstreamProxy

    func respond(to request: Request, context: GateRequestContext) async throws -> Response {
        let target = request.uri.string
        guard target.first == "/", !target.utf8.contains(UInt8(ascii: "#")) else {
            return ErrorResponses.plain(.badRequest, "the request target must be an absolute path")
        }
        let path = Substring(request.uri.path)
        if path.hasPrefix(HoldEndpoints.prefix) {
            return await holds.respond(to: request, path: path, context: context)
        }
        switch pathGuard.classify(path) {
        case .gated(.authorization):
            guard [.get, .head, .post].contains(request.method) else {
                var response = ErrorResponses.plain(.methodNotAllowed, "the authorization endpoint takes GET and POST")
                response.headers[.allow] = "GET, HEAD, POST"
                return response
            }
            return await authorization.respond(to: request, context: context)
        case .gated(.discovery):
            return await discovery.respond(to: request, context: context)
        case .ambiguous:
            return ErrorResponses.plain(
                .badRequest, "invalid_request: this path is another spelling of an endpoint ScopeGate gates; use its exact path")
        case .other:
            return await proxy.forward(request, pathAndQuery: target, body: .stream(request.body), peer: context.peerAddress)
        }
    }
}

/// Serves the IdP's discovery document with every endpoint moved to ScopeGate's public URL.
struct DiscoveryEndpoint: Sendable {
    let proxy: UpstreamProxy

    func respond(to request: Request, context: GateRequestContext) async -> Response {
        guard request.method == .get || request.method == .head else {
            var response = ErrorResponses.plain(.methodNotAllowed, "discovery takes GET")
            response.headers[.allow] = "GET, HEAD"
            return response
        }
        switch await proxy.fetch(request, pathAndQuery: request.uri.string, peer: context.peerAddress, limit: 1 << 20) {
        case .failed(let response):
            return response
        case .document(let status, let headers, let body):
            var fields = headers
            guard status == .ok else {
                fields[.contentLength] = String(body.readableBytes)
                return Response(status: status, headers: fields, body: .init(byteBuffer: body))
            }
            guard let rewritten = proxy.rewriter.rewrite(Data(buffer: body)) else {
                return ErrorResponses.plain(.badGateway, "the identity provider's discovery document is not JSON")
            }
            fields[.contentLength] = String(rewritten.count)
            fields[.contentType] = "application/json"
            fields[.init("ETag")!] = nil
            return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: rewritten)))
        }
    }
}
