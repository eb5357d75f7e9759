import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A Slack Web API stand-in on loopback, answering as Slack's documentation describes: `POST
/// /api/{method}` with a bearer token, `{"ok": true, …}` or `{"ok": false, "error": …}`, HTTP 429
/// with `Retry-After` when rate limited. It records every call and can be told to fail.
final class FakeSlack: Sendable {
    static let botToken = "xoxb-test-bot-token"
    static let appToken = "xapp-test-app-token"
    static let signingSecret = "8f742231b10e8888abcd99yyyzzz85a5"
    static let teamID = "T0TEAM"

    struct Call: Sendable {
        var method: String
        var json: [String: JSONValueLike]
        var form: [String: String]
        var authorization: String?
    }

    /// A failure to answer the next call of a method with.
    enum Failure: Sendable {
        case status(Int)
        case rateLimited(retryAfter: Int)
        case error(String)
    }

    private struct State {
        var calls: [Call] = []
        /// Socket Mode: one writer per open connection, the acknowledgements received, connections made.
        var sockets: [AsyncStream<String>.Continuation] = []
        var acknowledged: [String] = []
        var connectionsOpened = 0
        var failures: [String: [Failure]] = [:]
        var groups: [String: [String]] = [:]
        var nextTS = 1
        /// Accounts `users.info` describes as deactivated or guests; everyone else is an active member.
        var deactivated: Set<String> = []
        var guests: Set<String> = []
        /// How long each method takes to answer.
        var delays: [String: Duration] = [:]
    }

    private let state = Mutex(State())
    let port: Int

    init(port: Int) { self.port = port }

    var apiURL: String { "http://127.0.0.1:\(port)/api" }
    var calls: [Call] { state.withLock { $0.calls } }
    func calls(_ method: String) -> [Call] { calls.filter { $0.method == method } }

    /// Answers the next calls of `method` with these failures, in order.
    func fail(_ method: String, with failures: Failure...) {
        state.withLock { $0.failures[method, default: []].append(contentsOf: failures) }
    }

    func setGroup(_ id: String, members: [String]) { state.withLock { $0.groups[id] = members } }
    /// Makes every call of `method` take this long to answer (a slow success).
    func delay(_ method: String, by duration: Duration) { state.withLock { $0.delays[method] = duration } }
    func deactivate(_ user: String) { state.withLock { _ = $0.deactivated.insert(user) } }
    func makeGuest(_ user: String) { state.withLock { _ = $0.guests.insert(user) } }

    // MARK: Socket Mode

    /// How many WebSocket connections ScopeGate has made.
    var connectionsOpened: Int { state.withLock { $0.connectionsOpened } }
    /// The envelope ids ScopeGate acknowledged.
    var acknowledged: [String] { state.withLock { $0.acknowledged } }
    var openSockets: Int { state.withLock { $0.sockets.count } }

    /// Sends a text frame on the newest connection.
    func sendOnSocket(_ text: String) {
        _ = state.withLock { $0.sockets.last?.yield(text) }
    }

    /// Sends a click as an `interactive` envelope; returns its envelope id.
    @discardableResult
    func sendInteraction(action: String, requestID: String, user: String, triggerID: String = UUID().uuidString) -> String {
        let envelope = UUID().uuidString
        let payload = Self.interactionPayload(action: action, requestID: requestID, user: user, team: Self.teamID, channel: "C0APPROVALS", triggerID: triggerID)
        let object: [String: Any] = [
            "envelope_id": envelope, "type": "interactive", "accepts_response_payload": false, "retry_attempt": 0,
            "retry_reason": "", "payload": payload,
        ]
        sendOnSocket(String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self))
        return envelope
    }

    private func socketOpened(_ continuation: AsyncStream<String>.Continuation) {
        state.withLock {
            $0.sockets.append(continuation)
            $0.connectionsOpened += 1
        }
    }

    private func socketClosed() { state.withLock { _ = $0.sockets.popLast() } }

    private func received(_ text: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let id = object["envelope_id"] as? String
        else { return }
        state.withLock { $0.acknowledged.append(id) }
    }

    /// The WebSocket side of Socket Mode at `/link`: `hello` first, then whatever the test sends.
    private func socketHandler() -> HTTPServerBuilder {
        .http1WebSocketUpgrade { request, _, _ in
            guard request.path?.hasPrefix("/link") == true else { return .dontUpgrade }
            return .upgrade([:]) { inbound, outbound, _ in
                let (stream, continuation) = AsyncStream<String>.makeStream()
                self.socketOpened(continuation)
                defer { self.socketClosed() }
                try await outbound.write(
                    .text(#"{"type":"hello","num_connections":1,"debug_info":{"host":"fake"},"connection_info":{"app_id":"A0APP"}}"#))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await text in stream { try await outbound.write(.text(text)) }
                    }
                    group.addTask {
                        for try await message in inbound.messages(maxSize: 1 << 20) {
                            if case .text(let text) = message { self.received(text) }
                        }
                    }
                    _ = try await group.next()
                    group.cancelAll()
                }
            }
        }
    }

    /// Runs `body` with the fake serving.
    static func with(_ body: @Sendable (FakeSlack) async throws -> Void) async throws {
        let logger = Logger(label: "fake-slack") { _ in SwiftLogNoOpLogHandler() }
        let port = try FreePorts.take(1)[0]
        let fake = FakeSlack(port: port)
        let app = Application(
            responder: fake.responder(), server: fake.socketHandler(),
            configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        try await LoopbackServer.run(app, port: port, logger: logger) { try await body(fake) }
    }

    private func responder() -> some HTTPResponder<BasicRequestContext> {
        CallbackResponder { (request: Request, _: BasicRequestContext) in
            var copy = request
            let body = String(buffer: (try? await copy.collectBody(upTo: 1 << 20)) ?? ByteBuffer())
            let method = String(request.uri.path.dropFirst("/api/".count))
            var call = Call(method: method, json: [:], form: [:], authorization: request.headers[.authorization])
            if request.headers[.contentType]?.hasPrefix("application/json") == true {
                call.json = (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
                    .map { $0.mapValues(JSONValueLike.init) } ?? [:]
            } else {
                for pair in body.split(separator: "&") {
                    let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? "" }
                    if parts.count == 2 { call.form[parts[0]] = parts[1] }
                }
            }
            let (failure, ts, groups, deactivated, guests) = self.state.withLock { state in
                state.calls.append(call)
                let failure = state.failures[method]?.isEmpty == false ? state.failures[method]!.removeFirst() : nil
                if failure == nil, method == "chat.postMessage" { state.nextTS += 1 }
                return (failure, state.nextTS, state.groups, state.deactivated, state.guests)
            }
            if let delay = self.state.withLock({ $0.delays[method] }) { try? await Task.sleep(for: delay) }
            let token = method == "apps.connections.open" ? Self.appToken : Self.botToken
            if call.authorization != "Bearer \(token)" { return Self.json(["ok": false, "error": "invalid_auth"]) }
            switch failure {
            case .status(let code)?:
                return Response(status: .init(code: code), headers: [.contentLength: "0"])
            case .rateLimited(let seconds)?:
                return Response(status: .tooManyRequests, headers: [.init("Retry-After")!: String(seconds), .contentLength: "0"])
            case .error(let error)?:
                return Self.json(["ok": false, "error": error])
            case nil:
                break
            }
            switch method {
            case "chat.postMessage":
                let channel = call.json["channel"]?.string ?? ""
                let posted = channel.hasPrefix("U") ? "D" + channel.dropFirst() : channel
                return Self.json(["ok": true, "channel": posted, "ts": "1700000000.\(String(format: "%06d", ts))"])
            case "chat.update":
                return Self.json(["ok": true, "channel": call.json["channel"]?.string ?? "", "ts": call.json["ts"]?.string ?? ""])
            case "chat.postEphemeral":
                return Self.json(["ok": true, "message_ts": "1700000001.000001"])
            case "users.info":
                let user = call.form["user"] ?? ""
                guard user.hasPrefix("U") else { return Self.json(["ok": false, "error": "user_not_found"]) }
                return Self.json([
                    "ok": true,
                    "user": [
                        "id": user, "team_id": Self.teamID, "name": user.lowercased(), "deleted": deactivated.contains(user),
                        "is_bot": false, "is_restricted": guests.contains(user), "is_ultra_restricted": false,
                    ] as [String: Any],
                ])
            case "apps.connections.open":
                return Self.json(["ok": true, "url": "ws://127.0.0.1:\(self.port)/link/?ticket=\(UUID().uuidString)"])
            case "usergroups.users.list":
                guard let members = groups[call.form["usergroup"] ?? ""] else {
                    return Self.json(["ok": false, "error": "no_such_subteam"])
                }
                return Self.json(["ok": true, "users": members])
            default:
                return Self.json(["ok": false, "error": "unknown_method"])
            }
        }
    }

    private static func json(_ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        return Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    // MARK: Interactions, as Slack sends them

    /// The form body and headers of a signed `block_actions` interaction.
    static func interaction(
        action: String, requestID: String, user: String, team: String = teamID, channel: String = "C0APPROVALS",
        triggerID: String = UUID().uuidString, timestamp: Date = Date(), secret: String = signingSecret
    ) -> (body: String, headers: [(String, String)]) {
        let payload = interactionPayload(action: action, requestID: requestID, user: user, team: team, channel: channel, triggerID: triggerID)
        let json = String(decoding: try! JSONSerialization.data(withJSONObject: payload), as: UTF8.self)
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let body = "payload=" + json.addingPercentEncoding(withAllowedCharacters: allowed)!
        return (body, signed(body: body, timestamp: timestamp, secret: secret))
    }

    /// A `block_actions` payload as Slack sends it.
    static func interactionPayload(
        action: String, requestID: String, user: String, team: String, channel: String, triggerID: String
    ) -> [String: Any] {
        [
            "type": "block_actions",
            "user": ["id": user, "username": "someone", "name": "someone", "team_id": team],
            "api_app_id": "A0APP", "token": "verification-token-unused",
            "container": ["type": "message", "message_ts": "1700000000.000002", "channel_id": channel, "is_ephemeral": false],
            "trigger_id": triggerID, "team": ["id": team, "domain": "example"], "channel": ["id": channel, "name": "approvals"],
            "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
            "actions": [
                [
                    "action_id": action, "block_id": "scopegate_decision", "value": requestID, "type": "button",
                    "action_ts": "1700000000.123456",
                ]
            ],
        ]
    }

    static func signed(body: String, timestamp: Date, secret: String = signingSecret) -> [(String, String)] {
        let ts = String(Int(timestamp.timeIntervalSince1970))
        let mac = HMAC<SHA256>.authenticationCode(for: Data("v0:\(ts):\(body)".utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return [
            ("Content-Type", "application/x-www-form-urlencoded"), ("X-Slack-Request-Timestamp", ts),
            ("X-Slack-Signature", "v0=" + mac.map { String(format: "%02x", $0) }.joined()),
        ]
    }
}

/// A JSON value read back from a recorded call, for assertions.
enum JSONValueLike: Sendable, Equatable {
    case string(String)
    case other(String)

    init(_ value: Any) {
        if let string = value as? String {
            self = .string(string)
        } else {
            let data = (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys])) ?? Data()
            self = .other(String(decoding: data, as: UTF8.self))
        }
    }

    var string: String? { if case .string(let value) = self { value } else { nil } }
    /// The value as JSON text (strings as they are).
    var text: String {
        switch self {
        case .string(let value): value
        case .other(let json): json
        }
    }
}
