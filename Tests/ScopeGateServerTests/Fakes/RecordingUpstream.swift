import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// An IdP stand-in that records every request it receives: the oracle for "nothing reached the IdP".
final class RecordingUpstream: Sendable {
    struct Received: Sendable {
        var method: HTTPRequest.Method
        var target: String
        var headers: HTTPFields
        var body: ByteBuffer
        var path: String { String(target.prefix { $0 != "?" }) }
        var query: String? { target.firstIndex(of: "?").map { String(target[target.index(after: $0)...]) } }
    }

    private let log = Mutex<[Received]>([])
    /// Members added to the discovery document (JSON text starting with a comma).
    let discoveryExtra: String

    /// A discovery document served as it is at its own path, instead of the built-in one (a real IdP's).
    let discovery: (path: String, document: String)?

    init(discoveryExtra: String = "", discovery: (path: String, document: String)? = nil) {
        self.discoveryExtra = discoveryExtra
        self.discovery = discovery
    }
    /// How the upstream answers; replaceable per test.
    let behaviour = Mutex<@Sendable (Request, ByteBuffer) async -> Response>({ _, _ in Response(status: .ok) })

    var received: [Received] { log.withLock { $0 } }

    /// Requests to `path`, in order.
    func received(at path: String) -> [Received] { received.filter { $0.path == path } }

    func reset() { log.withLock { $0.removeAll() } }

    static let discovery = """
        {"issuer":"ISSUER","authorization_endpoint":"ISSUER/o/authorize/","token_endpoint":"ISSUER/o/token/",
         "jwks_uri":"ISSUER/o/.well-known/jwks.json","authorization_response_iss_parameter_supported":true,
         "mtls_endpoint_aliases":{"token_endpoint":"ISSUER/o/token/"}}
        """

    func responder(issuer: @escaping @Sendable () -> String) -> some HTTPResponder<BasicRequestContext> {
        CallbackResponder { (request: Request, context: BasicRequestContext) in
            var copy = request
            let body = (try? await copy.collectBody(upTo: 128 << 20)) ?? ByteBuffer()
            if let discovery = self.discovery, request.uri.path == discovery.path {
                return Response(
                    status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: discovery.document)))
            }
            if self.discovery == nil, request.uri.path == "/.well-known/openid-configuration" {
                var document = Self.discovery.replacingOccurrences(of: "ISSUER", with: issuer())
                if !self.discoveryExtra.isEmpty {
                    document = String(document.dropLast(document.count - (document.lastIndex(of: "}").map { document.distance(from: document.startIndex, to: $0) } ?? document.count)))
                        + self.discoveryExtra.replacingOccurrences(of: "ISSUER", with: issuer()) + "}"
                }
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: document)))
            }
            self.log.withLock { $0.append(Received(method: request.method, target: request.uri.string, headers: request.headers, body: body)) }
            let answer = self.behaviour.withLock { $0 }
            return await answer(request, body)
        }
    }
}
