import Testing

@testable import ScopeGateCore

/// What is ambiguous and what is not, when a parameter comes more than once (in one part, or in the
/// query and the body): the same value repeated is one request; permission parameters are read as the
/// union of their values, which contains whatever an IdP reads (first, last, or all); every other
/// parameter with two values is refused.
@Suite struct RepeatedParameterTests {
    let base = "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=xyz"

    /// The scopes an IdP acts on, for each way IdP frameworks read a repeated `scope`: the first value
    /// (PHP's `$_GET` reads the last, Django's `QueryDict.get` the last, Express `qs` all, Spring all,
    /// oauthlib's `dict()` the last, Keycloak the first).
    func readings(_ values: [String]) -> [Set<String>] {
        let split = { (value: String) in Set(value.split(separator: " ").map(String.init)) }
        return [split(values.first!), split(values.last!), values.reduce(into: Set<String>()) { $0.formUnion(split($1)) }]
    }

    @Test(arguments: [
        ["openid", "admin:org"],
        ["admin:org", "openid"],
        ["openid orders:read", "openid", "billing:write"],
        ["a", "a b", "c"],
    ])
    func aRepeatedScopeIsGatedOnTheUnionOfEveryReading(_ values: [String]) throws {
        let query = base + values.map { "&scope=" + FormParameters.encode($0) }.joined()
        let request = try AuthorizationRequest(method: .get, query: Substring(query))
        let gated = Set(request.scopes.tokens)
        for reading in readings(values) {
            #expect(reading.isSubset(of: gated), "an IdP reading \(reading) acts beyond what was gated")
        }
        #expect(!request.scopeMayBeOmitted)
    }

    @Test func aScopeSentEmptyAsWellMayBeOmittedSoDefaultsAreGatedToo() throws {
        let request = try AuthorizationRequest(method: .get, query: Substring(base + "&scope=openid&scope="))
        #expect(request.scopeMayBeOmitted)
        func policy(defaults: ScopeSet?) -> Policy {
            Policy(
                rules: [], clients: [.init(id: "app", name: "App", redirectURIs: [], defaultScopes: defaults)], tiers: [],
                defaultTier: "low", approvalTimeout: .seconds(60))
        }
        #expect(try policy(defaults: ScopeSet(["profile"])).effectiveScopes(of: request).tokens == ["openid", "profile"])
        #expect(throws: GateError.self) { try policy(defaults: nil).effectiveScopes(of: request) }
    }

    @Test func permissionParametersAreReadAsTheUnionOfTheirValues() throws {
        let query = base + "&scope=openid"
            + "&claims=" + FormParameters.encode(#"{"userinfo":{"email":null}}"#)
            + "&claims=" + FormParameters.encode(#"{"id_token":{"phone_number":null}}"#)
            + "&authorization_details=" + FormParameters.encode(#"[{"type":"a"}]"#)
            + "&authorization_details=" + FormParameters.encode(#"[{"type":"b"}]"#)
            + "&resource=https%3A%2F%2Fone.example%2F&resource=https%3A%2F%2Ftwo.example%2F"
        let request = try AuthorizationRequest(method: .get, query: Substring(query))
        #expect(
            Set(request.otherPermissions.tokens) == [
                "@claim:email", "@claim:phone_number", "@authorization_details:a", "@authorization_details:b",
                "@resource:https://one.example/", "@resource:https://two.example/",
            ])
    }

    @Test func emptyPermissionFieldsCarryNothingAndSpacedResourcesAreEachGated() throws {
        // django-oauth-toolkit's consent form: empty hidden fields, several resources in one.
        let body = base + "&scope=openid&nonce=&claims=&resource=https%3A%2F%2Fone.example%2F+https%3A%2F%2Ftwo.example%2F"
        let request = try AuthorizationRequest(method: .post, query: "", body: Substring(body))
        #expect(request.otherPermissions.tokens == ["@resource:https://one.example/", "@resource:https://two.example/"])
        let empty = try AuthorizationRequest(method: .post, query: "", body: Substring(base + "&scope=openid&claims=&resource=&authorization_details="))
        #expect(empty.otherPermissions.isEmpty)
    }

    @Test func theSameValueRepeatedIsOneRequestKeptAsSent() throws {
        let query = base + "&scope=openid&client_id=app&state=xyz&nonce=n&nonce=n"
        let request = try AuthorizationRequest(method: .get, query: Substring(query))
        #expect(request.clientID == "app")
        #expect(request.parameters.encoded == query, "forwarded with its repeats, as sent")
    }

    @Test func queryAndBodyAreKeptApartForForwardingAndReadTogetherForGating() throws {
        let query = base + "&scope=openid"
        let body = "csrfmiddlewaretoken=t&client_id=app&state=xyz&scope=openid+orders%3Aread&allow=Authorize"
        let request = try AuthorizationRequest(method: .post, query: Substring(query), body: Substring(body))
        #expect(request.query.encoded == query)
        #expect(request.body?.encoded == body.replacingOccurrences(of: "+", with: "%20"))
        #expect(request.scopes.tokens == ["openid", "orders:read"])
    }

    @Test(arguments: [
        ("client_id", "other"), ("redirect_uri", "https%3A%2F%2Fevil.example%2Fcb"), ("response_type", "token"),
        ("state", "abc"), ("nonce", "n2"), ("code_challenge", "c2"), ("response_mode", "form_post"), ("request", "a.b.c"),
        ("prompt", "none"), ("x-custom", "2"),
    ])
    func anyOtherParameterWithTwoValuesIsRefused(_ name: String, _ value: String) {
        let first = name == "client_id" || name == "redirect_uri" || name == "response_type" || name == "state" ? "" : "&\(name)=1"
        #expect {
            try AuthorizationRequest(method: .get, query: Substring(base + "&scope=openid" + first + "&\(name)=\(value)"))
        } throws: { ($0 as? GateError)?.code == .invalidRequest }
        #expect {
            try AuthorizationRequest(method: .post, query: Substring(base + "&scope=openid" + first), body: Substring("\(name)=\(value)"))
        } throws: { ($0 as? GateError)?.code == .invalidRequest }
    }

    @Test func aConsentStepIsTheSameAuthorizationOnlyWithTheSameIdentifyingValues() throws {
        let held = try AuthorizationRequest(method: .get, query: Substring(base + "&scope=openid&code_challenge=c&code_challenge_method=S256"))
        let consent = try AuthorizationRequest(
            method: .post, query: Substring(base + "&scope=openid&code_challenge=c&code_challenge_method=S256"),
            body: Substring("client_id=app&state=xyz&nonce=&code_challenge=c&scope=openid&allow=Authorize"))
        #expect(held.isSameAuthorization(as: consent), "an empty nonce is one not sent")
        let otherState = try AuthorizationRequest(method: .get, query: Substring(base.replacingOccurrences(of: "xyz", with: "abc") + "&scope=openid&code_challenge=c&code_challenge_method=S256"))
        #expect(!held.isSameAuthorization(as: otherState))
        let otherChallenge = try AuthorizationRequest(method: .get, query: Substring(base + "&scope=openid&code_challenge=d&code_challenge_method=S256"))
        #expect(!held.isSameAuthorization(as: otherChallenge))
    }
}
