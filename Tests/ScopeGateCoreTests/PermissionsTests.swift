import Foundation
import Testing

@testable import ScopeGateCore

/// Permissions beyond `scope`, request objects, and the strict JSON they are read with.
@Suite struct PermissionsTests {
    let base = "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=xyz"

    func jwt(_ payload: String, header: String = #"{"alg":"none"}"#, signature: String = "") -> String {
        Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8)) + "." + signature
    }

    func parse(_ query: String) throws -> AuthorizationRequest {
        try AuthorizationRequest(method: .get, query: Substring(query))
    }

    @Test func everyKindIsNamedAndGatedWithTheScopes() throws {
        let details = FormParameters.encode(#"[{"type":"payment_initiation","instructedAmount":{"amount":"1"}},{"type":"account_information"}]"#)
        let claims = FormParameters.encode(#"{"userinfo":{"email":null},"id_token":{"acr":{"essential":true}}}"#)
        let request = try parse(
            base + "&scope=openid&resource=https%3A%2F%2Fapi.example%2F&resource=urn%3Abilling&audience=payroll"
                + "&authorization_details=\(details)&claims=\(claims)")
        #expect(
            request.otherPermissions.tokens == [
                "@audience:payroll", "@authorization_details:account_information", "@authorization_details:payment_initiation",
                "@claim:acr", "@claim:email", "@resource:https://api.example/", "@resource:urn:billing",
            ])
        let policy = Policy(rules: [], clients: [], tiers: [], defaultTier: "low", approvalTimeout: .seconds(60))
        #expect(try policy.effectiveScopes(of: request).tokens.count == 8)
        // Both resource values are forwarded.
        #expect(request.parameters.encoded.contains("resource=https%3A%2F%2Fapi.example%2F&resource=urn%3Abilling"))
    }

    @Test(arguments: KnownParameter.allCases.filter(\.carriesPermissions).map(\.name))
    func eachPermissionParameterAloneIsGated(name: String) throws {
        let values = [
            "resource": "https://api.example/", "audience": "payroll", "authorization_details": #"[{"type":"payment_initiation"}]"#,
            "claims": #"{"userinfo":{"email":null}}"#,
        ]
        let value = try #require(values[name], "a value for every permission parameter")
        let request = try parse(base + "&scope=openid&\(name)=\(FormParameters.encode(value))")
        #expect(request.otherPermissions.tokens.count == 1)
    }

    @Test func aRequestWithoutScopeStandsForTheDefaultsAndItsOtherPermissions() throws {
        let request = try parse(base + "&resource=https%3A%2F%2Fapi.example%2F")
        var policy = Policy(rules: [], clients: [], tiers: [], defaultTier: "low", approvalTimeout: .seconds(60))
        #expect(throws: GateError.self) { try policy.effectiveScopes(of: request) }
        policy.clients["app"] = .init(id: "app", name: "App", redirectURIs: [], rules: [], defaultScopes: ScopeSet(["openid"]))
        #expect(try policy.effectiveScopes(of: request).tokens == ["@resource:https://api.example/", "openid"])
    }

    @Test func rulesMatchOnlyTheirKind() {
        let policy = Policy(
            rules: [
                .init(pattern: GlobPattern("*"), auto: .approve, tier: "low", origin: "scopes[0]"),
                .init(pattern: GlobPattern("@resource:https://public.example/*"), kind: .resource, auto: .approve, tier: "low", origin: "scopes[1]"),
            ], clients: [], tiers: [], defaultTier: "high", approvalTimeout: .seconds(60))
        #expect(policy.rule(for: "orders:read", clientID: "app").origin == "scopes[0]")
        #expect(policy.rule(for: "@resource:https://public.example/x", clientID: "app").origin == "scopes[1]")
        // A scope's catch-all does not approve resources, audiences or claims.
        #expect(policy.rule(for: "@resource:https://payroll.example/", clientID: "app").origin == "default")
        #expect(policy.rule(for: "@claim:salary", clientID: "app").auto == .ask)
    }

    @Test func aScopeCannotPoseAsAnotherKind() {
        #expect(throws: GateError.self) { try ScopeSet(parsing: "openid @resource:https://api.example/") }
        #expect(throws: GateError.self) { try ScopeSet(parsing: "@claim:email") }
        #expect(try! ScopeSet(parsing: "@team openid").tokens == ["@team", "openid"], "other @ scopes are ordinary")
    }

    @Test func theRequestObjectsPermissionsJoinTheOuterOnes() throws {
        let object = jwt(
            #"{"iss":"app","aud":"https://idp.example","client_id":"app","response_type":"code","scope":"openid orders:read","resource":["https://api.example/"],"max_age":300}"#)
        let request = try parse(base + "&scope=openid%20profile&request=\(object)")
        #expect(request.scopes.tokens == ["openid", "orders:read", "profile"])
        #expect(request.otherPermissions.tokens == ["@resource:https://api.example/"])
        #expect(request.parameters["request"] == object, "the request object is forwarded untouched")
        // Inside only: the request object alone names the client and response type.
        let inner = try parse("client_id=app&request=" + jwt(#"{"client_id":"app","response_type":"code","scope":"openid","state":"s1"}"#))
        #expect(inner.state == "s1")
        #expect(inner.scopes.tokens == ["openid"])
    }

    @Test(arguments: [
        ("outer and inner disagree", #"{"client_id":"app","state":"other"}"#, #"{"alg":"none"}"#, "", GateError.Code.invalidRequest),
        ("nested by cty", #"{"client_id":"app"}"#, #"{"alg":"none","cty":"JWT"}"#, "", .requestNotSupported),
        ("nested by claim", #"{"client_id":"app","request_uri":"https://x"}"#, #"{"alg":"none"}"#, "", .requestNotSupported),
        ("encrypted header", #"{"client_id":"app"}"#, #"{"alg":"RSA-OAEP","enc":"A128GCM"}"#, "c2ln", .requestNotSupported),
        ("signed without a signature", #"{"client_id":"app"}"#, #"{"alg":"RS256"}"#, "", .invalidRequestObject),
        ("unsigned with a signature", #"{"client_id":"app"}"#, #"{"alg":"none"}"#, "c2ln", .invalidRequestObject),
        ("no alg", #"{"client_id":"app"}"#, #"{"typ":"JWT"}"#, "", .invalidRequestObject),
        ("payload not an object", #"["scope"]"#, #"{"alg":"none"}"#, "", .invalidRequestObject),
        ("a member twice", #"{"scope":"openid","scope":"admin"}"#, #"{"alg":"none"}"#, "", .invalidRequestObject),
        ("the same member, escaped", #"{"scope":"openid","\u0073cope":"admin"}"#, #"{"alg":"none"}"#, "", .invalidRequestObject),
        ("an object where a string belongs", #"{"nonce":{"a":1}}"#, #"{"alg":"none"}"#, "", .invalidRequestObject),
        ("a resource that is not a URI", #"{"resource":"api"}"#, #"{"alg":"none"}"#, "", .invalidTarget),
        ("a number for a resource", #"{"resource":[1]}"#, #"{"alg":"none"}"#, "", .invalidRequestObject),
    ])
    func refusesRequestObjectsItCannotReadSafely(
        _ name: String, _ payload: String, _ header: String, _ signature: String, _ code: GateError.Code
    ) {
        #expect("\(name)") {
            _ = try parse(base + "&scope=openid&request=" + jwt(payload, header: header, signature: signature))
        } throws: { ($0 as? GateError)?.code == code }
    }

    @Test func strictJSONRefusesWhatParsersReadDifferently() {
        #expect(StrictJSON.parse(Array(#"{"a":[1,2.5e3,-0,true,null,"x\n\u00e9\ud83d\ude00"]}"#.utf8)) != nil)
        #expect(StrictJSON.parse(Array(#"{"a":"\ud83d\ude00"}"#.utf8))?["a"]?.stringValue == "😀")
        for bad in [
            #"{"a":1,"a":2}"#, #"{"a":1,"\u0061":2}"#, #"{"a":1,}"#, #"[1,]"#, #"{'a':1}"#, #"{"a":01}"#, #"{"a":1} x"#,
            #"{"a":"\ud83d"}"#, "{\"a\":\"tab\there\"}", #"{"a":NaN}"#, #"{"a":.5}"#, "",
        ] {
            #expect(StrictJSON.parse(Array(bad.utf8)) == nil, "\(bad)")
        }
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(StrictJSON.parse(Array(deep.utf8)) == nil, "nesting is bounded")
    }
}

/// Re-serialization reuses the client's text only when encoding again would give the same bytes.
@Suite struct FormEncodingTests {
    @Test(arguments: [
        "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid%20orders%3Aread",
        "scope=openid+profile", "redirect_uri=https%3a%2f%2fapp.example", "redirect_uri=https://app.example/cb",
        "flag&scope=openid", "state=%41bc", "nonce=a%2Bb%20c", "a=", "x=%E2%9C%93", "x=%e2%9c%93",
    ])
    func encodedIsWhatEncodingThePairsGives(_ query: String) throws {
        let parsed = try FormParameters(parsing: Substring(query))
        let rebuilt = try FormParameters(parsed.pairs)
        #expect(parsed.encoded == rebuilt.encoded)
    }
}
