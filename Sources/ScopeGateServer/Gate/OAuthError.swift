import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ScopeGateCore

/// Answers of the back-channel endpoints (token, PAR, device authorization): RFC 6749 §5.2 errors.
enum OAuthError {
    /// The answer to a domain error at a back-channel endpoint: a failing store is `503`
    /// `temporarily_unavailable`, too many new approval requests `429` `slow_down`.
    static func response(_ error: GateError) -> Response {
        switch error.code {
        case .slowDown:
            var answer = response(.tooManyRequests, error.code.rawValue, error.message)
            answer.headers[.retryAfter] = "60"
            return answer
        case .temporarilyUnavailable, .storeFailure:
            return response(.serviceUnavailable, "temporarily_unavailable", error.message)
        default:
            return response(.badRequest, error.code.rawValue, error.message)
        }
    }

    /// An RFC 6749 §5.2 error: JSON, `no-store`.
    static func response(_ status: HTTPResponse.Status, _ code: String, _ description: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        headers[.init("Pragma")!] = "no-cache"
        if status == .unauthorized { headers[.wwwAuthenticate] = #"Basic realm="token""# }
        if status == .serviceUnavailable { headers[.retryAfter] = "5" }
        let body = (try? JSONSerialization.data(
            withJSONObject: ["error": code, "error_description": description], options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
