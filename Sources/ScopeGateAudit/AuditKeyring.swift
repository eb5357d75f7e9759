import Foundation

/// The audit keys on disk: the current signing key (a private JWK, readable by its owner only) and a
/// JWKS with every public key ever used, current first, so that old entries stay verifiable after a
/// rotation.
public struct AuditKeyring: Sendable {
    public static let signingKeyFile = "audit-signing-key.jwk"
    public static let jwksFile = "audit-jwks.json"

    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    var signingKeyURL: URL { directory.appendingPathComponent(Self.signingKeyFile) }
    var jwksURL: URL { directory.appendingPathComponent(Self.jwksFile) }

    /// The current signing key.
    public func signingKey() throws -> AuditSigningKey {
        guard let data = try? Data(contentsOf: signingKeyURL),
            let jwk = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        else {
            throw AuditKeyError("cannot read the audit signing key \(signingKeyURL.path); create one with `scopegate keys generate`")
        }
        let key = try AuditSigningKey(jwk: jwk)
        guard try publicKeys().contains(key.publicKey) else {
            throw AuditKeyError("the signing key is missing from \(jwksURL.path)")
        }
        return key
    }

    /// Every public key, current first.
    public func publicKeys() throws -> [AuditPublicKey] {
        guard let data = try? Data(contentsOf: jwksURL) else { return [] }
        return try Self.parseJWKS(data)
    }

    /// The JWKS document served to auditors.
    public func jwksDocument() throws -> Data {
        Data(CompactJSON.encode(.object([("keys", .array(try publicKeys().map(\.jwkJSON)))])).utf8)
    }

    /// Reads a JWKS (`{"keys": [...]}`), refusing any key that is not a P-256 or Ed25519 signing key.
    public static func parseJWKS(_ data: Data) throws -> [AuditPublicKey] {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
            let keys = object["keys"] as? [[String: Any]]
        else { throw AuditKeyError("not a JWKS") }
        var result: [AuditPublicKey] = []
        for jwk in keys { result.append(try AuditPublicKey(jwk: jwk)) }
        return result
    }

    /// Makes a new signing key; the previous one, if any, stays in the JWKS as retired. Returns the new
    /// key and the one it replaces.
    @discardableResult
    public func generate(_ algorithm: AuditAlgorithm) throws -> (new: AuditSigningKey, retired: AuditPublicKey?) {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let previous = try? signingKey()
        let key = AuditSigningKey.generate(algorithm)
        let keys = [key.publicKey] + (try publicKeys()).filter { $0 != key.publicKey }
        let jwks = CompactJSON.encode(.object([("keys", .array(keys.map(\.jwkJSON)))]))
        try Data((jwks + "\n").utf8).write(to: jwksURL, options: .atomic)
        // Written to a temporary file readable by the owner only, then moved into place.
        let temporary = directory.appendingPathComponent(".\(Self.signingKeyFile).\(UUID().uuidString)")
        guard FileManager.default.createFile(
            atPath: temporary.path, contents: Data((key.privateJWK + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else { throw AuditKeyError("cannot write \(temporary.path)") }
        guard rename(temporary.path, signingKeyURL.path) == 0 else {
            try? FileManager.default.removeItem(at: temporary)
            throw AuditKeyError("cannot move the new signing key into \(signingKeyURL.path)")
        }
        return (key, previous?.publicKey)
    }
}
