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
    /// The requested scopes, from the `scope` parameter and the request object's `scope`; empty when
    /// neither is present.
    public let scopes: ScopeSet
    /// Whether a `scope` parameter was present at all (absent means the IdP applies its defaults).
    public let hasScopeParameter: Bool
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
        var parameters = try FormParameters(parsing: query)
        if let body {
            parameters = try parameters.merging(try FormParameters(parsing: body))
        }
        try self.init(method: method, parameters: parameters)
    }

    /// Validates already-parsed parameters, and the request object among them.
    public init(method: Method, parameters: FormParameters) throws(GateError) {
        guard parameters.namesArePrintable else {
            throw GateError(.invalidRequest, "a parameter name has a control, space or non-ASCII character")
        }
        // One pass over the parameters for everything the gate reads (names are unique, but for the
        // repeatable permission parameters).
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
        self.clientID = clientID
        self.responseType = responseType
        // Permissions are the union of the outer parameters and the request object.
        var scopes = try outer.scope.map { (text) throws(GateError) in try ScopeSet(parsing: text) } ?? ScopeSet([String]())
        if let inner = object?.scope { scopes = scopes.union(try ScopeSet(parsing: inner)) }
        self.scopes = scopes
        self.hasScopeParameter = outer.scope != nil || object?.scope != nil
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

    /// The parameters the gate reads, picked out of the request in one pass.
    private struct Fields {
        var clientID: String?
        var responseType: String?
        var scope: String?
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
            case .scope?: scope = pair.value
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
