#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The OAuth 2.0 and OpenID Connect parameter names requests carry most.
///
/// A parsed parameter whose name (after decoding) is one of these carries it (`FormParameters.Pair.known`):
/// readers switch on it instead of comparing strings, a repeat is found by comparing one byte, and the
/// name's `String` is shared instead of built for every request.
/// (At most 64 cases: the parser keeps the ones it has seen as bits of a `UInt64`.)
public enum KnownParameter: UInt8, CaseIterable, Sendable {
    case clientID, responseType, redirectURI, scope, state, nonce, codeChallenge, codeChallengeMethod
    case responseMode, prompt, loginHint, maxAge, uiLocales, acrValues, idTokenHint, display
    case request, requestURI, resource, audience, claims, authorizationDetails
    case grantType, code, codeVerifier, refreshToken, clientSecret, clientAssertion, clientAssertionType
    case deviceCode, username, password

    /// The name as it is sent.
    public var name: String { Self.names[Int(rawValue)] }

    /// Whether the parameter may appear more than once with different values, every value gated: the
    /// permission-carrying ones. `resource` (RFC 8707 §2) and `audience` (RFC 8693 §2.1) are repeatable
    /// by definition; a repeated `scope`, `claims` or `authorization_details` is read as the union of its
    /// values (Spring Authorization Server's consent form sends one `scope` per ticked box). Whichever
    /// value an IdP takes (the first, the last, or all of them) asks for no more than that union, so
    /// gating the union admits nothing an approver did not see. Every other name repeated with
    /// different values is ambiguous and refused.
    public var isReadAsUnion: Bool { self == .scope || carriesPermissions }

    /// Whether the parameter carries permissions beyond `scope` (see `Permissions`).
    public var carriesPermissions: Bool {
        switch self {
        case .resource, .audience, .authorizationDetails, .claims: true
        default: false
        }
    }

    private var spelling: StaticString {
        switch self {
        case .clientID: "client_id"
        case .responseType: "response_type"
        case .redirectURI: "redirect_uri"
        case .scope: "scope"
        case .state: "state"
        case .nonce: "nonce"
        case .codeChallenge: "code_challenge"
        case .codeChallengeMethod: "code_challenge_method"
        case .responseMode: "response_mode"
        case .prompt: "prompt"
        case .loginHint: "login_hint"
        case .maxAge: "max_age"
        case .uiLocales: "ui_locales"
        case .acrValues: "acr_values"
        case .idTokenHint: "id_token_hint"
        case .display: "display"
        case .request: "request"
        case .requestURI: "request_uri"
        case .resource: "resource"
        case .audience: "audience"
        case .claims: "claims"
        case .authorizationDetails: "authorization_details"
        case .grantType: "grant_type"
        case .code: "code"
        case .codeVerifier: "code_verifier"
        case .refreshToken: "refresh_token"
        case .clientSecret: "client_secret"
        case .clientAssertion: "client_assertion"
        case .clientAssertionType: "client_assertion_type"
        case .deviceCode: "device_code"
        case .username: "username"
        case .password: "password"
        }
    }

    /// Every case's shared `String`, by raw value.
    private static let names: [String] = allCases.map { $0.spelling.description }

    /// The cases by the length of their name: a lookup compares only names of the right length.
    private static let byLength: [[KnownParameter]] = {
        var byLength = [[KnownParameter]](repeating: [], count: allCases.map { $0.spelling.utf8CodeUnitCount }.max()! + 1)
        for known in allCases { byLength[known.spelling.utf8CodeUnitCount].append(known) }
        return byLength
    }()

    /// The known parameter spelled exactly `bytes`, if any.
    static func named(_ bytes: UnsafeBufferPointer<UInt8>) -> KnownParameter? {
        guard bytes.count > 0, bytes.count < byLength.count else { return nil }
        return byLength[bytes.count].withUnsafeBufferPointer { candidates in
            for known in candidates where memcmp(known.spelling.utf8Start, bytes.baseAddress!, bytes.count) == 0 {
                return known
            }
            return nil
        }
    }

    /// The known parameter named `name`, if any.
    public static func named(_ name: String) -> KnownParameter? {
        var name = name
        return name.withUTF8 { named($0) }
    }

    /// The known parameter some IdP framework reads `name` as, when `name` is not exactly its name:
    /// ASP.NET (and so Duende and OpenIddict) compares names ignoring case; PHP (league/oauth2-server,
    /// Laravel Passport) drops leading spaces, cuts a name at NUL, turns `.` and spaces into `_`, and reads
    /// `scope[]` or `scope[x]` as `scope`; Express's `qs` reads `scope[]` and `scope[0]` as `scope`. A
    /// gate that let `Scope` or `scope[]` through unread would let them carry permissions past it.
    public static func foldedOnto(_ name: String) -> KnownParameter? {
        var bytes = Array(name.utf8.drop { $0 == UInt8(ascii: " ") })
        if let cut = bytes.firstIndex(where: { $0 == 0 || $0 == UInt8(ascii: "[") }) { bytes.removeSubrange(cut...) }
        for index in bytes.indices {
            switch bytes[index] {
            case UInt8(ascii: "."), UInt8(ascii: " "): bytes[index] = UInt8(ascii: "_")
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): bytes[index] |= 0x20
            default: break
            }
        }
        guard let known = bytes.withUnsafeBufferPointer({ named($0) }), known.name != name else { return nil }
        return known
    }
}
