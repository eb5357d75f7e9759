import Testing

@testable import ScopeGateCore

@Suite struct AuthorizationRequestTests {
    let base = "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=xyz"

    @Test func parsesAWellFormedRequest() throws {
        let request = try AuthorizationRequest(method: .get, query: Substring(base + "&scope=openid%20orders%3Aread"))
        #expect(request.clientID == "app")
        #expect(request.scopes.tokens == ["openid", "orders:read"])
        #expect(request.redirectURI == "https://app.example/cb")
        #expect(request.state == "xyz")
    }

    @Test func plusIsASpaceInForms() throws {
        let request = try AuthorizationRequest(method: .get, query: Substring(base + "&scope=openid+profile"))
        #expect(request.scopes.tokens == ["openid", "profile"])
    }

    @Test(arguments: [
        ("repeated client_id", "&client_id=other"),
        ("repeated state", "&state=other"),
        ("repeated unknown parameter", "&x=1&x=2"),
        ("malformed percent-encoding", "&scope=openid%2"),
        ("non-hex percent-encoding", "&scope=openid%zz"),
        ("invalid UTF-8", "&scope=%C3%28"),
        ("empty pair", "&&scope=openid"),
        ("nameless parameter", "&=openid"),
        ("unencoded non-ASCII", "&scope=openidé"),
        ("a name with an encoded space", "&sco%20pe=openid"),
        ("a name with a plus", "&x+y=1"),
        ("a name with an encoded NUL", "&x%00=1"),
    ])
    func refusesAmbiguousOrMalformedQueries(_ name: String, _ suffix: String) {
        #expect(throws: GateError.self, "\(name)") {
            try AuthorizationRequest(method: .get, query: Substring(base + suffix))
        }
    }

    @Test(arguments: [
        "openid%20%20admin",  // doubled space
        "%20openid",  // leading space
        "openid%20",  // trailing space
        "openid%09admin",  // tab
        "openid%0Aadmin",  // newline
        "open%22id",  // DQUOTE is outside the scope-token grammar
        "open%5Cid",  // backslash
        "open%C3%A9id",  // non-ASCII
    ])
    func refusesScopeTokensOutsideRFC6749(_ scope: String) {
        #expect {
            try AuthorizationRequest(method: .get, query: Substring(base + "&scope=" + scope))
        } throws: { ($0 as? GateError)?.code == .invalidScope }
    }

    @Test func refusesAnIdentifyingParameterInQueryAndBodyWithDifferentValues() {
        #expect {
            try AuthorizationRequest(method: .post, query: "client_id=other", body: Substring(base + "&scope=openid"))
        } throws: { ($0 as? GateError)?.code == .invalidRequest }
        #expect {
            try AuthorizationRequest(method: .post, query: "state=1", body: Substring(base + "&scope=openid&state=2"))
        } throws: { ($0 as? GateError)?.code == .invalidRequest }
    }

    @Test func refusesAnEncodedControlInABodyName() {
        #expect {
            try AuthorizationRequest(method: .post, query: "", body: Substring(base + "&x%0D=1"))
        } throws: { ($0 as? GateError)?.code == .invalidRequest }
    }

    @Test func mergesQueryAndBodyWhenDistinct() throws {
        let request = try AuthorizationRequest(method: .post, query: "scope=openid", body: Substring(base))
        #expect(request.scopes.tokens == ["openid"])
        #expect(request.clientID == "app")
    }

    @Test func requiresClientAndResponseType() {
        #expect(throws: GateError.self) { try AuthorizationRequest(method: .get, query: "response_type=code&scope=openid") }
        #expect(throws: GateError.self) { try AuthorizationRequest(method: .get, query: "client_id=a&scope=openid") }
    }

    @Test(arguments: [
        ("response_type=token&client_id=app", GateError.Code.unsupportedResponseType),
        ("response_type=code+id_token&client_id=app", .unsupportedResponseType),
        ("response_type=code&client_id=app&request=a.b.c", .invalidRequestObject),
        ("response_type=code&client_id=app&request=a.b.c.d.e", .requestNotSupported),
        ("response_type=code&client_id=app&request_uri=urn%3Ax", .requestURINotSupported),
        ("response_type=code&client_id=app&request_uri=urn%3Ax&request=a.b.c", .invalidRequest),
        ("response_type=code&client_id=app&authorization_details=%5B%5D", .invalidAuthorizationDetails),
        ("response_type=code&client_id=app&resource=api", .invalidTarget),
    ])
    func refusesWhatCarriesPermissionsPastTheGate(query: String, code: GateError.Code) {
        #expect {
            _ = try AuthorizationRequest(method: .get, query: Substring(query))
        } throws: { error in
            (error as? GateError)?.code == code
        }
    }

    @Test func refusesAnUnknownResponseMode() {
        #expect(throws: GateError.self) {
            try AuthorizationRequest(method: .get, query: Substring(base + "&scope=openid&response_mode=web_message"))
        }
    }

    @Test func reserializesExactlyWhatWasParsed() throws {
        let request = try AuthorizationRequest(
            method: .get, query: Substring(base + "&scope=openid+orders%3Aread&nonce=a%2Bb%20c"))
        let again = try AuthorizationRequest(method: .get, query: Substring(request.parameters.encoded))
        #expect(again == request)
        #expect(request.parameters.encoded.contains("nonce=a%2Bb%20c"))
        #expect(!request.parameters.encoded.contains("+"))
    }
}
