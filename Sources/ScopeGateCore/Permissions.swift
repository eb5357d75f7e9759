import Foundation

/// The kinds of permission a request can carry, and how each is named so that policy rules, grants,
/// approvers and the audit log treat it exactly like a scope.
///
/// A scope is named by its token. Every other kind is named `@<kind>:<value>`:
/// `@resource:https://api.example.com/` (RFC 8707), `@audience:billing` (RFC 8693),
/// `@authorization_details:payment_initiation` (an RFC 9396 `type`) and `@claim:email` (a claim asked
/// for in OIDC Core §5.5 `claims`, for the ID token or the UserInfo endpoint alike). A scope token
/// spelled like one of those names is refused, so a scope can never pose as another kind or back.
public enum PermissionKind: String, CaseIterable, Sendable {
    case scope
    case resource
    case audience
    case authorizationDetails = "authorization_details"
    case claim

    /// What a permission of this kind is named with; empty for scopes.
    public var prefix: String { self == .scope ? "" : "@\(rawValue):" }

    /// The permission name of `value`.
    public func name(_ value: String) -> String { prefix + value }

    /// The kind of a permission name.
    public static func of(_ permission: String) -> PermissionKind {
        guard permission.utf8.first == UInt8(ascii: "@") else { return .scope }
        return allCases.first { $0 != .scope && permission.hasPrefix($0.prefix) } ?? .scope
    }

    /// Whether a scope token is spelled like another kind's name.
    public static func isReserved(scopeToken token: Substring) -> Bool {
        token.hasPrefix("@") && allCases.contains { $0 != .scope && token.hasPrefix($0.prefix) }
    }

    /// Whether a scope token, as bytes, is spelled like another kind's name.
    static func isReserved(scopeToken token: UnsafeBufferPointer<UInt8>) -> Bool {
        token.first == UInt8(ascii: "@") && isReserved(scopeToken: Substring(decoding: token, as: UTF8.self))
    }
}

/// Reads the permissions beyond `scope` out of request parameters, strictly.
public enum Permissions {
    /// The permission names carried by `parameters`' `resource`, `audience`, `authorization_details`
    /// and `claims` (the last two as JSON text): the union over every value of each.
    ///
    /// An empty value carries nothing: RFC 6749 §3.1 has parameters sent without a value treated as
    /// omitted (IdPs' consent forms send empty hidden fields). A `resource` value with spaces is read as
    /// the resources it lists: django-oauth-toolkit's consent form carries several that way, and an IdP
    /// that took the whole value would find no absolute URI in it.
    public static func names(in parameters: FormParameters) throws(GateError) -> [String] {
        var names: [String] = []
        for pair in parameters.pairs where !pair.value.isEmpty {
            switch pair.known {
            case .resource?:
                for part in pair.value.split(separator: " ") { names.append(try resource(String(part))) }
            case .audience?:
                names.append(try audience(pair.value))
            case .authorizationDetails?:
                guard let json = StrictJSON.parse(pair.value.utf8) else {
                    throw GateError(.invalidAuthorizationDetails, "authorization_details is not strict JSON (or repeats a member name)")
                }
                names += try authorizationDetails(json)
            case .claims?:
                guard let json = StrictJSON.parse(pair.value.utf8) else {
                    throw GateError(.invalidRequest, "claims is not strict JSON (or repeats a member name)")
                }
                names += try claims(json)
            default:
                continue
            }
        }
        return names
    }

    /// `@resource:<uri>`: an absolute URI without a fragment (RFC 8707 §2).
    public static func resource(_ value: String) throws(GateError) -> String {
        guard isNameable(value), value.utf8.first.map(isAlpha) == true,
            let colon = value.utf8.firstIndex(of: UInt8(ascii: ":")),
            value.utf8[..<colon].allSatisfy({ isAlpha($0) || (0x30...0x39).contains($0) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E }),
            value.utf8.index(after: colon) != value.utf8.endIndex,
            !value.utf8.contains(UInt8(ascii: "#"))
        else {
            throw GateError(.invalidTarget, "a resource must be an absolute URI without a fragment (RFC 8707)")
        }
        return PermissionKind.resource.name(value)
    }

    /// `@audience:<value>`.
    public static func audience(_ value: String) throws(GateError) -> String {
        guard isNameable(value) else {
            throw GateError(.invalidTarget, "an audience must be non-empty printable ASCII without spaces, quotes or backslashes")
        }
        return PermissionKind.audience.name(value)
    }

    /// `@authorization_details:<type>` for each entry of an RFC 9396 array of objects.
    public static func authorizationDetails(_ json: StrictJSON) throws(GateError) -> [String] {
        guard case .array(let entries) = json, !entries.isEmpty else {
            throw GateError(.invalidAuthorizationDetails, "authorization_details must be a non-empty JSON array of objects")
        }
        var names: [String] = []
        for entry in entries {
            guard case .object = entry, let type = entry["type"]?.stringValue, isNameable(type) else {
                throw GateError(
                    .invalidAuthorizationDetails, "each authorization_details entry needs a string type of printable ASCII without spaces")
            }
            names.append(PermissionKind.authorizationDetails.name(type))
        }
        return names
    }

    /// `@claim:<name>` for each claim asked for in an OIDC `claims` object (`userinfo` and `id_token`).
    /// JSON `null` asks for none: django-oauth-toolkit's consent form posts `claims=null` back when the
    /// request had none, and reads it (as oauthlib does) as no claims.
    public static func claims(_ json: StrictJSON) throws(GateError) -> [String] {
        if case .null = json { return [] }
        guard case .object(let members) = json else {
            throw GateError(.invalidRequest, "claims must be a JSON object")
        }
        var names: [String] = []
        for (target, request) in members {
            guard target == "userinfo" || target == "id_token", case .object(let claims) = request else {
                throw GateError(.invalidRequest, "claims may name only userinfo and id_token, each a JSON object")
            }
            for (claim, _) in claims {
                guard isNameable(claim) else {
                    throw GateError(.invalidRequest, "a claim name must be printable ASCII without spaces, quotes or backslashes")
                }
                names.append(PermissionKind.claim.name(claim))
            }
        }
        return names
    }

    /// Whether a value can be part of a permission name: the bytes a scope token may hold.
    static func isNameable(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.count <= 2048 && value.utf8.allSatisfy(ScopeSet.isScopeTokenByte)
    }

    private static func isAlpha(_ byte: UInt8) -> Bool { (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) }
}
