/// An error ScopeGate reports to a client or an operator: a stable code and a message that says what
/// went wrong and, for operators, what to do next.
public struct GateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The stable codes. The raw values of the OAuth ones are the error codes of RFC 6749 §4.1.2.1.
    public enum Code: String, Sendable, Equatable {
        /// The request is malformed or ambiguous (OAuth `invalid_request`).
        case invalidRequest = "invalid_request"
        /// A scope token is malformed (OAuth `invalid_scope`).
        case invalidScope = "invalid_scope"
        /// The request was denied by policy or an approver (OAuth `access_denied`).
        case accessDenied = "access_denied"
        /// The gate cannot decide safely right now, for example the store failed (OAuth `temporarily_unavailable`).
        case temporarilyUnavailable = "temporarily_unavailable"
        /// The response type is not allowed (OAuth `unsupported_response_type`).
        case unsupportedResponseType = "unsupported_response_type"
        /// A request object was sent (OIDC Core §3.1.2.6 `request_not_supported`).
        case requestNotSupported = "request_not_supported"
        /// A request object cannot be read (OIDC Core §3.1.2.6 `invalid_request_object`).
        case invalidRequestObject = "invalid_request_object"
        /// A `resource` is not an absolute URI without a fragment (RFC 8707 §2 `invalid_target`).
        case invalidTarget = "invalid_target"
        /// `authorization_details` cannot be read (RFC 9396 §5 `invalid_authorization_details`).
        case invalidAuthorizationDetails = "invalid_authorization_details"
        /// A request URI was sent (OIDC Core §3.1.2.6 `request_uri_not_supported`).
        case requestURINotSupported = "request_uri_not_supported"
        /// Too many new approval requests right now (RFC 8628 `slow_down`, answered `429`).
        case slowDown = "slow_down"
        /// The client is unknown or not allowed (OAuth `unauthorized_client`).
        case unauthorizedClient = "unauthorized_client"
        /// No such approval request, hold or grant.
        case notFound = "not_found"
        /// The approval request was already decided; the first decision stands.
        case alreadyDecided = "already_decided"
        /// This approver already voted on the request, which waits for other approvers.
        case alreadyVoted = "already_voted"
        /// The caller may not see or change this object.
        case forbidden = "forbidden"
        /// The configuration is invalid; the message names the key.
        case invalidConfiguration = "invalid_configuration"
        /// The store failed.
        case storeFailure = "store_failure"
    }

    /// The stable code, compared in tests and mapped to HTTP answers at the edge.
    public var code: Code
    /// A human message. Never holds a secret, token or code.
    public var message: String

    /// Creates an error with a code and a message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
