/// An OAuth 2.0 / OpenID Connect authorization request, parsed once and strictly.
///
/// The parameters are the union of the query and, for `POST`, the form body (OIDC Core §3.1.2.1). A
/// parameter present in both, or twice in one, with the same value is the same request whichever copy
/// an IdP reads; with different values it is refused rather than guessed at, but for the permission
/// parameters, which are gated on the union of their values (`KnownParameter.isReadAsUnion`). The gate
/// evaluates `scopes` and `otherPermissions`; an approved request is forwarded re-serialized from what
/// was parsed (the query as the query and the body as the body), so the IdP receives exactly what was
/// evaluated.
public struct AuthorizationRequest: Sendable, Equatable {
    /// How the request arrived.
    public enum Method: String, Sendable, Codable { case get = "GET", post = "POST" }

    /// The HTTP method the browser used.
    public let method: Method
    /// Every parameter, query first, then body.
    public let parameters: FormParameters
    /// The query's parameters (for a request rebuilt from `parameters` alone: all of them for `GET`,
    /// none for `POST`).
    public let query: FormParameters
    /// The form body's parameters, for `POST`.
    public let body: FormParameters?
    /// The `client_id`.
    public let clientID: String
    /// The requested scopes: the union of every `scope` value and the request object's `scope`;
    /// empty when none is present.
    public let scopes: ScopeSet
    /// Whether some reading of the request names no scope (no `scope` at all, or one sent empty), so
    /// that the IdP may apply the client's defaults.
    public let scopeMayBeOmitted: Bool
    /// The permissions beyond scope (`@resource:…`, `@audience:…`, `@authorization_details:…`,
    /// `@claim:…`; see `PermissionKind`), from the parameters and the request object.
    public let otherPermissions: ScopeSet
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
        let queryParameters = try FormParameters(parsing: query)
        let bodyParameters = try body.map { (text) throws(GateError) in try FormParameters(parsing: text) }
        let parameters = try bodyParameters.map { (body) throws(GateError) in try queryParameters.merging(body) } ?? queryParameters
        try self.init(method: method, parameters: parameters, query: queryParameters, body: bodyParameters)
    }

    /// Validates already-parsed parameters, and the request object among them: for `GET` they are the
    /// query, for `POST` the body.
    public init(method: Method, parameters: FormParameters) throws(GateError) {
        switch method {
        case .get: try self.init(method: method, parameters: parameters, query: parameters, body: nil)
        case .post: try self.init(method: method, parameters: parameters, query: try FormParameters([Pair]()), body: parameters)
        }
    }

    private typealias Pair = FormParameters.Pair

    private init(method: Method, parameters: FormParameters, query: FormParameters, body: FormParameters?) throws(GateError) {
        // One pass over the parameters for everything the gate reads (a repeated name has one value,
        // but for the permission parameters, whose values are all kept).
        var outer = Fields()
        for pair in parameters.pairs { outer.read(pair) }
        if outer.hasRequestURI {
            if outer.request != nil {
                throw GateError(.invalidRequest, "request and request_uri cannot be used together")
            }
            throw GateError(.requestURINotSupported, "request_uri is accepted only alone with client_id, for a request pushed through ScopeGate")
        }
        let object = try outer.request.map { (text) throws(GateError) in try RequestObject(compact: text) }
        // A parameter both outside and inside the request object must agree: OIDC Core reads the two
        // merged, RFC 9101 reads the object alone, and the gate must not depend on which the IdP does.
        if let object {
            for (name, inner) in object.parameters {
                if let outer = parameters[name], outer != inner {
                    throw GateError(
                        .invalidRequest, "the request object and the request disagree on \(FormParameters.printable(name))")
                }
            }
        }
        func value(_ outer: String?, _ name: String) -> String? { outer ?? object?.parameters[name] }

        guard let clientID = value(outer.clientID, "client_id"), !clientID.isEmpty else {
            throw GateError(.invalidRequest, "the request has no client_id")
        }
        guard ClientID.isValid(clientID) else {
            throw GateError(.invalidRequest, "a client_id must be printable ASCII (RFC 6749, appendix A.1)")
        }
        guard let responseType = value(outer.responseType, "response_type"), !responseType.isEmpty else {
            throw GateError(.invalidRequest, "the request has no response_type")
        }
        // Only the authorization code flow: other response types hand tokens to the browser, past the
        // token endpoint where every issued token is checked.
        guard responseType == "code" else {
            throw GateError(.unsupportedResponseType, "ScopeGate admits only response_type=code")
        }
        self.method = method
        self.parameters = parameters
        self.query = query
        self.body = body
        self.clientID = clientID
        self.responseType = responseType
        // Permissions are the union of the outer parameters (every value) and the request object.
        let requested = try RequestedScope(values: outer.scopes + (object?.scope.map { [$0] } ?? []))
        let scopes = requested.tokens
        self.scopes = scopes
        // An IdP that reads the request object alone (RFC 9101 §5) finds no scope in one without it, and
        // applies the client's defaults, whatever the outer `scope` says.
        self.scopeMayBeOmitted = requested.mayBeOmitted || (object != nil && (object?.scope ?? "").isEmpty)
        var others = outer.carriesPermissions ? try Permissions.names(in: parameters) : []
        others += object?.permissions ?? []
        let otherPermissions = ScopeSet(others)
        guard scopes.tokens.count + otherPermissions.tokens.count <= ScopeSet.maximumCount else {
            throw GateError(.invalidScope, "the request carries more than \(ScopeSet.maximumCount) permissions")
        }
        self.otherPermissions = otherPermissions
        self.redirectURI = value(outer.redirectURI, "redirect_uri")
        self.state = value(outer.state, "state")
        if let mode = value(outer.responseMode, "response_mode") {
            guard let parsed = ResponseMode(rawValue: mode) else {
                throw GateError(.invalidRequest, "the response_mode is not one of query, fragment, form_post")
            }
            self.responseMode = parsed
        } else {
            self.responseMode = nil
        }
    }

    /// The parameters that tell one authorization from another; an IdP's consent form carries them back
    /// as they were sent.
    static let identifying: [KnownParameter] = [
        .clientID, .redirectURI, .responseType, .responseMode, .state, .nonce, .codeChallenge, .codeChallengeMethod,
        .request,
    ]

    /// Whether `other` is a step of the same authorization: every identifying parameter has the same
    /// value in both (one sent empty counting as one not sent, RFC 6749 §3.1).
    public func isSameAuthorization(as other: AuthorizationRequest) -> Bool {
        Self.identifying.allSatisfy { known in
            (parameters[known.name] ?? "") == (other.parameters[known.name] ?? "")
        }
    }

    /// The parameters the gate reads, picked out of the request in one pass.
    private struct Fields {
        var clientID: String?
        var responseType: String?
        var scopes: [String] = []
        var redirectURI: String?
        var state: String?
        var responseMode: String?
        var request: String?
        var hasRequestURI = false
        /// Whether any parameter carrying permissions beyond `scope` is present.
        var carriesPermissions = false

        mutating func read(_ pair: FormParameters.Pair) {
            // By the name's known identity: a name that is none of these is never compared.
            switch pair.known {
            case .clientID?: clientID = pair.value
            case .scope?: scopes.append(pair.value)
            case .responseType?: responseType = pair.value
            case .redirectURI?: redirectURI = pair.value
            case .state?: state = pair.value
            case .responseMode?: responseMode = pair.value
            case .request?: request = pair.value
            case .requestURI?: hasRequestURI = true
            case let known? where known.carriesPermissions: carriesPermissions = true
            default: break
            }
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
