import Foundation
import ScopeGateCore
import Testing

@testable import ScopeGateServer

/// The adversarial suite: requests built to carry a permission past the gate. For every case the oracle
/// is the IdP itself — the recording upstream must have received nothing — and the client must see the
/// answer `proxy-config/README.md` documents for it.
///
/// The IdP here advertises every door OAuth has: authorization, token, PAR, device authorization,
/// dynamic registration, CIBA, and an mTLS alias of the token endpoint at another path.
@Suite(.serialized) struct AdversarialTests {
    /// One hostile request and what the client must see.
    struct Attack: Sendable, CustomTestStringConvertible {
        var area: String
        var name: String
        /// The raw request; `HOST` is replaced by ScopeGate's address.
        var raw: String
        var status: Int
        /// Text the answer (head and body) must contain.
        var expect: String
        /// Text the answer must not contain.
        var absent: String? = nil

        var testDescription: String { "\(area): \(name)" }
    }

    static let discoveryExtra = """
        ,"pushed_authorization_request_endpoint":"ISSUER/o/par/","device_authorization_endpoint":"ISSUER/o/device/",\
        "registration_endpoint":"ISSUER/o/register/","backchannel_authentication_endpoint":"ISSUER/o/bc-authorize/",\
        "revocation_endpoint":"ISSUER/o/revoke_token/"
        """
    // MARK: Request builders

    static func get(_ target: String, _ headers: [String] = []) -> String {
        (["GET \(target) HTTP/1.1", "Host: HOST"] + headers + ["Connection: close"]).joined(separator: "\r\n") + "\r\n\r\n"
    }

    static func request(_ method: String, _ target: String, _ headers: [String] = [], body: String = "") -> String {
        (["\(method) \(target) HTTP/1.1", "Host: HOST", "Content-Length: \(body.utf8.count)"] + headers + ["Connection: close"])
            .joined(separator: "\r\n") + "\r\n\r\n" + body
    }

    static func form(_ path: String, _ body: String, _ headers: [String] = [basic]) -> String {
        request("POST", path, ["Content-Type: application/x-www-form-urlencoded"] + headers, body: body)
    }

    static let basic = "Authorization: Basic " + Data("app:s3cret".utf8).base64EncodedString()
    static let authorize = "/o/authorize/"
    static let base = "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=xyz"

    static func authorize(_ extra: String) -> String { get(authorize + "?" + base + extra) }

    /// A compact JWS from header and payload JSON text.
    static func jwt(_ header: String, _ payload: String, signature: String = "") -> String {
        Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8)) + "." + signature
    }

    static func requestObject(_ payload: String, header: String = #"{"alg":"none"}"#, signature: String = "") -> String {
        FormParameters.encode(jwt(header, payload, signature: signature))
    }

    static let inner = #""response_type":"code","client_id":"app","redirect_uri":"https://app.example/cb","state":"xyz""#

    // MARK: The cases

    static let attacks: [Attack] = {
        var all: [Attack] = []
        func add(_ area: String, _ name: String, _ raw: String, _ status: Int, _ expect: String, absent: String? = nil) {
            all.append(Attack(area: area, name: name, raw: raw, status: status, expect: expect, absent: absent))
        }
        // Parameter pollution and encoding at the authorization endpoint.
        for charset in ["utf-7", "UTF-16", "iso-8859-1"] {
            add(
                "encoding", "an authorization POST declaring charset=\(charset)",
                request(
                    "POST", authorize, ["Content-Type: application/x-www-form-urlencoded; charset=\(charset)"],
                    body: base + "&scope=openid"), 400, "UTF-8")
        }
        // A repeated permission parameter is gated on the union of its values: the IdP reads one or all.
        add("pollution", "scope twice, a denied one last", authorize("&scope=openid&scope=admin%3Aorg"), 303, "error=access_denied")
        add("pollution", "scope twice, a denied one first", authorize("&scope=admin%3Aorg&scope=openid"), 303, "error=access_denied")
        add("pollution", "scope twice, an unapproved one last", authorize("&scope=openid&scope=orders%3Aread"), 303, "/_scopegate/holds/")
        add("pollution", "scope twice, the second empty (omitted) without defaults", authorize("&scope=openid&scope="), 303, "invalid_scope")
        add("pollution", "client_id twice", authorize("&client_id=other&scope=openid"), 400, "repeated with different values")
        add("pollution", "response_type twice, different", authorize("&response_type=token&scope=openid"), 400, "repeated with different values")
        add("pollution", "redirect_uri twice", authorize("&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&scope=openid"), 400, "repeated with different values")
        add("pollution", "state twice", authorize("&state=other&scope=openid"), 400, "repeated with different values")
        add("pollution", "code_challenge twice", authorize("&code_challenge=a&code_challenge=b&scope=openid"), 400, "repeated with different values")
        add("pollution", "an unknown name twice with different values", authorize("&x=1&x=2&scope=openid"), 400, "repeated with different values")
        add(
            "pollution", "scope in query and body",
            request(
                "POST", authorize + "?" + base + "&scope=openid", ["Content-Type: application/x-www-form-urlencoded"],
                body: "scope=admin%3Aorg"), 303, "error=access_denied")
        add(
            "pollution", "client_id in query and body, different",
            request(
                "POST", authorize + "?" + base + "&scope=openid", ["Content-Type: application/x-www-form-urlencoded"],
                body: "client_id=other"), 400, "in the query and the body")
        add(
            "pollution", "claims in query and body, the body's unapproved",
            request(
                "POST", authorize + "?" + base + "&scope=openid&claims=%7B%7D", ["Content-Type: application/x-www-form-urlencoded"],
                body: "claims=%7B%22userinfo%22%3A%7B%22email%22%3Anull%7D%7D"), 303, "/_scopegate/holds/")
        add("pollution", "percent-encoded parameter name repeats scope", authorize("&scope=openid&%73cope=orders%3Aread"), 303, "/_scopegate/holds/")
        // Names an IdP framework folds onto a known one (ASP.NET: case; PHP: leading space, NUL, '.', '[]';
        // Express qs: '[]', '[0]'): refused wherever ScopeGate reads a form.
        // (A decoded name with a space or NUL is refused as unprintable before it is folded.)
        for name in [
            "Scope", "REQUEST", "Claims", "Resource", "Authorization_Details", "%20scope", "scope%00x", "scope%5B%5D",
            "scope[0]", "client.id", "redirect%20uri",
        ] {
            add("pollution", "authorization endpoint: \(name)", authorize("&scope=openid&\(name)=admin%3Aorg"), 400, "parameter name")
            add(
                "token", "token endpoint: \(name)", form("/o/token/", "grant_type=client_credentials&scope=openid&\(name)=orders%3Awrite"),
                400, "parameter name")
            add("PAR", "PAR endpoint: \(name)", form("/o/par/", base + "&scope=openid&\(name)=orders%3Awrite"), 400, "parameter name")
            add("device", "device endpoint: \(name)", form("/o/device/", "scope=openid&\(name)=orders%3Awrite"), 400, "parameter name")
        }
        add("encoding", "malformed percent-encoding", authorize("&scope=openid%ZZ"), 400, "invalid_request")
        add("encoding", "truncated percent-encoding", authorize("&scope=openid%2"), 400, "invalid_request")
        add("encoding", "tab inside scope", authorize("&scope=openid%09orders%3Aread"), 400, "invalid_scope")
        add("encoding", "doubled space in scope", authorize("&scope=openid%20%20orders%3Aread"), 400, "invalid_scope")
        add("encoding", "non-ASCII scope", authorize("&scope=%C3%A9crire"), 400, "invalid_scope")
        add("encoding", "NUL in scope", authorize("&scope=openid%00admin"), 400, "invalid_scope")
        add("encoding", "stray ampersand", authorize("&&scope=openid"), 400, "stray")
        add("encoding", "space in a parameter name", authorize("&sc%20ope=admin%3Aorg&scope=openid"), 400, "parameter name")
        add("encoding", "scope spelled like a resource", authorize("&scope=%40resource%3Ahttps%3A%2F%2Fapi.example"), 400, "invalid_scope")
        add("encoding", "more than 100 scopes", authorize("&scope=" + (0...100).map { "s\($0)" }.joined(separator: "+")), 400, "more than 100")
        add("encoding", "target over 8 KiB", authorize("&scope=openid&x=" + String(repeating: "a", count: 9000)), 414, "longer than")
        add("pollution", "denied scope hidden after a plus", authorize("&scope=openid+admin%3Aorg"), 303, "error=access_denied")
        add("pollution", "semicolon as a separator is one unknown scope, held", authorize("&scope=openid;scope=orders%3Aread"), 303, "/_scopegate/holds/")

        // Response types that would hand tokens to the browser.
        add("hygiene", "response_type=token", get(authorize + "?response_type=token&client_id=app&scope=openid"), 400, "unsupported_response_type")
        add("hygiene", "response_type=code id_token", get(authorize + "?response_type=code%20id_token&client_id=app&scope=openid"), 400, "unsupported_response_type")
        add("hygiene", "no client_id", get(authorize + "?response_type=code&scope=openid"), 400, "no client_id")

        // Other spellings of every gated path.
        for (variant, why) in [
            ("/o/Authorize/", "case"), ("/o//authorize/", "doubled slash"), ("/o/x/../authorize/", "dot segment"),
            ("/o/./authorize/", "single dot"), ("/o/authorize/;a=b", "matrix parameter"), ("/o/%61uthorize/", "encoded letter"),
            ("/o/%2561uthorize/", "double encoding"), ("/o/authorize", "no trailing slash"), ("/o/authorize%2F", "encoded slash"),
        ] {
            add("paths", "authorization endpoint, \(why)", get(variant + "?" + base + "&scope=admin%3Aorg"), 400, "another spelling")
        }
        for (variant, why) in [("/o/TOKEN/", "token, case"), ("/o/token/.", "token, trailing dot"), ("/o/par//", "PAR, doubled slash"),
            ("/o/%64evice/", "device, encoded letter"), ("/o/register/%2e", "registration, encoded dot"),
            ("/o/token.json", "token, a format suffix (Spring's suffix patterns)"), ("/o/token/.json", "token, a suffix segment"),
            ("/o/token.", "token, a trailing dot on the segment"), ("/o/par.xml/", "PAR, a suffix before the slash"),
            ("/o/authorize.json", "authorization, a format suffix"),
        ] {
            add("paths", why, form(variant, "grant_type=client_credentials&scope=orders%3Awrite"), 400, "another spelling")
        }

        // ScopeGate's own prefix is matched by bytes: a combining mark after its slash (which would make
        // the slash part of another character) leaves it ScopeGate's path; sent raw, the parser refuses it.
        add("paths", "own prefix, then an encoded combining mark", get("/_scopegate/%CC%81x"), 404, "ScopeGate serves nothing")
        add("paths", "own prefix, then a raw combining mark", get("/_scopegate/\u{301}x"), 400, "")

        // Methods an endpoint does not take.
        add("methods", "PUT to the authorization endpoint", request("PUT", authorize + "?" + base + "&scope=openid"), 405, "GET and POST")
        add("methods", "GET to the token endpoint", get("/o/token/?grant_type=client_credentials&scope=orders%3Awrite"), 405, "POST only")
        add("methods", "DELETE to the token endpoint", request("DELETE", "/o/token/"), 405, "POST only")
        add("methods", "GET to PAR", get("/o/par/?" + base + "&scope=orders%3Awrite"), 405, "POST only")
        add("methods", "GET to the device endpoint", get("/o/device/?client_id=app&scope=orders%3Awrite"), 405, "POST only")
        add(
            "methods", "a method override header does not make a GET a POST",
            get("/o/token/?grant_type=client_credentials&scope=orders%3Awrite", ["X-HTTP-Method-Override: POST"]), 405, "POST only")
        add(
            "methods", "JSON body at the authorization endpoint",
            request("POST", authorize, ["Content-Type: application/json"], body: #"{"scope":"admin:org"}"#), 400, "x-www-form-urlencoded")
        add("methods", "GET with a body", request("GET", authorize + "?" + base + "&scope=openid", body: "scope=admin"), 400, "must not have a body")

        // Request objects.
        add(
            "request object", "unsigned, its scope is gated",
            authorize("&scope=openid&request=" + requestObject("{\(inner),\"scope\":\"openid admin:org\"}")), 303, "error=access_denied")
        add(
            "request object", "signed, its scope is gated",
            authorize(
                "&scope=openid&request="
                    + requestObject("{\(inner),\"scope\":\"orders:write\"}", header: #"{"alg":"RS256","kid":"k1"}"#, signature: "c2lnbmF0dXJl")),
            303, "/_scopegate/holds/")
        add(
            "request object", "its resource is gated",
            authorize("&scope=openid&request=" + requestObject("{\(inner),\"scope\":\"openid\",\"resource\":[\"https://api.example/\"]}")),
            303, "/_scopegate/holds/")
        add(
            "request object", "its claims are gated",
            authorize("&scope=openid&request=" + requestObject("{\(inner),\"scope\":\"openid\",\"claims\":{\"id_token\":{\"salary\":{\"essential\":true}}}}")),
            303, "/_scopegate/holds/")
        // RFC 9101: an IdP reading the object alone finds no scope there and applies the client's defaults.
        add(
            "request object", "no scope inside, one outside, no defaults known",
            authorize("&scope=openid&request=" + requestObject("{\(inner)}")), 303, "error=invalid_scope")
        add("request object", "not base64url", authorize("&scope=openid&request=not%2Ba%2Bjwt.x.y"), 400, "invalid_request_object")
        for scope in ["5", "true", "[\"admin:org\"]", "null"] {
            add(
                "request object", "a scope that is not a string: \(scope)",
                authorize("&scope=openid&request=" + requestObject("{\(inner),\"scope\":\(scope)}")), 400, "invalid_request_object")
        }
        add(
            "request object", "encrypted (five parts)",
            authorize("&scope=openid&request=eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d"), 400, "request_not_supported")
        add(
            "request object", "encrypted (enc in the header)",
            authorize("&scope=openid&request=" + requestObject("{\(inner)}", header: #"{"alg":"none","enc":"A256GCM"}"#)), 400,
            "request_not_supported")
        add(
            "request object", "nested (cty JWT)",
            authorize("&scope=openid&request=" + requestObject("{\(inner)}", header: #"{"alg":"none","cty":"JWT"}"#)), 400,
            "request_not_supported")
        add(
            "request object", "nested (a request claim inside)",
            authorize("&scope=openid&request=" + requestObject("{\(inner),\"request\":\"e30.e30.\"}")), 400, "request_not_supported")
        add(
            "request object", "together with request_uri",
            authorize("&scope=openid&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax&request=" + requestObject("{\(inner)}")),
            400, "cannot be used together")
        add(
            "request object", "another client inside",
            authorize("&scope=openid&request=" + requestObject(#"{"client_id":"other","scope":"openid"}"#)), 400, "disagree on client_id")
        add(
            "request object", "a member name twice",
            authorize("&scope=openid&request=" + requestObject("{\(inner),\"scope\":\"openid\",\"scope\":\"admin:org\"}")), 400,
            "invalid_request_object")
        add(
            "request object", "response_type token inside",
            authorize("&scope=openid&request=" + requestObject(#"{"client_id":"app","response_type":"token"}"#)), 400, "disagree on response_type")
        add(
            "request object", "alg none with a signature",
            authorize("&scope=openid&request=" + requestObject("{\(inner)}", signature: "c2ln")), 400, "invalid_request_object")
        add(
            "request object", "larger than 16 KiB",
            request(
                "POST", authorize, ["Content-Type: application/x-www-form-urlencoded"],
                body: base + "&scope=openid&request=" + requestObject("{\(inner),\"x\":\"\(String(repeating: "a", count: 17000))\"}")),
            400, "larger than")
        add(
            "request object", "a permission hidden in an unknown object member",
            authorize("&scope=openid&request=" + requestObject("{\(inner),\"permissions\":{\"admin\":true}}")), 400, "cannot gate")

        // Permissions beyond scope.
        add("permissions", "relative resource", authorize("&scope=openid&resource=%2Fapi"), 400, "invalid_target")
        add("permissions", "resource with a fragment", authorize("&scope=openid&resource=https%3A%2F%2Fapi.example%2F%23x"), 400, "invalid_target")
        add("permissions", "unapproved resource is held", authorize("&scope=openid&resource=https%3A%2F%2Fapi.example%2F"), 303, "/_scopegate/holds/")
        add(
            "permissions", "second resource is gated too",
            authorize("&scope=openid&resource=https%3A%2F%2Fpublic.example%2F&resource=https%3A%2F%2Fpayroll.example%2F"), 303,
            "/_scopegate/holds/")
        add(
            "permissions", "authorization_details that is not an array",
            authorize("&scope=openid&authorization_details=%7B%22type%22%3A%22payment%22%7D"), 400, "invalid_authorization_details")
        add(
            "permissions", "authorization_details type is held",
            authorize("&scope=openid&authorization_details=%5B%7B%22type%22%3A%22payment_initiation%22%7D%5D"), 303, "/_scopegate/holds/")
        add(
            "permissions", "claims with a member twice",
            authorize("&scope=openid&claims=%7B%22userinfo%22%3A%7B%7D%2C%22userinfo%22%3A%7B%22salary%22%3Anull%7D%7D"), 400, "strict JSON")
        add("permissions", "claims for an unknown target", authorize("&scope=openid&claims=%7B%22admin%22%3A%7B%7D%7D"), 400, "userinfo and id_token")
        add("permissions", "no scope and no defaults: the client is told", authorize(""), 303, "error=invalid_scope")

        // PAR and request_uri binding.
        add(
            "PAR", "a request_uri ScopeGate never saw issued",
            get(authorize + "?client_id=app&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aforged"), 400, "request_uri")
        add(
            "PAR", "a request_uri with parameters beside it",
            get(authorize + "?client_id=app&scope=admin%3Aorg&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax"), 400,
            "request_uri")
        add("PAR", "an unapproved pushed request", form("/o/par/", base + "&scope=orders%3Awrite"), 400, "awaiting approval")
        add("PAR", "a request_uri pushed", form("/o/par/", base + "&request_uri=urn%3Ax"), 400, "request_uri")
        add(
            "PAR", "a pushed request object carrying a denied scope",
            form("/o/par/", base + "&scope=openid&request=" + requestObject("{\(inner),\"scope\":\"admin:org\"}")), 400,
            "does not allow")

        // Token endpoint grants.
        add("token", "client_credentials, unapproved", form("/o/token/", "grant_type=client_credentials&scope=orders%3Awrite"), 400, "awaiting approval")
        add("token", "password, unapproved", form("/o/token/", "grant_type=password&username=u&password=p&scope=orders%3Awrite"), 400, "awaiting approval")
        add(
            "token", "refresh asking for more",
            form("/o/token/", "grant_type=refresh_token&refresh_token=r&scope=orders%3Awrite"), 400, "awaiting approval")
        add(
            "token", "token exchange to an unapproved audience",
            form(
                "/o/token/",
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=t&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&scope=openid&audience=payroll"),
            400, "awaiting approval")
        add(
            "token", "JWT bearer, unapproved",
            form("/o/token/", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c&scope=orders%3Awrite"), 400,
            "awaiting approval")
        add("token", "a grant with no scope and no defaults", form("/o/token/", "grant_type=client_credentials"), 400, "no default scopes")
        add(
            "token", "client_credentials, an unapproved scope in a second scope parameter",
            form("/o/token/", "grant_type=client_credentials&scope=openid&scope=orders%3Awrite"), 400, "awaiting approval")
        add(
            "token", "client_credentials, scope also sent empty (the IdP's defaults), no defaults known",
            form("/o/token/", "grant_type=client_credentials&scope=openid&scope="), 400, "no default scopes")
        add(
            "token", "client_credentials, grant_type twice with different values",
            form("/o/token/", "grant_type=client_credentials&grant_type=password&username=u&password=p&scope=openid"), 400,
            "repeated with different values")
        add(
            "token", "authorization code redeemed for an unapproved resource",
            form("/o/token/", "grant_type=authorization_code&code=c&resource=https%3A%2F%2Fpayroll.example%2F"), 400, "invalid_target")
        add("token", "two client identities", form("/o/token/", "grant_type=client_credentials&client_id=other&scope=openid"), 401, "more than one client")
        // "café" twice, composed and decomposed: one client to Swift's string equality, two to an IdP.
        let composed = "caf%C3%A9", decomposed = "cafe%CC%81"
        add(
            "token", "client ids equal only by Unicode equivalence",
            form("/o/token/", "grant_type=client_credentials&client_id=\(decomposed)&scope=openid",
                 ["Authorization: Basic " + Data("\(composed):s".utf8).base64EncodedString()]), 401, "printable ASCII")
        add("pollution", "a client_id that is not ASCII", authorize("&client_id=\(composed)&scope=openid").replacingOccurrences(of: "client_id=app&", with: ""), 400, "printable ASCII")
        // An Authorization header ScopeGate does not fully read is refused, not ignored: Spring and others
        // would authenticate the client it names while the gate checked the body's client_id.
        let other = Data("other:s3cret".utf8).base64EncodedString()
        let app = Data("app:s3cret".utf8).base64EncodedString()
        for (name, header) in [
            ("Basic and a tab", "Authorization: Basic\t\(other)"), ("Basic and two spaces", "Authorization: Basic  \(other)"),
            ("basic in lower case", "Authorization: basic \(other)"), ("BASIC in upper case", "Authorization: BASIC \(other)"),
            ("another scheme", "Authorization: Bearer \(other)"), ("a credential that is not base64", "Authorization: Basic b3RoZXI6c2VjcmV0!"),
            ("a credential without a colon", "Authorization: Basic " + Data("other".utf8).base64EncodedString()),
            ("a credential with trailing data", "Authorization: Basic \(other) x"),
            ("another client than the body's", "Authorization: Basic \(other)"),
        ] {
            add("token", "Authorization header: \(name)", form("/o/token/", "grant_type=client_credentials&client_id=app&scope=openid", [header]), 401, "invalid_client")
            add("PAR", "Authorization header: \(name)", form("/o/par/", base + "&scope=openid", [header]), 401, "invalid_client")
            add("device", "Authorization header: \(name)", form("/o/device/", "client_id=app&scope=openid", [header]), 401, "invalid_client")
        }
        add(
            "token", "Authorization header: two of them",
            form("/o/token/", "grant_type=client_credentials&client_id=app&scope=openid", ["Authorization: Basic \(app)", "Authorization: Basic \(other)"]),
            401, "invalid_client")
        add(
            "token", "a client assertion naming two clients",
            form(
                "/o/token/",
                "grant_type=client_credentials&scope=openid&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion="
                    + jwt(#"{"alg":"RS256"}"#, #"{"sub":"app","sub":"evil","aud":"x"}"#, signature: "c2ln"), []), 401,
            "the client assertion cannot be read")
        add("token", "parameters in the query", form("/o/token/?scope=admin%3Aorg", "grant_type=client_credentials&scope=openid"), 400, "not the query")
        add("token", "grant_type twice", form("/o/token/", "grant_type=authorization_code&grant_type=client_credentials&scope=openid"), 400, "is repeated")
        add("token", "a denied scope", form("/o/token/", "grant_type=client_credentials&scope=admin%3Aorg"), 400, "does not allow")

        // Device authorization and polling.
        add("device", "an unapproved request gets ScopeGate's own codes", form("/o/device/", "scope=orders%3Awrite"), 200, "/_scopegate/device")
        add("device", "a denied scope", form("/o/device/", "scope=admin%3Aorg"), 400, "does not allow")
        add("device", "a relative resource", form("/o/device/", "scope=openid&resource=api"), 400, "invalid_target")
        add(
            "device", "a device code shaped like ScopeGate's but never issued",
            form(
                "/o/token/", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=app&device_code=BCDFGHJK."
                    + String(repeating: "0", count: 32), []), 400, "invalid_grant")
        add("device", "a verification page lookup by POST", form("/_scopegate/device", "user_code=BCDF-GHJK"), 405, "GET")

        // Headers from an untrusted peer that try to steer routing or links.
        add(
            "headers", "X-Forwarded-Host on a held request",
            authorize("&scope=orders%3Aread").replacingOccurrences(
                of: "Connection: close", with: "X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nConnection: close"),
            303, "Location: /_scopegate/holds/", absent: "evil.example")
        add(
            "headers", "X-Original-URL pointing a gated request elsewhere",
            authorize("&scope=admin%3Aorg").replacingOccurrences(
                of: "Connection: close", with: "X-Original-URL: /realms/acme/account\r\nConnection: close"),
            303, "error=access_denied")
        add(
            "headers", "a Host naming another site on a denied request",
            authorize("&scope=admin%3Aorg").replacingOccurrences(of: "Host: HOST", with: "Host: evil.example"), 303,
            "https://app.example/cb?error=access_denied", absent: "evil.example")

        // Endpoints ScopeGate does not gate, refused.
        add("endpoints", "dynamic client registration", request("POST", "/o/register/", ["Content-Type: application/json"], body: #"{"scope":"admin:org"}"#), 403, "access_denied")
        add("endpoints", "CIBA", form("/o/bc-authorize/", "scope=orders%3Awrite&login_hint=u"), 403, "access_denied")
        add("endpoints", "an mTLS alias of the token endpoint", form("/mtls/token/", "grant_type=client_credentials&scope=admin%3Aorg"), 403, "access_denied")

        // Framing that two parsers may read differently.
        add(
            "smuggling", "Content-Length with Transfer-Encoding",
            "POST /o/userinfo/ HTTP/1.1\r\nHost: HOST\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /o/authorize/?client_id=app&response_type=code&scope=admin%3Aorg HTTP/1.1\r\nHost: x\r\n\r\n",
            400, "")
        add("smuggling", "a header folded over two lines", "POST /o/userinfo/ HTTP/1.1\r\nHost: HOST\r\nContent-Length: 4\r\nX-A: a\r\n b\r\n\r\nabcd", 400, "")
        add("smuggling", "gzip, chunked", "POST /o/userinfo/ HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "chunked")
        return all
    }()

    @Test func theSuiteIsLargeAndCoversEveryArea() {
        #expect(Self.attacks.count >= 50)
        let areas = Set(Self.attacks.map(\.area))
        #expect(
            areas.isSuperset(of: [
                "pollution", "encoding", "paths", "methods", "request object", "permissions", "PAR", "token", "device", "endpoints",
                "smuggling", "hygiene", "headers",
            ]))
    }

    @Test(arguments: attacks)
    func nothingReachesTheIdP(_ attack: Attack) async throws {
        try await GateHarness.with(
            discoveryExtra: Self.discoveryExtra + #","mtls_endpoint_aliases":{"token_endpoint":"ISSUER/mtls/token/"}"#,
            upstreamExtra: "\n  block_unhandled_endpoints: true"
        ) { h in
            let raw = attack.raw.replacingOccurrences(of: "HOST", with: "127.0.0.1:\(h.publicPort)")
            let reply = try await RawHTTP.send(port: h.publicPort, raw, readUntilClose: true)
            #expect(reply.status == attack.status, "answered \(reply.status): \(reply.head)\n\(reply.body.prefix(400))")
            if !attack.expect.isEmpty {
                #expect((reply.head + reply.body).contains(attack.expect), "\(reply.head)\n\(reply.body.prefix(400))")
            }
            if let absent = attack.absent {
                #expect(!(reply.head + reply.body).contains(absent), "\(reply.head)")
            }
            #expect(h.upstream.received.isEmpty, "the IdP received \(h.upstream.received.map { "\($0.method) \($0.target)" })")
        }
    }

    @Test func routingHeadersFromAnUntrustedPeerNeverReachTheIdP() async throws {
        try await GateHarness.with { h in
            let reply = try await h.rawGet(
                "/realms/acme/account",
                headers: """
                    X-Original-URL: /o/authorize/?client_id=app&response_type=code&scope=admin%3Aorg\r
                    X-Rewrite-URL: /o/authorize/\r
                    X-Original-URI: /o/authorize/\r
                    X-Forwarded-Uri: /o/authorize/\r
                    X-Forwarded-Prefix: /o\r
                    X-HTTP-Method-Override: DELETE\r
                    X-Forwarded-Host: evil.example\r

                    """)
            #expect(reply.status == 200)
            let forwarded = try #require(h.upstream.received.first)
            #expect(forwarded.target == "/realms/acme/account")
            for name in ["X-Original-URL", "X-Rewrite-URL", "X-Original-URI", "X-Forwarded-Uri", "X-Forwarded-Prefix", "X-HTTP-Method-Override"] {
                #expect(forwarded.headers[.init(name)!] == nil, "\(name) was passed to the IdP")
            }
            #expect(forwarded.headers[.init("X-Forwarded-Host")!] == "127.0.0.1:\(h.publicPort)")
        }
    }

    /// Some IdPs build issuers and password-reset links from the forwarded host: a client's `Host` must
    /// never become it.
    @Test func aClientsHostNeverBecomesTheForwardedHost() async throws {
        try await GateHarness.with { h in
            let reply = try await RawHTTP.send(
                port: h.publicPort,
                "GET /realms/acme/login-actions/reset-credentials HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
            #expect(reply.status == 200)
            let forwarded = try #require(h.upstream.received.first)
            #expect(forwarded.headers[.init("X-Forwarded-Host")!] == "127.0.0.1:\(h.publicPort)")
            #expect(forwarded.headers[.init("Forwarded")!]?.contains("host=\"127.0.0.1:\(h.publicPort)\"") == true)
            #expect(forwarded.headers[.init("Forwarded")!]?.contains("evil") == false)
        }
    }
}
