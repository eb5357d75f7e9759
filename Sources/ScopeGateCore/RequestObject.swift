import Foundation

/// A request object (`request`, OIDC Core §6.1 / RFC 9101), decoded so the gate sees the permissions it
/// carries. ScopeGate does not check the signature (the IdP does, and refuses a bad one); it reads the
/// claims, signed (`alg` other than `none`) or not.
///
/// Refused: an encrypted request object (JWE, five parts) and a nested one (a JWT inside, `cty: JWT`, or
/// a `request`/`request_uri` claim), with `request_not_supported`: ScopeGate cannot see through them.
/// Anything that is not a well-formed compact JWS with a JSON object payload is `invalid_request_object`.
public struct RequestObject: Sendable, Equatable {
    /// The largest request object read; larger is refused before any store or chat work.
    public static let maximumSize = 16 * 1024

    /// The JWT's own claims (RFC 7519 §4.1), which are not authorization request parameters.
    static let jwtClaims: Set<String> = ["iss", "aud", "exp", "iat", "nbf", "jti", "sub"]

    /// Single-valued parameters (strings, and numbers or booleans as written).
    public let parameters: [String: String]
    /// `scope`, when present.
    public let scope: String?
    /// Permission names for `resource`, `audience`, `authorization_details` and `claims`.
    public let permissions: [String]

    /// Decodes a compact-serialized request object.
    public init(compact: String) throws(GateError) {
        guard compact.utf8.count <= Self.maximumSize else {
            throw GateError(.invalidRequestObject, "the request object is larger than \(Self.maximumSize) bytes")
        }
        let parts = compact.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 5 {
            throw GateError(.requestNotSupported, "encrypted request objects are not accepted through ScopeGate, which must read them")
        }
        guard parts.count == 3, let headerData = Base64URL.decode(parts[0]), let payloadData = Base64URL.decode(parts[1]),
            Base64URL.decode(parts[2]) != nil || parts[2].isEmpty,
            let header = StrictJSON.parse(headerData), case .object = header,
            let alg = header["alg"]?.stringValue
        else {
            throw GateError(.invalidRequestObject, "the request object is not a compact JWS with a JSON header naming its alg")
        }
        guard (alg == "none") == parts[2].isEmpty else {
            throw GateError(.invalidRequestObject, "the request object's signature does not match its alg")
        }
        if header["enc"] != nil {
            throw GateError(.requestNotSupported, "encrypted request objects are not accepted through ScopeGate, which must read them")
        }
        if let cty = header["cty"]?.stringValue, cty.lowercased() == "jwt" || cty.lowercased() == "application/jwt" {
            throw GateError(.requestNotSupported, "nested request objects are not accepted through ScopeGate")
        }
        guard let payload = StrictJSON.parse(payloadData), case .object(let members) = payload else {
            throw GateError(
                .invalidRequestObject, "the request object's payload is not a strict JSON object (or repeats a member name)")
        }
        var parameters: [String: String] = [:]
        var scope: String?
        var permissions: [String] = []
        for (name, value) in members where !Self.jwtClaims.contains(name) {
            switch (name, value) {
            case ("request", _), ("request_uri", _):
                throw GateError(.requestNotSupported, "nested request objects are not accepted through ScopeGate")
            case ("scope", .string(let text)):
                scope = text
            case ("scope", _):
                // A number or a flag read as a parameter would carry a scope past the gate.
                throw GateError(.invalidRequestObject, "the request object's scope must be a string")
            case ("resource", _):
                for text in try Self.strings(value, name) { permissions.append(try Permissions.resource(text)) }
            case ("audience", _):
                for text in try Self.strings(value, name) { permissions.append(try Permissions.audience(text)) }
            case ("authorization_details", _):
                permissions += try Permissions.authorizationDetails(value)
            case ("claims", _):
                permissions += try Permissions.claims(value)
            case (_, .string(let text)), (_, .number(let text)):
                parameters[name] = text
            case (_, .bool(let flag)):
                parameters[name] = flag ? "true" : "false"
            default:
                // An object, array or null where the gate knows of no meaning: a permission could hide there.
                throw GateError(
                    .invalidRequestObject, "the request object's \(FormParameters.printable(name)) has a value ScopeGate cannot gate")
            }
        }
        self.parameters = parameters
        self.scope = scope
        self.permissions = permissions
    }

    private static func strings(_ value: StrictJSON, _ name: String) throws(GateError) -> [String] {
        switch value {
        case .string(let text): return [text]
        case .array(let values):
            var texts: [String] = []
            for value in values {
                guard let text = value.stringValue else {
                    throw GateError(.invalidRequestObject, "the request object's \(name) must be a string or an array of strings")
                }
                texts.append(text)
            }
            return texts
        default:
            throw GateError(.invalidRequestObject, "the request object's \(name) must be a string or an array of strings")
        }
    }
}
