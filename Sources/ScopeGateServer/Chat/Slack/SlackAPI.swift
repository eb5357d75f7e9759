import AsyncHTTPClient
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import ScopeGateCore

/// Calls to the Slack Web API (`POST {base}/{method}`, bearer token), with Slack's errors sorted into
/// what a retry can fix and what it cannot.
struct SlackAPI: Sendable {
    typealias Failure = ChatDeliveryFailure

    /// What ScopeGate reads from a successful answer.
    struct Answer: Decodable, Sendable {
        /// A workspace member, as `users.info` describes them.
        struct User: Decodable, Sendable {
            var id: String
            var team_id: String?
            var deleted: Bool?
            var is_bot: Bool?
            var is_restricted: Bool?
            var is_ultra_restricted: Bool?
            /// Whether the account's email address is confirmed.
            var is_email_confirmed: Bool?
            struct Profile: Decodable, Sendable { var email: String? }
            /// The profile; its `email` only with the `users:read.email` scope.
            var profile: Profile?
        }

        var ok: Bool
        var user: User?
        var error: String?
        var ts: String?
        var channel: String?
        var users: [String]?
        var url: String?
    }

    /// Errors that mean the call will never succeed as it is (Slack's documented error codes).
    static let permanentErrors: Set<String> = [
        "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission",
        "missing_scope", "not_allowed_token_type", "ekm_access_denied", "team_access_not_granted",
        "channel_not_found", "not_in_channel", "is_archived", "restricted_action", "msg_too_long", "no_text",
        "invalid_blocks", "invalid_blocks_format", "invalid_arguments", "invalid_arg_name", "invalid_array_arg",
        "invalid_charset", "invalid_form_data", "invalid_post_type", "missing_post_type", "cant_update_message",
        "message_not_found", "edit_window_closed", "user_not_found", "users_not_found", "user_not_in_channel", "no_such_subteam",
        "subteam_not_found", "invalid_ts", "too_many_attachments",
    ]

    let client: HTTPClient
    /// The API's base URL, without the trailing slash (`https://slack.com/api`).
    let baseURL: String
    let token: String
    let timeout: TimeAmount
    let metrics: GateMetrics?

    init(client: HTTPClient, baseURL: URL, token: String, timeout: TimeAmount = .seconds(10), metrics: GateMetrics? = nil) {
        self.metrics = metrics
        self.client = client
        var base = baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.token = token
        self.timeout = timeout
    }

    /// Calls a write method with a JSON body.
    func call(_ method: String, json body: JSONValue) async throws(Failure) -> Answer {
        try await send(method, body: ByteBuffer(data: body.encoded()), contentType: "application/json; charset=utf-8")
    }

    /// Calls a method with form-encoded arguments (Slack's read methods take these).
    func call(_ method: String, form arguments: [(String, String)]) async throws(Failure) -> Answer {
        let encoded = FormParameters.encode(pairs: arguments)
        return try await send(method, body: ByteBuffer(string: encoded), contentType: "application/x-www-form-urlencoded")
    }

    /// Sends one call and counts how it ended.
    private func send(_ method: String, body: ByteBuffer, contentType: String) async throws(Failure) -> Answer {
        do {
            let answer = try await exchange(method, body: body, contentType: contentType)
            metrics?.chatCall("slack", method, outcome: "ok")
            return answer
        } catch {
            switch error {
            case .rateLimited: metrics?.chatCall("slack", method, outcome: "rate_limited")
            case .permanent: metrics?.chatCall("slack", method, outcome: "permanent")
            case .transient: metrics?.chatCall("slack", method, outcome: "transient")
            }
            throw error
        }
    }

    private func exchange(_ method: String, body: ByteBuffer, contentType: String) async throws(Failure) -> Answer {
        var request = HTTPClientRequest(url: "\(baseURL)/\(method)")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: contentType)
        request.body = .bytes(body)
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await client.execute(request, timeout: timeout)
            bytes = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw .transient("network: \(type(of: error))")
        }
        if response.status == .tooManyRequests {
            let seconds = response.headers.first(name: "Retry-After").flatMap { Int($0) } ?? 30
            throw .rateLimited(retryAfter: .seconds(max(1, min(seconds, 3600))))
        }
        guard response.status == .ok else {
            if response.status.code >= 500 { throw .transient("http_\(response.status.code)") }
            throw .permanent("http_\(response.status.code)")
        }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(buffer: bytes)) else {
            throw .transient("unreadable_response")
        }
        guard answer.ok else {
            let error = answer.error ?? "unknown_error"
            if error == "ratelimited" { throw .rateLimited(retryAfter: .seconds(30)) }
            throw Self.permanentErrors.contains(error) ? .permanent(error) : .transient(error)
        }
        return answer
    }
}
