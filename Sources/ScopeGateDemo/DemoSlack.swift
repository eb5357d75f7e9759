import AsyncHTTPClient
import Crypto
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// A Slack-compatible stand-in for the demo: the Web API methods ScopeGate calls
/// (`chat.postMessage`, `chat.update`, `chat.postEphemeral`, `usergroups.users.list`), and a page that
/// shows the channels with working buttons. A click is sent to ScopeGate's interaction endpoint as
/// Slack sends it: a `block_actions` payload, form-encoded, signed with the signing secret (`v0`).
public struct DemoSlack: Sendable {
    struct Message {
        var channel: String
        var ts: String
        var text: String
        /// The blocks as JSON, parsed again when the page is drawn.
        var blocks: Data?
    }

    public let teamID: String
    public let botToken: String
    public let signingSecret: String
    public let interactionURL: String
    public let members: [DemoMember]
    public let groups: [String: [String]]
    let httpClient: HTTPClient
    private let state = NIOLockedValueBox<(messages: [Message], ephemeral: [(user: String, text: String)], next: Int)>(([], [], 1))

    public init(
        teamID: String, botToken: String, signingSecret: String, interactionURL: String, members: [DemoMember],
        groups: [String: [String]], httpClient: HTTPClient
    ) {
        self.teamID = teamID
        self.botToken = botToken
        self.signingSecret = signingSecret
        self.interactionURL = interactionURL
        self.members = members
        self.groups = groups
        self.httpClient = httpClient
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.post("/api/{method}") { request, context in
            try await api(try context.parameters.require("method"), request)
        }
        router.get("/") { _, _ in page() }
        router.post("/click") { request, _ in try await click(request) }
        return router
    }

    // MARK: Web API

    private func api(_ method: String, _ request: Request) async throws -> Response {
        guard request.headers[.authorization] == "Bearer \(botToken)" else { return json(["ok": false, "error": "invalid_auth"]) }
        var copy = request
        let body = try await copy.collectBody(upTo: 1 << 20)
        let arguments: [String: Any]
        if request.headers[.contentType]?.hasPrefix("application/json") == true {
            arguments = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
        } else {
            arguments = Dictionary(
                String(buffer: body).split(separator: "&").compactMap { pair -> (String, Any)? in
                    let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? "" }
                    return parts.count == 2 ? (parts[0], parts[1]) : nil
                }, uniquingKeysWith: { first, _ in first })
        }
        let channel = arguments["channel"] as? String ?? ""
        switch method {
        case "chat.postMessage":
            let ts = state.withLockedValue { state -> String in
                state.next += 1
                let ts = "1700000000.\(String(format: "%06d", state.next))"
                state.messages.append(
                    Message(channel: channel, ts: ts, text: arguments["text"] as? String ?? "", blocks: Self.data(arguments["blocks"])))
                return ts
            }
            return json(["ok": true, "channel": channel, "ts": ts])
        case "chat.update":
            let ts = arguments["ts"] as? String ?? ""
            let found = state.withLockedValue { state -> Bool in
                guard let index = state.messages.firstIndex(where: { $0.channel == channel && $0.ts == ts }) else { return false }
                state.messages[index].text = arguments["text"] as? String ?? ""
                state.messages[index].blocks = Self.data(arguments["blocks"])
                return true
            }
            return found ? json(["ok": true, "channel": channel, "ts": ts]) : json(["ok": false, "error": "message_not_found"])
        case "chat.postEphemeral":
            state.withLockedValue { $0.ephemeral.append((arguments["user"] as? String ?? "", arguments["text"] as? String ?? "")) }
            return json(["ok": true, "message_ts": "1700000001.000001"])
        case "users.info":
            let user = arguments["user"] as? String ?? ""
            guard members.contains(where: { $0.id == user }) else { return json(["ok": false, "error": "user_not_found"]) }
            return json([
                "ok": true,
                "user": ["id": user, "team_id": teamID, "deleted": false, "is_bot": false, "is_restricted": false] as [String: Any],
            ])
        case "usergroups.users.list":
            guard let members = groups[arguments["usergroup"] as? String ?? ""] else {
                return json(["ok": false, "error": "no_such_subteam"])
            }
            return json(["ok": true, "users": members])
        default:
            return json(["ok": false, "error": "unknown_method"])
        }
    }

    private static func data(_ object: Any?) -> Data? {
        object.flatMap { try? JSONSerialization.data(withJSONObject: $0) }
    }

    private func json(_ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        return Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    // MARK: The page

    private func page() -> Response {
        let (messages, ephemeral) = state.withLockedValue { ($0.messages, $0.ephemeral) }
        var html = """
            <h1>Demo Slack</h1>
            <p>ScopeGate posts approval requests here as it would to Slack. Buttons send signed interactions to
            ScopeGate as the person chosen below. The page refreshes itself every two seconds.</p>
            """
        for notice in ephemeral.reversed().prefix(5) {
            let name = members.first { $0.id == notice.user }?.name ?? notice.user
            html += "<p class=\"ephemeral\">Only visible to \(escape(name)): \(escape(notice.text))</p>"
        }
        let channels = Array(Set(messages.map(\.channel))).sorted()
        if channels.isEmpty { html += "<p><em>No messages yet. Ask for <code>orders:read</code> in the demo app.</em></p>" }
        for channel in channels {
            html += "<h2>#\(escape(channel))</h2>"
            for message in messages.filter({ $0.channel == channel }).reversed() {
                html += "<div class=\"message\">" + render(message) + "</div>"
            }
        }
        let document = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
            <title>Demo Slack</title><style>
            body{font-family:system-ui;max-width:48rem;margin:2rem auto}
            .message{border:1px solid #ccc;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}
            .fields{display:grid;grid-template-columns:1fr 1fr;gap:0 1rem}.fields p{margin:.3rem 0}
            .text{white-space:pre-wrap}.context{color:#666;font-size:.9em}.ephemeral{background:#ffe;padding:.5rem}
            form{display:inline}</style></head><body>\(html)</body></html>
            """
        return Response(
            status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: document)))
    }

    private func render(_ message: Message) -> String {
        guard let data = message.blocks, let blocks = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] else { return "<p class=\"text\">\(escape(message.text))</p>" }
        var html = ""
        for block in blocks {
            switch block["type"] as? String {
            case "header":
                html += "<h3>\(mrkdwn(text(block["text"])))</h3>"
            case "section":
                if let fields = block["fields"] as? [Any] {
                    html += "<div class=\"fields\">" + fields.map { "<p class=\"text\">\(mrkdwn(text($0)))</p>" }.joined() + "</div>"
                }
                if let object = block["text"] as? [String: Any] {
                    let body = object["type"] as? String == "plain_text" ? escape(text(object)) : mrkdwn(text(object))
                    html += "<p class=\"text\">\(body)</p>"
                }
            case "context":
                html += "<p class=\"context\">" + ((block["elements"] as? [Any]) ?? []).map { escape(text($0)) }.joined(separator: " ") + "</p>"
            case "actions":
                let options = members.map { "<option value=\"\(escape($0.id))\">\(escape($0.name))</option>" }.joined()
                var buttons = ""
                var value = ""
                for element in (block["elements"] as? [[String: Any]]) ?? [] {
                    value = element["value"] as? String ?? value
                    buttons += "<button name=\"action\" value=\"\(escape(element["action_id"] as? String ?? ""))\">\(escape(text(element["text"])))</button> "
                }
                html += """
                    <form method="post" action="/click"><input type="hidden" name="value" value="\(escape(value))">
                    <input type="hidden" name="channel" value="\(escape(message.channel))"><input type="hidden" name="ts" value="\(escape(message.ts))">
                    Click as <select name="user" aria-label="click as">\(options)</select> \(buttons)</form>
                    """
            default:
                continue
            }
        }
        return html
    }

    /// Slack's mrkdwn as Slack would show it, for what ScopeGate writes: `<!date^…|fallback>` as its
    /// fallback, `<@U…>` as the member's name, `*bold*`, `` `code` ``; everything else as text.
    private func mrkdwn(_ source: String) -> String {
        var text = source
        while let open = text.range(of: "<!date^"), let close = text[open.upperBound...].firstIndex(of: ">") {
            let token = text[open.upperBound..<close]
            let fallback = token.split(separator: "|", maxSplits: 1).last.map(String.init) ?? ""
            text.replaceSubrange(open.lowerBound...close, with: fallback)
        }
        for member in members { text = text.replacingOccurrences(of: "<@\(member.id)>", with: "@" + member.name) }
        text = text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
        var html = escape(text)
        html = html.replacingOccurrences(of: #"\*([^*\n]+)\*"#, with: "<strong>$1</strong>", options: .regularExpression)
        html = html.replacingOccurrences(of: #"`([^`\n]+)`"#, with: "<code>$1</code>", options: .regularExpression)
        return html
    }

    private func text(_ object: Any?) -> String {
        (object as? [String: Any])?["text"] as? String ?? ""
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    // MARK: Clicks

    private func click(_ request: Request) async throws -> Response {
        var copy = request
        let form = String(buffer: try await copy.collectBody(upTo: 1 << 16))
        var fields: [String: String] = [:]
        // The clicked button's `action` comes with the form's other fields.
        for pair in form.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        let user = fields["user"] ?? ""
        let payload: [String: Any] = [
            "type": "block_actions",
            "user": ["id": user, "username": user.lowercased(), "team_id": teamID],
            "team": ["id": teamID, "domain": "demo"],
            "trigger_id": "\(Int(Date().timeIntervalSince1970)).\(UUID().uuidString)",
            "container": ["type": "message", "message_ts": fields["ts"] ?? "", "channel_id": fields["channel"] ?? ""],
            "channel": ["id": fields["channel"] ?? ""],
            "actions": [
                [
                    "type": "button", "action_id": fields["action"] ?? "", "value": fields["value"] ?? "",
                    "block_id": "scopegate_decision", "action_ts": String(format: "%.6f", Date().timeIntervalSince1970),
                ]
            ],
        ]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: payload), as: UTF8.self)
        let body = "payload=" + DemoClientApp.encode(json)
        let timestamp = String(Int(Date().timeIntervalSince1970))
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data("v0:\(timestamp):\(body)".utf8), using: SymmetricKey(data: Data(signingSecret.utf8)))
        var outgoing = HTTPClientRequest(url: interactionURL)
        outgoing.method = .POST
        outgoing.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        outgoing.headers.add(name: "X-Slack-Request-Timestamp", value: timestamp)
        outgoing.headers.add(name: "X-Slack-Signature", value: "v0=" + mac.map { String(format: "%02x", $0) }.joined())
        outgoing.body = .bytes(ByteBuffer(string: body))
        _ = try await httpClient.execute(outgoing, timeout: .seconds(5))
        return Response.redirect(to: "/", type: .normal)
    }
}
