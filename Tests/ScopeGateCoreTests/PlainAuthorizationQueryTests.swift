import Testing

@testable import ScopeGateCore

/// The proxy forwards a query `PlainAuthorizationQuery` reads without `AuthorizationRequest` ever
/// seeing it: it must read nothing the strict parser would refuse, read differently, or re-serialize.
@Suite struct PlainAuthorizationQueryTests {
    let base = "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=xyz"

    @Test func readsTheCommonShape() throws {
        let query = base + "&scope=openid%20orders%3Aread&nonce=n-0S6_WzA2Mj"
            + "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&response_mode=form_post"
        let plain = try #require(PlainAuthorizationQuery(Substring(query)))
        #expect(plain.clientID == "app")
        #expect(plain.scope == "openid orders:read")
        var tokens: [String] = []
        #expect(plain.allScopes { tokens.append($0); return true })
        #expect(tokens == ["openid", "orders:read"])
        #expect(plain.isCanonical)
        #expect(plain.serialized == query)
        // Stops at the first `false`.
        tokens = []
        #expect(!plain.allScopes { tokens.append($0); return false })
        #expect(tokens == ["openid"])
    }

    @Test func readsAPlusAsASpaceAndForwardsItAsAnEscape() throws {
        let plain = try #require(PlainAuthorizationQuery(Substring(base + "&scope=openid+orders%3Aread&nonce=a+b")))
        #expect(plain.scope == "openid orders:read")
        #expect(!plain.isCanonical)
        #expect(plain.serialized == base + "&scope=openid%20orders%3Aread&nonce=a%20b")
        // A `+` never makes a client_id (the strict parser reads it as a space).
        #expect(PlainAuthorizationQuery("response_type=code&client_id=a+b&scope=s") == nil)
    }

    @Test(arguments: [
        // Left to the strict parser, which refuses these:
        ("repeated parameter", "&scope=a&scope=b"),
        ("repeated client_id", "&scope=a&client_id=other"),
        ("malformed percent-encoding", "&scope=a%2"),
        ("non-hex percent-encoding", "&scope=a%zz"),
        ("empty pair", "&&scope=a"),
        ("trailing ampersand", "&scope=a&"),
        ("nameless parameter", "&scope=a&=b"),
        ("unencoded non-ASCII", "&scope=aé"),
        ("unencoded space", "&scope=a b"),
        ("empty scope token", "&scope=a%20%20b"),
        ("empty scope token between pluses", "&scope=a++b"),
        ("a plus for a leading space", "&scope=+a"),
        ("leading space", "&scope=%20a"),
        ("trailing space", "&scope=a%20"),
        ("a quote in a scope token", "&scope=a%22b"),
        ("a backslash in a scope token", "&scope=a%5Cb"),
        ("a reserved permission spelling", "&scope=%40resource%3Ahttps%3A%2F%2Fapi.example"),
        ("unknown response_mode", "&scope=a&response_mode=web_message"),
        // Left to the strict parser, which reads them (differently from their bytes, or with more to check):
        ("a lower-case escape", "&scope=a%3ab"),
        ("an escaped unreserved byte", "&scope=%61"),
        ("an escaped non-ASCII byte", "&scope=a&nonce=%C3%A9"),
        ("an escaped name", "&sc%6Fpe=a"),
        ("an unknown name", "&scope=a&foo=bar"),
        ("a pair without =", "&scope=a&prompt"),
        ("an = in a value", "&scope=a&prompt=a=b"),
        ("a reserved byte unescaped", "&scope=a&prompt=a:b"),
        ("a request object", "&scope=a&request=eyJhbGciOiJub25lIn0.e30."),
        ("a pushed request", "&scope=a&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax"),
        ("a resource", "&scope=a&resource=https%3A%2F%2Fapi.example"),
        ("authorization details", "&scope=a&authorization_details=%5B%5D"),
        ("claims", "&scope=a&claims=%7B%7D"),
        ("an audience", "&scope=a&audience=api"),
        ("no scope", ""),
        ("an empty scope", "&scope="),
    ])
    func leavesEverythingElseToTheStrictParser(_ name: String, _ suffix: String) {
        #expect(PlainAuthorizationQuery(Substring(base + suffix)) == nil, "\(name)")
    }

    @Test(arguments: [
        ("no client_id", "response_type=code&scope=a"),
        ("an empty client_id", "response_type=code&client_id=&scope=a"),
        ("an escaped client_id", "response_type=code&client_id=a%2Fb&scope=a"),
        ("no response_type", "client_id=app&scope=a"),
        ("another response_type", "response_type=token&client_id=app&scope=a"),
        ("an empty query", ""),
    ])
    func needsTheFieldsTheGateReads(_ name: String, _ query: String) {
        #expect(PlainAuthorizationQuery(Substring(query)) == nil, "\(name)")
    }

    @Test func takesAtMostTheMostScopeTokensARequestMayCarry() throws {
        let tokens = (0..<ScopeSet.maximumCount).map { "s\($0)" }
        let full = try #require(PlainAuthorizationQuery(Substring(base + "&scope=" + tokens.joined(separator: "%20"))))
        var count = 0
        _ = full.allScopes { _ in count += 1; return true }
        #expect(count == ScopeSet.maximumCount)
        #expect(PlainAuthorizationQuery(Substring(base + "&scope=" + (tokens + ["one-more"]).joined(separator: "%20"))) == nil)
    }

    /// Over a generated corpus of queries, well-formed and not: whatever the plain reader reads, the strict
    /// parser parses to the same client and scopes, with no other permissions, and re-serializes to the
    /// same bytes; and the corpus reaches both outcomes often enough to mean something.
    @Test func readsOnlyWhatTheStrictParserReadsTheSame() throws {
        var random = SplitMix64(seed: 0x5C0_9E6A7E)
        let names = KnownParameter.allCases.map(\.name) + ["foo", "sc%6Fpe", "client%5Fid", "", "scope+", "x%00"]
        let values = [
            "code", "token", "app", "", "a", "s1%20s2", "s1+s2", "s1%20%20s2", "%20s1", "s1%20", "openid%20api%3Aread",
            "api%3aread", "%61", "%C3%A9", "%E9", "%40resource%3Ax", "%40x", "a%22b", "a%5Cb", "query", "form_post",
            "fragment", "bogus", "https%3A%2F%2Fapp.example%2Fcb", "a=b", "%", "%2", "%G1", "a:b", "a%0Ab", "a%2B",
            "s1+s2+s3", "+s1", "s1+", "s1++s2", "a+%2B+b", "+", "co+de", "app+", "form+post",
        ]
        var read = 0
        var readWithPlus = 0
        var leftToParser = 0
        var strictlyParsed = 0
        var repeatedScopes = 0
        for _ in 0..<20_000 {
            var pairs: [String] = []
            // Most queries start from the common shape, so that small changes to it are what is tried.
            if random.next() % 4 != 0 {
                pairs = ["response_type=code", "client_id=app", random.next() % 2 == 0 ? "scope=s1%20s2" : "scope=s1+s2"]
            }
            for _ in 0..<(random.next() % 4) {
                let name = names[Int(random.next() % UInt64(names.count))]
                let value = values[Int(random.next() % UInt64(values.count))]
                let pair = random.next() % 10 == 0 ? name : name + "=" + value
                pairs.insert(pair, at: Int(random.next() % UInt64(pairs.count + 1)))
            }
            if random.next() % 3 == 0, !pairs.isEmpty {
                pairs.remove(at: Int(random.next() % UInt64(pairs.count)))
            }
            // Repeats: a pair again as it was (as consent forms send them), or its name with another value.
            if random.next() % 5 == 0, let pair = pairs.randomElement(using: &random) {
                pairs.insert(pair, at: Int(random.next() % UInt64(pairs.count + 1)))
            }
            if random.next() % 5 == 0, let pair = pairs.randomElement(using: &random) {
                let name = pair.split(separator: "=", maxSplits: 1).first.map(String.init) ?? pair
                pairs.append(name + "=" + values[Int(random.next() % UInt64(values.count))])
            }
            var query = pairs.joined(separator: "&")
            if random.next() % 20 == 0 { query += "&" }
            // Whatever the strict parser admits is gated on every value of a repeated scope.
            if let parsed = try? AuthorizationRequest(method: .get, query: Substring(query)) {
                strictlyParsed += 1
                let form = try FormParameters(parsing: Substring(query))
                if form.values("scope").count > 1 { repeatedScopes += 1 }
                for value in form.values("scope") where !value.isEmpty {
                    #expect(try ScopeSet(parsing: value).isSubset(of: parsed.scopes), "\(query)")
                }
            }
            guard let plain = PlainAuthorizationQuery(Substring(query)) else {
                leftToParser += 1
                continue
            }
            read += 1
            if !plain.isCanonical { readWithPlus += 1 }
            let parsed = try AuthorizationRequest(method: .get, query: Substring(query))
            #expect(parsed.parameters.isCanonical == plain.isCanonical, "\(query)")
            #expect(parsed.clientID == plain.clientID, "\(query)")
            #expect(!parsed.scopeMayBeOmitted, "\(query)")
            #expect(parsed.otherPermissions.isEmpty, "\(query)")
            var tokens: [String] = []
            _ = plain.allScopes { tokens.append($0); return true }
            #expect(!tokens.isEmpty)
            #expect(ScopeSet(tokens) == parsed.scopes, "\(query)")
            #expect(parsed.parameters.encoded == plain.serialized, "\(query)")
        }
        #expect(read > 2_000)
        #expect(readWithPlus > 1_000)
        #expect(leftToParser > 2_000)
        #expect(strictlyParsed > 4_000)
        #expect(repeatedScopes > 200)
    }

    /// Evaluation of a plain query agrees with evaluation of the parsed request.
    @Test func policyAllowsAPlainQueryExactlyWhenItAllowsTheParsedRequest() throws {
        let policy = Policy(
            rules: [
                .init(pattern: GlobPattern("openid"), auto: .approve, tier: "low", origin: "scopes[0]"),
                .init(pattern: GlobPattern("admin:*"), auto: .deny, tier: "high", origin: "scopes[1]"),
                .init(pattern: GlobPattern("orders:*"), auto: .ask, tier: "low", origin: "scopes[2]"),
            ],
            clients: [.init(id: "app", name: "App", redirectURIs: ["https://app.example/cb"])],
            tiers: [.init(name: "low", grantLifetime: nil), .init(name: "high", grantLifetime: nil)],
            defaultTier: "low", approvalTimeout: .seconds(600))
        let granted: Set<String> = ["orders:read"]
        for scope in ["openid", "openid%20orders%3Aread", "orders%3Awrite", "openid%20admin%3Aall", "unknown", "orders%3Aread"] {
            let query = Substring(base + "&scope=" + scope)
            let plain = try #require(PlainAuthorizationQuery(query))
            let parsed = try AuthorizationRequest(method: .get, query: query)
            let expected = policy.evaluate(scopes: try policy.effectiveScopes(of: parsed), clientID: "app", granted: granted) == .allow
            #expect(policy.allows(plain, isGranted: granted.contains) == expected, "\(scope)")
        }
    }
}

/// A small seeded generator, so that the corpus is the same on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
