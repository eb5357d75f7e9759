import Foundation
import ScopeGateCore

/// A compact JWS split into what its checks read: the decoded header and claims, the signature, and
/// the signing input. Reading it checks nothing; callers check what their protocol requires.
struct JWTParts {
    let header: Data
    let claims: Data
    let signature: Data
    /// `base64url(header) "." base64url(claims)`, the bytes the signature covers.
    let signingInput: Data

    init?(_ token: Substring) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let header = Base64URL.decode(parts[0]), let claims = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2])
        else { return nil }
        self.header = header
        self.claims = claims
        self.signature = signature
        self.signingInput = Data(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
    }
}

/// A JWT `aud` claim: one string or an array of them (RFC 7519 §4.1.3).
enum JWTAudience: Decodable {
    case one(String)
    case many([String])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let one = try? container.decode(String.self) { self = .one(one) } else { self = .many(try container.decode([String].self)) }
    }

    var values: [String] {
        switch self {
        case .one(let value): [value]
        case .many(let values): values
        }
    }
}
