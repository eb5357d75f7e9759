import Crypto
import Foundation
import ScopeGateCore

/// A signing algorithm for audit entries.
public enum AuditAlgorithm: String, Sendable, CaseIterable {
    /// ECDSA with P-256 and SHA-256 (RFC 7518 §3.4): the default.
    case es256 = "ES256"
    /// Ed25519 (RFC 8037).
    case eddsa = "EdDSA"
}

/// A public key as a JWK (RFC 7517), able to verify audit entries.
public struct AuditPublicKey: Sendable, Equatable {
    public let algorithm: AuditAlgorithm
    /// The key's RFC 7638 thumbprint, used as `kid`.
    public let kid: String
    /// `x` (and `y` for P-256), base64url.
    let x: String
    let y: String?

    /// Reads a public JWK (`kty` EC / `crv` P-256, or `kty` OKP / `crv` Ed25519). Anything else is refused.
    public init(jwk: [String: Any]) throws(AuditKeyError) {
        guard let kty = jwk["kty"] as? String, let crv = jwk["crv"] as? String, let x = jwk["x"] as? String else {
            throw AuditKeyError("a JWK needs kty, crv and x")
        }
        switch (kty, crv) {
        case ("EC", "P-256"):
            guard let y = jwk["y"] as? String, let xBytes = Base64URL.decode(x), let yBytes = Base64URL.decode(y),
                xBytes.count == 32, yBytes.count == 32,
                (try? P256.Signing.PublicKey(rawRepresentation: xBytes + yBytes)) != nil
            else { throw AuditKeyError("an EC P-256 JWK has bad coordinates") }
            self.init(algorithm: .es256, x: x, y: y)
        case ("OKP", "Ed25519"):
            guard let bytes = Base64URL.decode(x), bytes.count == 32 else {
                throw AuditKeyError("an Ed25519 JWK has a bad x")
            }
            self.init(algorithm: .eddsa, x: x, y: nil)
        default:
            throw AuditKeyError("only EC P-256 and OKP Ed25519 keys sign audit entries")
        }
        if let given = jwk["kid"] as? String, given != kid {
            throw AuditKeyError("the JWK's kid is not its RFC 7638 thumbprint")
        }
    }

    init(algorithm: AuditAlgorithm, x: String, y: String?) {
        self.algorithm = algorithm
        self.x = x
        self.y = y
        self.kid = Self.thumbprint(algorithm: algorithm, x: x, y: y)
    }

    /// RFC 7638: SHA-256 over the required members in lexicographic order, without whitespace.
    static func thumbprint(algorithm: AuditAlgorithm, x: String, y: String?) -> String {
        let canonical: String
        switch algorithm {
        case .es256: canonical = #"{"crv":"P-256","kty":"EC","x":"\#(x)","y":"\#(y ?? "")"}"#
        case .eddsa: canonical = #"{"crv":"Ed25519","kty":"OKP","x":"\#(x)"}"#
        }
        return Base64URL.encode(Data(SHA256.hash(data: Data(canonical.utf8))))
    }

    /// The public JWK, with `kid`, `alg` and `use`.
    public var jwk: [(String, String)] {
        switch algorithm {
        case .es256:
            [("kty", "EC"), ("crv", "P-256"), ("x", x), ("y", y ?? ""), ("kid", kid), ("alg", algorithm.rawValue), ("use", "sig")]
        case .eddsa:
            [("kty", "OKP"), ("crv", "Ed25519"), ("x", x), ("kid", kid), ("alg", algorithm.rawValue), ("use", "sig")]
        }
    }

    var jwkJSON: CompactJSON.Value { .object(jwk.map { ($0.0, .string($0.1)) }) }

    /// Whether `signature` (JWS form: r‖s for ES256) signs `data`.
    public func verify(_ signature: Data, over data: Data) -> Bool {
        switch algorithm {
        case .es256:
            guard let x = Base64URL.decode(x), let y = y.flatMap(Base64URL.decode),
                let key = try? P256.Signing.PublicKey(rawRepresentation: x + y),
                let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature)
            else { return false }
            return key.isValidSignature(parsed, for: data)
        case .eddsa:
            guard let x = Base64URL.decode(x), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: x) else {
                return false
            }
            return key.isValidSignature(signature, for: data)
        }
    }
}

/// A private signing key, stored as a private JWK (RFC 7517) readable by any JOSE library.
public struct AuditSigningKey: Sendable {
    enum Secret: Sendable {
        case p256(P256.Signing.PrivateKey)
        case ed25519(Curve25519.Signing.PrivateKey)
    }

    let secret: Secret
    public let publicKey: AuditPublicKey

    /// A new random key.
    public static func generate(_ algorithm: AuditAlgorithm) -> AuditSigningKey {
        switch algorithm {
        case .es256: AuditSigningKey(.p256(P256.Signing.PrivateKey()))
        case .eddsa: AuditSigningKey(.ed25519(Curve25519.Signing.PrivateKey()))
        }
    }

    init(_ secret: Secret) {
        self.secret = secret
        switch secret {
        case .p256(let key):
            let raw = key.publicKey.rawRepresentation
            publicKey = AuditPublicKey(
                algorithm: .es256, x: Base64URL.encode(raw.prefix(32)), y: Base64URL.encode(raw.suffix(32)))
        case .ed25519(let key):
            publicKey = AuditPublicKey(algorithm: .eddsa, x: Base64URL.encode(key.publicKey.rawRepresentation), y: nil)
        }
    }

    /// Reads a private JWK.
    public init(jwk: [String: Any]) throws(AuditKeyError) {
        let publicKey = try AuditPublicKey(jwk: jwk)
        guard let d = (jwk["d"] as? String).flatMap(Base64URL.decode) else {
            throw AuditKeyError("the signing key file holds no private key (d)")
        }
        switch publicKey.algorithm {
        case .es256:
            guard let key = try? P256.Signing.PrivateKey(rawRepresentation: d) else { throw AuditKeyError("a bad P-256 private key") }
            self.init(.p256(key))
        case .eddsa:
            guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: d) else {
                throw AuditKeyError("a bad Ed25519 private key")
            }
            self.init(.ed25519(key))
        }
        guard self.publicKey == publicKey else { throw AuditKeyError("the private key does not match its public part") }
    }

    /// The private JWK's JSON.
    public var privateJWK: String {
        let d: Data
        switch secret {
        case .p256(let key): d = key.rawRepresentation
        case .ed25519(let key): d = key.rawRepresentation
        }
        return CompactJSON.encode(.object(publicKey.jwk.map { ($0.0, .string($0.1)) } + [("d", .string(Base64URL.encode(d)))]))
    }

    /// The JWS signature over `data` (r‖s for ES256).
    func sign(_ data: Data) throws -> Data {
        switch secret {
        case .p256(let key): try key.signature(for: data).rawRepresentation
        case .ed25519(let key): try key.signature(for: data)
        }
    }
}

/// A key that cannot be read or used.
public struct AuditKeyError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
