import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ScopeGateCore

/// Why the IdP did not revoke a client's tokens, and what to do about it.
enum IdPRevocationFailure: Error, Equatable {
    /// Worth trying again later: the IdP could not be reached, answered 5xx, or refused ScopeGate's
    /// credentials (an operator fixes those; the revocation must not be lost meanwhile).
    case transient(String)
    /// The IdP asked to slow down.
    case rateLimited(retryAfter: Duration)
    /// Trying again cannot help: the client does not exist there, or the IdP refused the request as
    /// malformed. Recorded in the audit log and dropped.
    case permanent(String)

    /// The failure's name, for logs and the audit log (never a secret).
    var name: String {
        switch self {
        case .transient(let reason), .permanent(let reason): reason
        case .rateLimited: "rate_limited"
        }
    }
}

/// An IdP's administration API that can invalidate the tokens it issued to one client.
protocol IdPTokenRevoker: Sendable {
    /// The IdP kind, as the audit log names it (`keycloak`, `okta`).
    var kind: String { get }
    /// Makes the IdP stop honouring the tokens it issued to `clientID` (known there as `appID`, where
    /// the IdP names applications otherwise). Idempotent: a repeat does no harm.
    func revokeTokens(of clientID: String, appID: String) async throws(IdPRevocationFailure)
}

/// The HTTP exchange every revoker makes: one request, the status and a bounded body back; network
/// failures and timeouts are transient.
struct IdPAdminHTTP: Sendable {
    let client: HTTPClient
    let timeout: TimeAmount

    struct Answer {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    func send(
        _ method: HTTPMethod, _ url: String, headers: [(String, String)], body: ByteBuffer? = nil
    ) async throws(IdPRevocationFailure) -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(body) }
        do {
            let response = try await client.execute(request, timeout: timeout)
            let bytes = try await response.body.collect(upTo: 1 << 20)
            return Answer(status: response.status, headers: response.headers, body: bytes)
        } catch {
            throw .transient("network: \(type(of: error))")
        }
    }

    /// The failure an unexpected status stands for: 429 asks to wait (`Retry-After` seconds, or the
    /// epoch second of `X-Rate-Limit-Reset` as Okta sends it), 401/403 and 5xx are tried again, any
    /// other status is permanent.
    static func failure(of answer: Answer, now: Date) -> IdPRevocationFailure {
        let code = answer.status.code
        if code == 429 {
            var seconds = 30
            if let retryAfter = answer.headers.first(name: "Retry-After").flatMap({ Int($0) }) {
                seconds = retryAfter
            } else if let reset = answer.headers.first(name: "X-Rate-Limit-Reset").flatMap({ Int64($0) }) {
                seconds = Int(reset - Int64(now.timeIntervalSince1970))
            }
            return .rateLimited(retryAfter: .seconds(max(1, min(seconds, 3600))))
        }
        if code == 401 || code == 403 || code >= 500 { return .transient("http_\(code)") }
        return .permanent("http_\(code)")
    }
}
