import Crypto
import Foundation
import ScopeGateCore

/// Seals audit events into compact JWS entries (RFC 7515):
///
///     header  {"alg":"ES256","kid":"<RFC 7638 thumbprint>","typ":"scopegate-audit+jwt"}
///     payload {"iss":…,"iat":…,"jti":…,"seq":n,"prev":"<base64url SHA-256 of entry n-1's compact JWS>"|null,
///              "event":"decision","client_id":…,"data":{…the event's fields…}}
///
/// Entries verify with any JOSE library against the JWKS; the chain (`seq` increments by one, `prev`
/// hashes the exact previous entry) makes edits, deletions, reordering and insertions detectable.
public struct AuditSigner: AuditSealing {
    public static let entryType = "scopegate-audit+jwt"
    public static let checkpointType = "scopegate-checkpoint+jwt"

    public let key: AuditSigningKey
    /// `iss`: ScopeGate's public URL.
    public let issuer: String

    /// Random per signer; with the entry's `seq` it makes each `jti` unique without a system call per
    /// entry.
    let jtiPrefix = RandomID.make(bytes: 12)

    /// The encoded headers, the same for every entry and every checkpoint of this key.
    let entryHeader: String
    let checkpointHeader: String

    public init(key: AuditSigningKey, issuer: String) {
        self.key = key
        self.issuer = issuer
        func header(_ type: String) -> String {
            Base64URL.encode(
                Data(
                    CompactJSON.encode(
                        .object([
                            ("alg", .string(key.publicKey.algorithm.rawValue)), ("kid", .string(key.publicKey.kid)),
                            ("typ", .string(type)),
                        ])
                    ).utf8))
        }
        entryHeader = header(Self.entryType)
        checkpointHeader = header(Self.checkpointType)
    }

    /// The base64url SHA-256 of a compact JWS, as `prev` and checkpoints use it.
    public static func hash(_ compact: String) -> String {
        Base64URL.encode(Data(SHA256.hash(data: Data(compact.utf8))))
    }

    public func seal(_ event: AuditEvent, seq: Int64, previous: String?, at date: Date) throws -> String {
        var payload: [(String, CompactJSON.Value)] = [
            ("iss", .string(issuer)), ("iat", .int(Int64(date.timeIntervalSince1970))),
            ("jti", .string("\(jtiPrefix).\(seq)")), ("seq", .int(seq)),
            ("prev", previous.map { .string(Self.hash($0)) } ?? .null), ("event", .string(event.type)),
        ]
        if let client = event.clientID { payload.append(("client_id", .string(client))) }
        payload.append(("data", .object(event.fields.map { ($0.name, Self.json($0.value)) })))
        return try sign(header: entryHeader, payload: payload)
    }

    /// A checkpoint: how many entries the log holds and the hash of the newest, chained to the
    /// previous checkpoint. Whoever keeps a checkpoint can later prove entries up to `count` existed.
    public func checkpoint(count: Int64, head: String?, previous: String?, at date: Date) throws -> String {
        try sign(
            header: checkpointHeader,
            payload: [
                ("iss", .string(issuer)), ("iat", .int(Int64(date.timeIntervalSince1970))),
                ("jti", .string(RandomID.make(bytes: 16))), ("count", .int(count)),
                ("head", head.map { .string(Self.hash($0)) } ?? .null),
                ("prev", previous.map { .string(Self.hash($0)) } ?? .null),
            ])
    }

    private func sign(header: String, payload: [(String, CompactJSON.Value)]) throws -> String {
        let input = header + "." + Base64URL.encode(Data(CompactJSON.encode(.object(payload)).utf8))
        return input + "." + Base64URL.encode(try key.sign(Data(input.utf8)))
    }

    static func json(_ value: AuditEvent.Value) -> CompactJSON.Value {
        switch value {
        case .string(let text): .string(text)
        case .int(let number): .int(number)
        case .bool(let flag): .bool(flag)
        case .strings(let list): .array(list.map { .string($0) })
        case .null: .null
        }
    }
}
