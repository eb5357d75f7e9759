import Testing

@testable import ScopeGateCore

@Suite struct FormParametersTests {
    @Test func decodesEscapesPlusAndMultibyteText() throws {
        let form = try FormParameters(parsing: "a=x%20y&b=p+q&c=%C3%A9t%C3%A9&d=&e=%2B")
        #expect(form["a"] == "x y")
        #expect(form["b"] == "p q")
        #expect(form["c"] == "été")
        #expect(form["d"] == "")
        #expect(form["e"] == "+")
        #expect(form.names == ["a", "b", "c", "d", "e"])
    }

    @Test func namesNearCommonOnesStayTheirOwn() throws {
        let form = try FormParameters(parsing: "scop=1&scopes=2&client_idx=3&code_challenge_method=S256&cod=5&x_scope=6")
        #expect(form.names == ["scop", "scopes", "client_idx", "code_challenge_method", "cod", "x_scope"])
        #expect(form["scope"] == nil)
        #expect(form["code_challenge_method"] == "S256")
    }

    /// Names an IdP framework reads as a known one: ASP.NET ignores case; PHP drops leading spaces, cuts
    /// at NUL, reads `.` and space as `_` and `x[]` as `x`; Express's `qs` reads `x[]` and `x[0]` as `x`.
    @Test(arguments: [
        "Scope", "SCOPE", "Request", "Claims", "Resource", "Authorization_Details", "Client_ID", "REDIRECT_URI",
        "%20scope", "%20%20scope", "scope%00x", "scope%5B%5D", "scope[]", "scope[0]", "scope%5Bx%5D", "client.id",
        "client%20id", "redirect.uri", "authorization.details", "code.challenge", "Client.Id", "%20Scope%5B%5D",
    ])
    func refusesANameAnIdPFoldsOntoAKnownOne(_ name: String) {
        #expect {
            try FormParameters(parsing: Substring(name + "=admin"))
        } throws: { error in
            (error as? GateError)?.code == .invalidRequest
        }
    }

    @Test func plusIsLiteralWhenAsked() throws {
        let form = try FormParameters(parsing: "a=p+q", plusIsSpace: false)
        #expect(form["a"] == "p+q")
        #expect(form.encoded == "a=p%2Bq")
    }

    /// What the gate forwards is either the text as it came, when encoding the parsed pairs again gives
    /// exactly it, or that encoding: never something the parse did not see.
    @Test(arguments: [
        ("a=x&b=https%3A%2F%2Fapp.example%2Fcb", "a=x&b=https%3A%2F%2Fapp.example%2Fcb"),
        ("scope=s1%20s2", "scope=s1%20s2"),
        ("b=%3a", "b=%3A"),  // a lower-case escape
        ("b=%41", "b=A"),  // an escaped unreserved byte
        ("b=p+q", "b=p%20q"),  // plus as space
        ("flag&b=1", "flag=&b=1"),  // a name without '='
        ("b=%7e", "b=~"),
        ("s=%C3%A9", "s=%C3%A9"),
    ])
    func forwardsTheTextOnlyWhenItIsCanonical(query: String, forwarded: String) throws {
        let form = try FormParameters(parsing: Substring(query))
        #expect(form.encoded == forwarded)
        #expect(try FormParameters(parsing: Substring(form.encoded)) == form)
    }

    @Test(arguments: [
        "a=1&a=2",  // repeated with different values
        "state=a&st%61te=b",  // repeated with different values once decoded
        "a=%",  // escape cut short at the end
        "a=%4",
        "a=%4&b=1",  // cut short before the next pair
        "a=%g1",
        "a=%FF",  // not UTF-8
        "a=%C3",  // a truncated UTF-8 sequence
        "a=%ED%A0%80",  // an encoded surrogate
        "a=1&",  // stray '&'
        "&a=1",
        "=1",  // no name
        "a=1 2",  // unencoded space
        "a=\u{7F}",  // DEL
        "a=é",  // unencoded non-ASCII
    ])
    func refusesWhatAnotherParserCouldReadDifferently(query: String) {
        #expect {
            try FormParameters(parsing: Substring(query))
        } throws: { ($0 as? GateError)?.code == .invalidRequest }
    }

    @Test func refusesNamesThatAreNotPrintable() throws {
        #expect(try FormParameters(parsing: "a=1&b%5B%5D=2").names == ["a", "b[]"])
        #expect(try FormParameters(parsing: "a+b=2", plusIsSpace: false).names == ["a+b"])
        #expect(try FormParameters(parsing: "a=1").merging(try FormParameters(parsing: "b=%0A")).names == ["a", "b"])
        for text in ["a=1&b%20c=2", "a+b=2", "%C3%A9=1", "b%0A=2"] {
            #expect(throws: GateError.self, "\(text)") { try FormParameters(parsing: Substring(text)) }
        }
        #expect(throws: GateError.self) { try FormParameters([("a\u{0}", "1")]) }
    }

    @Test func repeatsOnlyTheRepeatableParameters() throws {
        let form = try FormParameters(parsing: "resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb&audience=x&audience=y")
        #expect(form.values("resource") == ["https://a", "https://b"])
        #expect(form.values("audience") == ["x", "y"])
    }
}

@Suite struct ScopeSetTests {
    @Test(arguments: [
        ("openid", ["openid"]),
        ("b a", ["a", "b"]),
        ("a b a", ["a", "b"]),
        ("s1 s2 s3", ["s1", "s2", "s3"]),
        ("s3 s2 s2 s1", ["s1", "s2", "s3"]),
        ("orders:read admin!", ["admin!", "orders:read"]),
    ])
    func parsesToOneSortedForm(value: String, tokens: [String]) throws {
        #expect(try ScopeSet(parsing: value).tokens == tokens)
    }

    @Test(arguments: ["a  b", " a", "a ", "a\tb", "a\"b", "a\\b", "@resource:https://x", "@claim:email"])
    func refusesWhatRFC6749DoesNotAllowOrAnotherKindsName(value: String) {
        #expect {
            try ScopeSet(parsing: value)
        } throws: { ($0 as? GateError)?.code == .invalidScope }
    }

    @Test func allowsAtSignsThatNameNoOtherKind() throws {
        #expect(try ScopeSet(parsing: "@team openid").tokens == ["@team", "openid"])
    }

    @Test func refusesMoreThanTheMaximumNumberOfTokens() throws {
        let most = (0..<ScopeSet.maximumCount).map { "s\($0)" }
        #expect(try ScopeSet(parsing: most.joined(separator: " ")).tokens.count == ScopeSet.maximumCount)
        #expect(throws: GateError.self) { try ScopeSet(parsing: (most + ["extra"]).joined(separator: " ")) }
    }
}

/// The common parameter names the parser recognizes by identity.
@Suite struct KnownParameterTests {
    @Test func everyNameIsFoundAndFitsTheParsersBitSet() {
        #expect(KnownParameter.allCases.count <= 64)
        for known in KnownParameter.allCases {
            #expect(KnownParameter.named(known.name) == known)
        }
        #expect(KnownParameter.named("scopes") == nil)
        #expect(KnownParameter.named("Scope") == nil)
        #expect(KnownParameter.named("") == nil)
    }

    @Test func anEscapedNameIsKnownByWhatItDecodesTo() throws {
        let form = try FormParameters(parsing: "sc%6Fpe=a&client%5Fid=b")
        #expect(form.pairs.map(\.known) == [.scope, .clientID])
        #expect(throws: GateError.self) { try FormParameters(parsing: "state=a&st%61te=b") }
        #expect(throws: GateError.self) { try FormParameters(parsing: "x=1&x=2") }
        #expect(try FormParameters(parsing: "resource=a&resource=b").pairs.count == 2)
        // Read as a union, so kept: `sc%6Fpe` is `scope`, and both values are gated.
        #expect(try FormParameters(parsing: "scope=a&sc%6Fpe=b").values("scope") == ["a", "b"])
    }

    @Test func anEscapedScopeNameIsStillGated() throws {
        // The IdP decodes the name and reads a scope: so must the gate, or the scope would pass unseen.
        let request = try AuthorizationRequest(method: .get, query: "response_type=code&client_id=app&sc%6Fpe=admin&%73tate=x")
        #expect(request.scopes.tokens == ["admin"])
        #expect(request.state == "x")
    }
}
