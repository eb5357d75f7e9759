import AsyncHTTPClient
import Crypto
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// A pending approval request as the demo's approvals page shows it.
public struct DemoPendingRequest: Sendable {
    public var id: String
    public var clientName: String
    public var scopes: [String]
    public var justifications: [String]

    public init(id: String, clientName: String, scopes: [String], justifications: [String]) {
        self.id = id
        self.clientName = clientName
        self.scopes = scopes
        self.justifications = justifications
    }
}

/// How the demo's approvals page reads and decides approval requests.
public protocol DemoApprovals: Sendable {
    func pending() async throws -> [DemoPendingRequest]
    func approve(_ id: String, once: Bool) async throws
    func deny(_ id: String) async throws
}

/// The demo's "third-party app": signs in through ScopeGate with authorization code + PKCE, and
/// hosts a local approvals page for the demo's approver.
public struct DemoClientApp: Sendable {
    public let clientID: String
    public let baseURL: String
    public let gatewayURL: String
    let approvals: any DemoApprovals
    let httpClient: HTTPClient
    private let sessions = NIOLockedValueBox<[String: String]>([:])

    public init(clientID: String, baseURL: String, gatewayURL: String, approvals: any DemoApprovals, httpClient: HTTPClient) {
        self.clientID = clientID
        self.baseURL = baseURL
        self.gatewayURL = gatewayURL
        self.approvals = approvals
        self.httpClient = httpClient
    }

    public var redirectURI: String { baseURL + "/callback" }

    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("/") { _, _ in page("Demo app", home) }
        router.get("/login") { request, _ in login(request) }
        router.get("/callback") { request, _ in try await callback(request) }
        router.get("/approvals") { _, _ in try await approvalsPage() }
        router.post("/approvals/{id}/{action}") { _, context in
            let id = try context.parameters.require("id")
            switch try context.parameters.require("action") {
            case "approve": try await approvals.approve(id, once: false)
            case "once": try await approvals.approve(id, once: true)
            case "deny": try await approvals.deny(id)
            default: return Response(status: .notFound)
            }
            return Response.redirect(to: "/approvals", type: .normal)
        }
        return router
    }

    private var home: String {
        """
        <h1>Demo app</h1>
        <p>This app signs you in through ScopeGate. Pick what it asks for:</p>
        <ul>
        <li><a href="/login?scope=openid+profile">Sign in with <code>openid profile</code></a> — auto-approved by policy</li>
        <li><a href="/login?scope=openid+orders:read">Ask for <code>orders:read</code></a> — held until an approver decides</li>
        <li><a href="/login?scope=openid+orders:write">Ask for <code>orders:write</code></a> — elevated tier, held</li>
        <li><a href="/login?scope=openid+admin:org">Ask for <code>admin:org</code></a> — denied by policy</li>
        </ul>
        <p>Approvers decide on the <a href="/approvals" target="_blank">approvals page</a> (opens in a new tab) or with <code>scopegate requests approve</code>.</p>
        """
    }

    private func login(_ request: Request) -> Response {
        let scope = request.uri.queryParameters["scope"].map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0) } ?? "openid"
        let state = UUID().uuidString
        let verifier = (UUID().uuidString + UUID().uuidString).replacingOccurrences(of: "-", with: "")
        sessions.withLockedValue { $0[state] = verifier }
        let query = [
            ("response_type", "code"), ("client_id", clientID), ("redirect_uri", redirectURI), ("scope", scope),
            ("state", state), ("code_challenge", DemoIdentityProvider.challenge(for: verifier)),
            ("code_challenge_method", "S256"),
        ].map { "\($0.0)=\(Self.encode($0.1))" }.joined(separator: "&")
        return Response.redirect(to: gatewayURL + "/authorize?" + query, type: .found)
    }

    private func callback(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        if let error = query["error"] {
            let description = query["error_description"].map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" } ?? ""
            return page("Not signed in", "<h1>Not signed in</h1><p>The app received <code>\(escape(String(error)))</code>: \(escape(description))</p><p><a href=\"/\">Back</a></p>")
        }
        guard let state = query["state"].map(String.init), let verifier = sessions.withLockedValue({ $0.removeValue(forKey: state) }),
            let code = query["code"].map(String.init)
        else {
            return page("Error", "<h1>Unknown or reused state</h1><p><a href=\"/\">Back</a></p>")
        }
        var tokenRequest = HTTPClientRequest(url: gatewayURL + "/token")
        tokenRequest.method = .POST
        tokenRequest.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI), ("client_id", clientID), ("code_verifier", verifier)]
            .map { "\($0.0)=\(Self.encode($0.1))" }.joined(separator: "&")
        tokenRequest.body = .bytes(ByteBuffer(string: form))
        let response = try await httpClient.execute(tokenRequest, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 16)
        let json = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any]
        let scope = json?["scope"] as? String ?? "(none)"
        return page("Signed in", "<h1>Signed in</h1><p>The app holds an access token with scope <code>\(escape(scope))</code>.</p><p><a href=\"/\">Back</a></p>")
    }

    private func approvalsPage() async throws -> Response {
        let pending = try await approvals.pending()
        var rows = ""
        for request in pending {
            let reasons = request.justifications.isEmpty ? "<em>no justification yet</em>" : request.justifications.map(escape).joined(separator: "<br>")
            rows += """
                <li><strong>\(escape(request.clientName))</strong> asks for <code>\(escape(request.scopes.joined(separator: " ")))</code>
                (request <code>\(escape(request.id))</code>)<br>Why: \(reasons)<br>
                <form method="post" action="/approvals/\(escape(request.id))/approve" style="display:inline"><button>Approve</button></form>
                <form method="post" action="/approvals/\(escape(request.id))/once" style="display:inline"><button>Approve once</button></form>
                <form method="post" action="/approvals/\(escape(request.id))/deny" style="display:inline"><button>Deny</button></form></li>
                """
        }
        let body = "<h1>Pending approvals</h1>" + (rows.isEmpty ? "<p>Nothing is waiting. <a href=\"/approvals\">Refresh</a></p>" : "<ul>\(rows)</ul><p><a href=\"/approvals\">Refresh</a></p>")
        return page("Approvals", body)
    }

    private func page(_ title: String, _ body: String) -> Response {
        let html = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>\(escape(title))</title></head><body style=\"font-family:system-ui;max-width:44rem;margin:2rem auto\">\(body)</body></html>"
        return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")) ?? text
    }
}
