import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A Slack Web API stand-in on loopback, answering as Slack's documentation describes: `POST
/// /api/{method}` with a bearer token, `{"ok": true, …}` or `{"ok": false, "error": …}`, HTTP 429
/// with `Retry-After` when rate limited. It records every call and can be told to fail.
final class FakeSlack: Sendable {
    static let botToken = "xoxb-test-bot-token"
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
        var failures: [String: [Failure]] = [:]
        var groups: [String: [String]] = [:]
        var nextTS = 1
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

    /// Runs `body` with the fake serving.
    static func with(_ body: @Sendable (FakeSlack) async throws -> Void) async throws {
        let logger = Logger(label: "fake-slack") { _ in SwiftLogNoOpLogHandler() }
        let port = try FreePorts.take(1)[0]
        let fake = FakeSlack(port: port)
        let app = Application(
            responder: fake.responder(), configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        let group = ServiceGroup(services: [app], logger: logger)
        let task = Task { try await group.run() }
        try await FreePorts.waitUntilListening(port)
        let outcome: Result<Void, any Error>
        do {
            try await body(fake)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        await group.triggerGracefulShutdown()
        _ = await task.result
        try outcome.get()
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
            let (failure, ts, groups): (Failure?, Int, [String: [String]]) = self.state.withLock { state in
                state.calls.append(call)
                let failure = state.failures[method]?.isEmpty == false ? state.failures[method]!.removeFirst() : nil
                if failure == nil, method == "chat.postMessage" { state.nextTS += 1 }
                return (failure, state.nextTS, state.groups)
            }
            if call.authorization != "Bearer \(Self.botToken)" { return Self.json(["ok": false, "error": "invalid_auth"]) }
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
        let payload: [String: Any] = [
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
        let json = String(decoding: try! JSONSerialization.data(withJSONObject: payload), as: UTF8.self)
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let body = "payload=" + json.addingPercentEncoding(withAllowedCharacters: allowed)!
        return (body, signed(body: body, timestamp: timestamp, secret: secret))
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
