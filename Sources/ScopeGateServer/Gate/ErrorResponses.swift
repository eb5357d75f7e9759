import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ScopeGateCore

/// Every error answer ScopeGate gives, built in one place: the map from domain errors to HTTP.
enum ErrorResponses {
    /// The HTTP status for a domain error.
    static func status(for error: GateError) -> HTTPResponse.Status {
        switch error.code {
        case .invalidRequest, .invalidScope, .unsupportedResponseType, .invalidConfiguration, .requestNotSupported,
            .requestURINotSupported, .invalidRequestObject, .invalidTarget, .invalidAuthorizationDetails:
            .badRequest
        case .accessDenied, .forbidden, .unauthorizedClient: .forbidden
        case .notFound: .notFound
        case .alreadyDecided, .alreadyVoted: .conflict
        case .temporarilyUnavailable, .storeFailure: .serviceUnavailable
        case .slowDown: .tooManyRequests
        }
    }

    /// A short plain-text answer.
    static func plain(_ status: HTTPResponse.Status, _ message: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: message + "\n")))
    }

    /// An OAuth-style JSON error (RFC 6749 §5.2 shape).
    static func json(_ error: GateError) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        if error.code == .temporarilyUnavailable { headers[.retryAfter] = "5" }
        if error.code == .slowDown { headers[.retryAfter] = "60" }
        let body = (try? JSONSerialization.data(
            withJSONObject: ["error": error.code.rawValue, "error_description": error.message], options: [.sortedKeys]))
            ?? Data()
        return Response(status: status(for: error), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// A human error page with the page security headers.
    static func page(_ error: GateError, title: String? = nil) -> Response {
        let nonce = RandomID.make(bytes: 16)
        let heading = title ?? defaultTitle(error.code)
        var response = PageResponse.html(
            MessagePages.error(title: heading, message: error.message, code: error.code.rawValue, nonce: nonce), nonce: nonce,
            status: status(for: error))
        if error.code == .temporarilyUnavailable { response.headers[.retryAfter] = "5" }
        if error.code == .slowDown { response.headers[.retryAfter] = "60" }
        return response
    }

    private static func defaultTitle(_ code: GateError.Code) -> String {
        switch code {
        case .temporarilyUnavailable, .storeFailure: "Temporarily unavailable"
        case .slowDown: "Too many requests"
        case .accessDenied: "Access denied"
        case .notFound: "Not found"
        default: "This request cannot be processed"
        }
    }
}

/// HTML responses with the headers every ScopeGate page carries.
enum PageResponse {
    /// An HTML page with a strict CSP (scripts and styles only by nonce), no framing and no caching.
    static func html(
        _ html: String, nonce: String, status: HTTPResponse.Status = .ok, formActions: [String] = []
    ) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        let actions = (["'self'"] + formActions).joined(separator: " ")
        headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'nonce-\(nonce)'; style-src 'nonce-\(nonce)'; connect-src 'self'; img-src 'self' data:; form-action \(actions); frame-ancestors 'none'; base-uri 'none'"
        headers[.init("X-Frame-Options")!] = "DENY"
        headers[.init("X-Content-Type-Options")!] = "nosniff"
        headers[.init("Referrer-Policy")!] = "same-origin"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// A 303 redirect that is never cached.
    static func redirect(_ location: String, headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.location] = location
        headers[.cacheControl] = "no-store"
        return Response(status: .seeOther, headers: headers)
    }
}
