/// An OAuth 2.0 / OpenID Connect authorization request, parsed once and strictly.
///
/// The parameters are the union of the query and, for `POST`, the form body (OIDC Core §3.1.2.1). A
/// parameter present in both, or twice in one, is refused rather than guessed at. The gate evaluates
/// `scopes`; an approved request is forwarded as `parameters.encoded`, so the IdP receives exactly
/// what was evaluated.
public struct AuthorizationRequest: Sendable, Equatable {
    /// How the request arrived.
    public enum Method: String, Sendable, Codable { case get = "GET", post = "POST" }

    /// The HTTP method the browser used.
    public let method: Method
    /// Every parameter, query first, then body.
    public let parameters: FormParameters
    /// The `client_id`.
    public let clientID: String
    /// The requested scopes; empty when the request carries no `scope` parameter.
    public let scopes: ScopeSet
    /// Whether a `scope` parameter was present at all (absent means the IdP applies its defaults).
    public let hasScopeParameter: Bool
    /// The `redirect_uri`, when given.
    public let redirectURI: String?
    /// The `state`, exactly as sent.
    public let state: String?
    /// The `response_mode` the client asked for, when given.
    public let responseMode: ResponseMode?
    /// The `response_type`.
    public let responseType: String

    /// Parses a request from its raw query string and, for `POST`, its raw form body.
    public init(method: Method, query: Substring, body: Substring? = nil) throws(GateError) {
        var parameters = try FormParameters(parsing: query)
        if let body {
            parameters = try parameters.merging(try FormParameters(parsing: body))
        }
        try self.init(method: method, parameters: parameters)
    }

    /// Validates already-parsed parameters.
    public init(method: Method, parameters: FormParameters) throws(GateError) {
        guard let clientID = parameters["client_id"], !clientID.isEmpty else {
            throw GateError(.invalidRequest, "the request has no client_id")
        }
        guard let responseType = parameters["response_type"], !responseType.isEmpty else {
            throw GateError(.invalidRequest, "the request has no response_type")
        }
        for name in parameters.names where name.utf8.contains(where: { $0 < 0x21 || $0 > 0x7E }) {
            _ = name
            throw GateError(.invalidRequest, "a parameter name has a control, space or non-ASCII character")
        }
        // Only the authorization code flow: other response types hand tokens to the browser, past the
        // token endpoint where every issued token is checked.
        guard responseType == "code" else {
            throw GateError(.unsupportedResponseType, "ScopeGate admits only response_type=code")
        }
        // Permissions ScopeGate cannot see yet are refused, never passed on unchecked.
        if parameters.contains("request") {
            throw GateError(.requestNotSupported, "request objects are not accepted through ScopeGate")
        }
        if parameters.contains("request_uri") {
            throw GateError(.requestURINotSupported, "request_uri is not accepted through ScopeGate")
        }
        if parameters.contains("authorization_details") {
            throw GateError(.invalidRequest, "authorization_details (RFC 9396) is not accepted through ScopeGate")
        }
        self.method = method
        self.parameters = parameters
        self.clientID = clientID
        self.responseType = responseType
        if let scope = parameters["scope"] {
            self.scopes = try ScopeSet(parsing: scope)
            self.hasScopeParameter = true
        } else {
            self.scopes = ScopeSet([String]())
            self.hasScopeParameter = false
        }
        self.redirectURI = parameters["redirect_uri"]
        self.state = parameters["state"]
        if let mode = parameters["response_mode"] {
            guard let parsed = ResponseMode(rawValue: mode) else {
                throw GateError(.invalidRequest, "the response_mode is not one of query, fragment, form_post")
            }
            self.responseMode = parsed
        } else {
            self.responseMode = nil
        }
    }
}

/// How an authorization response is returned to the client (OAuth 2.0 Multiple Response Types, Form Post).
public enum ResponseMode: String, Sendable, Codable, Equatable {
    /// Parameters in the redirect URI's query.
    case query
    /// Parameters in the redirect URI's fragment.
    case fragment
    /// Parameters in an auto-submitted HTML form posted to the redirect URI.
    case formPost = "form_post"
}
