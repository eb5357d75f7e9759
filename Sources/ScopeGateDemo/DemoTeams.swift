import AsyncHTTPClient
import Crypto
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import _CryptoExtras

/// Microsoft's side of a Teams bot, for the demo: the identity platform's token endpoint (client
/// credentials), the Bot Framework's OpenID metadata and JWKS (a key made for each run), the Bot
/// Connector's `POST /v3/conversations` and `PUT …/activities/{id}`, and a page that shows the channels
/// with each Adaptive Card rendered. A click is sent to ScopeGate's messaging endpoint as the Bot
/// Connector sends it: an `adaptiveCard/action` invoke with an RS256 JWT, and the card is replaced by
/// the one ScopeGate answers with, or the error shown to the clicking person only.
public struct DemoTeams: Sendable {
    struct Card {
        var channel: String
        var conversation: String
        var activityID: String
        var content: Data
    }

    public let appID: String
    public let appPassword: String
    public let tenantID: String
    /// The fake's own base URL (`http://127.0.0.1:port`), without the trailing slash.
    public let baseURL: String
    /// ScopeGate's messaging endpoint.
    public let messagingURL: String
    public let members: [DemoMember]
    let httpClient: HTTPClient
    let key: _RSA.Signing.PrivateKey
    static let keyID = "demo-bot-framework-key"
    private let state = NIOLockedValueBox<(cards: [Card], notices: [(user: String, text: String)], tokens: Set<String>, next: Int)>(
        ([], [], [], 1))

    public init(
        appID: String, appPassword: String, tenantID: String, baseURL: String, messagingURL: String, members: [DemoMember],
        httpClient: HTTPClient
    ) throws {
        self.appID = appID
        self.appPassword = appPassword
        self.tenantID = tenantID
        self.baseURL = baseURL
        self.messagingURL = messagingURL
        self.members = members
        self.httpClient = httpClient
        self.key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
    }

    public var serviceURL: String { baseURL + "/teams/" }
    public var metadataURL: String { baseURL + "/v1/.well-known/openidconfiguration" }

    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.post("/{tenant}/oauth2/v2.0/token") { request, _ in try await token(request) }
        router.get("/v1/.well-known/openidconfiguration") { _, _ in
            json(["issuer": "https://api.botframework.com", "jwks_uri": baseURL + "/v1/keys", "id_token_signing_alg_values_supported": ["RS256"]])
        }
        router.get("/v1/keys") { _, _ in try jwks() }
        router.post("/teams/v3/conversations") { request, _ in try await createConversation(request) }
        router.put("/teams/v3/conversations/{conversation}/activities/{activity}") { request, context in
            try await updateActivity(request, id: try context.parameters.require("activity"))
        }
        router.get("/") { _, _ in page() }
        router.post("/click") { request, _ in try await click(request) }
        return router
    }

    // MARK: Microsoft's endpoints

    private func token(_ request: Request) async throws -> Response {
        var copy = request
        let form = Self.form(String(buffer: try await copy.collectBody(upTo: 1 << 16)))
        guard form["grant_type"] == "client_credentials", form["client_id"] == appID, form["client_secret"] == appPassword else {
            return json(["error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."], status: .unauthorized)
        }
        let token = "demo-connector-" + UUID().uuidString
        state.withLockedValue { _ = $0.tokens.insert(token) }
        return json(["token_type": "Bearer", "expires_in": 3599, "access_token": token])
    }

    private func jwks() throws -> Response {
        let primitives = try key.publicKey.getKeyPrimitives()
        return json([
            "keys": [[
                "kty": "RSA", "use": "sig", "kid": Self.keyID, "n": Self.base64URL(primitives.modulus),
                "e": Self.base64URL(primitives.publicExponent), "endorsements": ["msteams"],
            ]]
        ])
    }

    private func authorized(_ request: Request) -> Bool {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { return false }
        return state.withLockedValue { $0.tokens.contains(String(header.dropFirst(7))) }
    }

    private func createConversation(_ request: Request) async throws -> Response {
        guard authorized(request) else { return json(["message": "Authorization has been denied for this request."], status: .unauthorized) }
        var copy = request
        let body = (try? JSONSerialization.jsonObject(with: Data(buffer: try await copy.collectBody(upTo: 1 << 20)))) as? [String: Any] ?? [:]
        let channel = ((body["channelData"] as? [String: Any])?["channel"] as? [String: Any])?["id"] as? String ?? ""
        guard let content = Self.cardContent(body["activity"]) else {
            return json(["error": ["code": "BadArgument", "message": "no Adaptive Card"]], status: .badRequest)
        }
        let (conversation, activity) = state.withLockedValue { state -> (String, String) in
            state.next += 1
            let activity = String(1_700_000_000_000 + state.next)
            let conversation = "\(channel);messageid=\(activity)"
            state.cards.append(Card(channel: channel, conversation: conversation, activityID: activity, content: content))
            return (conversation, activity)
        }
        return json(["id": conversation, "activityId": activity], status: .created)
    }

    private func updateActivity(_ request: Request, id: String) async throws -> Response {
        guard authorized(request) else { return json(["message": "Authorization has been denied for this request."], status: .unauthorized) }
        var copy = request
        let body = (try? JSONSerialization.jsonObject(with: Data(buffer: try await copy.collectBody(upTo: 1 << 20)))) as? [String: Any]
        guard let content = Self.cardContent(body) else {
            return json(["error": ["code": "BadArgument", "message": "no Adaptive Card"]], status: .badRequest)
        }
        let found = replace(activity: id, with: content)
        return found ? json(["id": id]) : json(["error": ["code": "ActivityNotFound", "message": "Activity not found."]], status: .notFound)
    }

    private func replace(activity id: String, with content: Data) -> Bool {
        state.withLockedValue { state in
            guard let index = state.cards.firstIndex(where: { $0.activityID == id }) else { return false }
            state.cards[index].content = content
            return true
        }
    }

    private static func cardContent(_ activity: Any?) -> Data? {
        guard let attachments = (activity as? [String: Any])?["attachments"] as? [[String: Any]],
            let first = attachments.first, first["contentType"] as? String == "application/vnd.microsoft.card.adaptive",
            let content = first["content"]
        else { return nil }
        return try? JSONSerialization.data(withJSONObject: content)
    }

    // MARK: The page

    private func page() -> Response {
        let (cards, notices) = state.withLockedValue { ($0.cards, $0.notices) }
        var html = """
            <h1>Demo Teams</h1>
            <p>ScopeGate posts approval requests here as a bot posts Adaptive Cards to Teams channels. Actions send
            <code>adaptiveCard/action</code> invokes to ScopeGate, signed as the Bot Connector signs them, as the
            person chosen on the card. The page refreshes itself every three seconds.</p>
            """
        for notice in notices.reversed().prefix(5) {
            let name = members.first { $0.id == notice.user }?.name ?? notice.user
            html += "<p class=\"notice\">Only visible to \(escape(name)): \(escape(notice.text))</p>"
        }
        let channels = Array(Set(cards.map(\.channel))).sorted()
        if channels.isEmpty { html += "<p><em>No cards yet. Ask for <code>orders:read</code> in the demo app.</em></p>" }
        for channel in channels {
            html += "<h2>\(escape(channel))</h2>"
            for card in cards.filter({ $0.channel == channel }).reversed() {
                guard let object = (try? JSONSerialization.jsonObject(with: card.content)) as? [String: Any] else { continue }
                html += "<div class=\"card\">" + render(object, activity: card.activityID, conversation: card.conversation) + "</div>"
            }
        }
        let document = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
            <title>Demo Teams</title><style>
            body{font-family:"Segoe UI",system-ui;max-width:48rem;margin:2rem auto;background:#f5f5f5}
            .card{background:#fff;border-radius:6px;box-shadow:0 1px 3px #0003;padding:.75rem 1rem;margin:1rem 0}
            .card p{margin:.25rem 0;white-space:pre-wrap}.subtle{color:#666}.large{font-size:1.3em}
            .notice{background:#fde7e9;padding:.5rem}details{display:inline-block;margin-right:.5rem}
            button{background:#5b5fc7;color:#fff;border:0;border-radius:4px;padding:.35rem .8rem;margin:.2rem .2rem 0 0}
            summary{cursor:pointer;display:inline-block;background:#e8e8f4;border-radius:4px;padding:.35rem .8rem}
            form{display:inline}</style></head><body>\(html)</body></html>
            """
        return Response(
            status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: document)))
    }

    /// The Adaptive Card elements ScopeGate uses, drawn as Teams draws them (text blocks, rich text
    /// runs, `Action.Execute` buttons, `Action.ShowCard` confirmations), everything escaped.
    private func render(_ card: [String: Any], activity: String, conversation: String) -> String {
        var html = ""
        for element in (card["body"] as? [[String: Any]]) ?? [] {
            switch element["type"] as? String {
            case "TextBlock":
                let size = element["size"] as? String == "Large" ? " large" : ""
                let text = escape(element["text"] as? String ?? "")
                html += element["weight"] as? String == "Bolder" ? "<p class=\"\(size)\"><strong>\(text)</strong></p>" : "<p>\(text)</p>"
            case "RichTextBlock":
                var line = ""
                for run in (element["inlines"] as? [[String: Any]]) ?? [] {
                    var text = escape(run["text"] as? String ?? "")
                    if run["fontType"] as? String == "Monospace" { text = "<code>\(text)</code>" }
                    if run["weight"] as? String == "Bolder" { text = "<strong>\(text)</strong>" }
                    if run["isSubtle"] as? Bool == true { text = "<span class=\"subtle\">\(text)</span>" }
                    line += text
                }
                html += (element["separator"] as? Bool == true ? "<hr>" : "") + "<p>\(line)</p>"
            default:
                continue
            }
        }
        let actions = (card["actions"] as? [[String: Any]]) ?? []
        guard !actions.isEmpty else { return html }
        let options = members.map { "<option value=\"\(escape($0.id))\">\(escape($0.name))</option>" }.joined()
        html += "<form method=\"post\" action=\"/click\"><input type=\"hidden\" name=\"activity\" value=\"\(escape(activity))\">"
        html += "<input type=\"hidden\" name=\"conversation\" value=\"\(escape(conversation))\">"
        html += "<p>Click as <select name=\"user\" aria-label=\"click as\">\(options)</select></p>"
        for action in actions { html += renderAction(action) }
        return html + "</form>"
    }

    private func renderAction(_ action: [String: Any]) -> String {
        let title = escape(action["title"] as? String ?? "")
        switch action["type"] as? String {
        case "Action.Execute":
            let request = (action["data"] as? [String: Any])?["request"] as? String ?? ""
            let value = escape((action["verb"] as? String ?? "") + " " + request)
            return "<button name=\"action\" value=\"\(value)\">\(title)</button>"
        case "Action.ShowCard":
            let inner = action["card"] as? [String: Any] ?? [:]
            let text = ((inner["body"] as? [[String: Any]]) ?? []).compactMap { $0["text"] as? String }.map(escape).joined(separator: " ")
            let buttons = ((inner["actions"] as? [[String: Any]]) ?? []).map(renderAction).joined()
            return "<details><summary>\(title)</summary><p>\(text)</p>\(buttons)</details>"
        default:
            return ""
        }
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    // MARK: Clicks

    private func click(_ request: Request) async throws -> Response {
        var copy = request
        let fields = Self.form(String(buffer: try await copy.collectBody(upTo: 1 << 16)))
        let user = fields["user"] ?? ""
        let parts = (fields["action"] ?? "").split(separator: " ").map(String.init)
        guard parts.count == 2, let activityID = fields["activity"] else { return Response.redirect(to: "/", type: .normal) }
        let conversation = fields["conversation"] ?? ""
        let channel = conversation.split(separator: ";").first.map(String.init) ?? conversation
        let activity: [String: Any] = [
            "type": "invoke", "name": "adaptiveCard/action", "id": UUID().uuidString,
            "timestamp": ISO8601DateFormatter().string(from: Date()), "serviceUrl": serviceURL, "channelId": "msteams",
            "from": ["id": "29:demo-" + user, "name": members.first { $0.id == user }?.name ?? user, "aadObjectId": user],
            "conversation": ["isGroup": true, "conversationType": "channel", "tenantId": tenantID, "id": conversation],
            "recipient": ["id": "28:" + appID, "name": "ScopeGate"],
            "channelData": ["channel": ["id": channel], "tenant": ["id": tenantID]],
            "replyToId": activityID,
            "value": ["action": ["type": "Action.Execute", "verb": parts[0], "data": ["request": parts[1]]], "trigger": "manual"],
        ]
        var outgoing = HTTPClientRequest(url: messagingURL)
        outgoing.method = .POST
        outgoing.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        outgoing.headers.add(name: "Authorization", value: "Bearer " + (try connectorToken()))
        outgoing.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: activity)))
        let response = try await httpClient.execute(outgoing, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        // Teams replaces the card with the one in the invoke response, or shows its error to the
        // clicking person alone.
        if let answer = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] {
            if answer["type"] as? String == "application/vnd.microsoft.card.adaptive", let card = answer["value"],
                let content = try? JSONSerialization.data(withJSONObject: card)
            {
                _ = replace(activity: activityID, with: content)
            } else if let message = (answer["value"] as? [String: Any])?["message"] as? String {
                state.withLockedValue { $0.notices.append((user, message)) }
            }
        } else {
            state.withLockedValue { $0.notices.append((user, "ScopeGate answered HTTP \(response.status.code)")) }
        }
        return Response.redirect(to: "/", type: .normal)
    }

    /// The JWT the Bot Connector sends with each activity, signed with this run's key.
    private func connectorToken() throws -> String {
        let now = Int(Date().timeIntervalSince1970)
        let header = try JSONSerialization.data(withJSONObject: ["alg": "RS256", "kid": Self.keyID, "typ": "JWT"])
        let claims = try JSONSerialization.data(withJSONObject: [
            "iss": "https://api.botframework.com", "aud": appID, "serviceurl": serviceURL, "nbf": now - 60, "exp": now + 3600,
        ] as [String: Any])
        let input = Self.base64URL(header) + "." + Self.base64URL(claims)
        let signature = try key.signature(for: Data(input.utf8), padding: .insecurePKCS1v1_5)
        return input + "." + Self.base64URL(signature.rawRepresentation)
    }

    // MARK: Helpers

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func form(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            if parts.count == 2, fields[parts[0]] == nil { fields[parts[0]] = parts[1] }
        }
        return fields
    }

    private func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
