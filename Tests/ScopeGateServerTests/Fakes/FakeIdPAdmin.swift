import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Keycloak's admin REST API and Okta's management API on loopback, as their documentation describes
/// the calls ScopeGate makes: Keycloak's client credentials grant at
/// `/realms/{realm}/protocol/openid-connect/token` (HTTP Basic), `GET /admin/realms/{realm}/clients?clientId=`
/// (a JSON array of client representations) and `PUT /admin/realms/{realm}/clients/{id}` (204); Okta's
/// `DELETE /api/v1/apps/{appId}/tokens` with `Authorization: SSWS` (204, 404 with an error object,
/// 429 with `X-Rate-Limit-Reset`). It records every call and can be told to fail.
final class FakeIdPAdmin: Sendable {
    static let realm = "acme"
    static let adminClientID = "scopegate-revocation"
    static let adminSecret = "s3cret+/="
    static let oktaToken = "00okta-test-api-token"

    struct Call: Sendable {
        var method: String
        var path: String
        var query: String
        var authorization: String?
        var body: String
    }

    enum Failure: Sendable {
        case status(Int)
        /// Okta's 429: calls may resume at the epoch second `resetAt`.
        case rateLimited(resetAt: Int64)
    }

    private struct State {
        var calls: [Call] = []
        /// Keycloak clients of the realm: client id → internal id, and their `notBefore`.
        var clients: [String: String] = ["crm": "6f1d3c2a-0000-4000-8000-000000000001"]
        var notBefore: [String: Int64] = [:]
        /// Okta apps whose tokens were revoked, by app id; the apps that exist.
        var oktaApps: Set<String> = ["0oacrm"]
        var oktaRevoked: [String] = []
        var issuedTokens = 0
        /// Failures for the next calls whose path starts with the key.
        var failures: [String: [Failure]] = [:]
    }

    private let state = Mutex(State())
    let port: Int

    init(port: Int) { self.port = port }

    var url: String { "http://127.0.0.1:\(port)" }
    var calls: [Call] { state.withLock { $0.calls } }
    var notBefore: [String: Int64] { state.withLock { $0.notBefore } }
    var oktaRevoked: [String] { state.withLock { $0.oktaRevoked } }
    var issuedTokens: Int { state.withLock { $0.issuedTokens } }

    /// Answers the next calls whose path starts with `prefix` with these failures, in order.
    func fail(_ prefix: String, with failures: [Failure]) {
        state.withLock { $0.failures[prefix, default: []] += failures }
    }

    static func with(_ body: @Sendable (FakeIdPAdmin) async throws -> Void) async throws {
        let logger = Logger(label: "fake-idp-admin") { _ in SwiftLogNoOpLogHandler() }
        let port = try FreePorts.take(1)[0]
        let fake = FakeIdPAdmin(port: port)
        let app = Application(
            responder: fake.responder(), configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        try await LoopbackServer.run(app, port: port, logger: logger) { try await body(fake) }
    }

    private static func json(_ status: HTTPResponse.Status, _ object: Any) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        return Response(
            status: status, headers: [.contentType: "application/json", .contentLength: String(data.count)],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    private func responder() -> some HTTPResponder<BasicRequestContext> {
        CallbackResponder { (request: Request, _: BasicRequestContext) in
            var copy = request
            let body = String(buffer: (try? await copy.collectBody(upTo: 1 << 20)) ?? ByteBuffer())
            let path = request.uri.path
            let call = Call(
                method: request.method.rawValue, path: path, query: request.uri.query ?? "",
                authorization: request.headers[.authorization], body: body)
            let failure = self.state.withLock { state -> Failure? in
                state.calls.append(call)
                guard let key = state.failures.keys.first(where: { path.hasPrefix($0) && !state.failures[$0]!.isEmpty }) else { return nil }
                return state.failures[key]!.removeFirst()
            }
            switch failure {
            case .status(let code)?:
                return Self.json(.init(code: code), ["error": "failure"])
            case .rateLimited(let resetAt)?:
                var response = Self.json(.tooManyRequests, ["errorCode": "E0000047", "errorSummary": "API call exceeded rate limit"])
                response.headers[HTTPField.Name("X-Rate-Limit-Reset")!] = String(resetAt)
                return response
            case nil:
                break
            }
            return self.answer(request, call: call, path: path)
        }
    }

    private func answer(_ request: Request, call: Call, path: String) -> Response {
        let realm = Self.realm
        if path == "/realms/\(realm)/protocol/openid-connect/token", request.method == .post {
            let expected = "Basic " + Data("\(Self.adminClientID):\(FormParametersForTests.encode(Self.adminSecret))".utf8).base64EncodedString()
            guard call.authorization == expected, call.body == "grant_type=client_credentials" else {
                return Self.json(.unauthorized, ["error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"])
            }
            let token = state.withLock { state -> String in
                state.issuedTokens += 1
                return "admin-token-\(state.issuedTokens)"
            }
            return Self.json(.ok, ["access_token": token, "expires_in": 300, "token_type": "Bearer", "scope": "profile email"])
        }
        if path.hasPrefix("/admin/realms/") {
            let issued = state.withLock { $0.issuedTokens }
            guard issued > 0, call.authorization == "Bearer admin-token-\(issued)" else {
                return Self.json(.unauthorized, ["error": "HTTP 401 Unauthorized"])
            }
            let base = "/admin/realms/\(realm)/clients"
            if path == base, request.method == .get {
                let clientID = call.query.split(separator: "&").first { $0.hasPrefix("clientId=") }
                    .map { String($0.dropFirst("clientId=".count)).removingPercentEncoding ?? "" } ?? ""
                let found = state.withLock { $0.clients[clientID] }
                return Self.json(.ok, found.map { [["id": $0, "clientId": clientID, "enabled": true]] } ?? [])
            }
            if path.hasPrefix(base + "/"), request.method == .put {
                let id = String(path.dropFirst(base.count + 1))
                guard let object = try? JSONSerialization.jsonObject(with: Data(call.body.utf8)) as? [String: Any],
                    let notBefore = (object["notBefore"] as? NSNumber)?.int64Value
                else { return Self.json(.badRequest, ["error": "unrecognized field"]) }
                let known = state.withLock { state -> Bool in
                    guard state.clients.values.contains(id) else { return false }
                    state.notBefore[id] = notBefore
                    return true
                }
                return known ? Response(status: .noContent) : Self.json(.notFound, ["error": "Could not find client"])
            }
        }
        if path.hasPrefix("/api/v1/apps/"), path.hasSuffix("/tokens"), request.method == .delete {
            guard call.authorization == "SSWS \(Self.oktaToken)" else {
                return Self.json(.unauthorized, ["errorCode": "E0000011", "errorSummary": "Invalid token provided"])
            }
            let app = String(path.dropFirst("/api/v1/apps/".count).dropLast("/tokens".count))
            let known = state.withLock { state -> Bool in
                guard state.oktaApps.contains(app) else { return false }
                state.oktaRevoked.append(app)
                return true
            }
            return known
                ? Response(status: .noContent)
                : Self.json(.notFound, ["errorCode": "E0000007", "errorSummary": "Not found: Resource not found: \(app) (AppInstance)"])
        }
        return Self.json(.notFound, ["error": "not found"])
    }
}

/// Form encoding as RFC 6749 §2.3.1 asks of client credentials in HTTP Basic (the fake checks it).
enum FormParametersForTests {
    static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
