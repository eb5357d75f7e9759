import Foundation
import ScopeGateCore

/// Verifies an exported audit log offline: every entry's signature against the JWKS, the header
/// (only ES256 / EdDSA, the entry type, a `kid` from the JWKS, no key material of its own), the
/// chain (`seq` increments by one from 1, `prev` is the hash of the exact previous entry), and each
/// checkpoint (signed, chained, and covered by the log: a log shorter than a checkpoint's count, or
/// whose entry at that count hashes differently, was truncated or rewritten).
public struct AuditVerifier: Sendable {
    /// The first problem found.
    public struct Failure: Error, Equatable, CustomStringConvertible, Sendable {
        /// `entry` or `checkpoint`.
        public var kind: String
        /// 1-based position in the input.
        public var position: Int
        /// The entry's `seq` when it could be read.
        public var seq: Int64?
        public var reason: String

        public var description: String {
            "\(kind) \(position)\(seq.map { " (seq \($0))" } ?? ""): \(reason)"
        }
    }

    /// What a successful verification covered.
    public struct Report: Equatable, Sendable {
        public var entries: Int
        public var checkpoints: Int

        public init(entries: Int, checkpoints: Int) {
            self.entries = entries
            self.checkpoints = checkpoints
        }
    }

    /// What every entry's payload must hold, typed strictly (a number is not a string, `true` is not 1).
    struct EntryPayload: Decodable {
        var iss: String
        var seq: Int64
        /// `nil` when the member is `null`; a missing member fails decoding.
        var prev: String?

        enum CodingKeys: String, CodingKey { case iss, iat, jti, seq, prev, event }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            iss = try container.decode(String.self, forKey: .iss)
            _ = try container.decode(Int64.self, forKey: .iat)
            _ = try container.decode(String.self, forKey: .jti)
            _ = try container.decode(String.self, forKey: .event)
            seq = try container.decode(Int64.self, forKey: .seq)
            guard container.contains(.prev) else {
                throw DecodingError.keyNotFound(CodingKeys.prev, .init(codingPath: [], debugDescription: "prev is missing"))
            }
            prev = try container.decodeIfPresent(String.self, forKey: .prev)
        }
    }

    struct CheckpointPayload: Decodable {
        var count: Int64
        var head: String?
        var prev: String?

        enum CodingKeys: String, CodingKey { case count, head, prev }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            count = try container.decode(Int64.self, forKey: .count)
            guard container.contains(.head), container.contains(.prev) else {
                throw DecodingError.keyNotFound(CodingKeys.head, .init(codingPath: [], debugDescription: "head or prev is missing"))
            }
            head = try container.decodeIfPresent(String.self, forKey: .head)
            prev = try container.decodeIfPresent(String.self, forKey: .prev)
        }
    }

    private struct Problem: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    let keys: [String: AuditPublicKey]

    public init(keys: [AuditPublicKey]) {
        self.keys = Dictionary(keys.map { ($0.kid, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public func verify(entries: [String], checkpoints: [String] = []) -> Result<Report, Failure> {
        var previous: String?
        var issuer: String?
        for (index, entry) in entries.enumerated() {
            let fail = { (reason: String, seq: Int64?) in
                Failure(kind: "entry", position: index + 1, seq: seq, reason: reason)
            }
            let payload: EntryPayload
            switch open(entry, type: AuditSigner.entryType).flatMap({ Self.decode(EntryPayload.self, $0) }) {
            case .failure(let problem): return .failure(fail(problem.reason, nil))
            case .success(let decoded): payload = decoded
            }
            guard payload.seq == Int64(index + 1) else {
                return .failure(
                    fail("seq is \(payload.seq), expected \(index + 1): an entry is missing, added or moved", payload.seq))
            }
            guard payload.prev == previous.map(AuditSigner.hash) else {
                return .failure(fail("prev does not hash the entry before it: the chain is broken", payload.seq))
            }
            guard issuer == nil || issuer == payload.iss else {
                return .failure(fail("iss differs from the log's issuer", payload.seq))
            }
            issuer = payload.iss
            previous = entry
        }
        var previousCheckpoint: String?
        for (index, checkpoint) in checkpoints.enumerated() {
            let fail = { (reason: String) in Failure(kind: "checkpoint", position: index + 1, seq: nil, reason: reason) }
            let payload: CheckpointPayload
            switch open(checkpoint, type: AuditSigner.checkpointType).flatMap({ Self.decode(CheckpointPayload.self, $0) }) {
            case .failure(let problem): return .failure(fail(problem.reason))
            case .success(let decoded): payload = decoded
            }
            guard payload.count >= 0 else { return .failure(fail("count is negative")) }
            guard payload.count <= entries.count else {
                return .failure(fail("it covers \(payload.count) entries but the log holds \(entries.count): the log was truncated"))
            }
            let head = payload.count == 0 ? nil : AuditSigner.hash(entries[Int(payload.count) - 1])
            guard payload.head == head else {
                return .failure(fail("entry \(payload.count) of the log is not the one the checkpoint signed"))
            }
            guard payload.prev == previousCheckpoint.map(AuditSigner.hash) else {
                return .failure(fail("prev does not hash the checkpoint before it"))
            }
            previousCheckpoint = checkpoint
        }
        return .success(Report(entries: entries.count, checkpoints: checkpoints.count))
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ data: Data) -> Result<T, Problem> {
        guard let value = try? JSONDecoder().decode(type, from: data) else {
            return .failure(Problem("the payload lacks a required member or has one of the wrong type"))
        }
        return .success(value)
    }

    /// Checks one compact JWS's header and signature; returns its payload's bytes.
    private func open(_ compact: String, type: String) -> Result<Data, Problem> {
        let parts = compact.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = Base64URL.decode(parts[0]), let payloadData = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2])
        else { return .failure(Problem("not a compact JWS")) }
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            return .failure(Problem("the header is not a JSON object"))
        }
        guard let alg = header["alg"] as? String, let algorithm = AuditAlgorithm(rawValue: alg) else {
            return .failure(Problem("alg \(header["alg"].map { "\($0)" } ?? "(missing)") is not allowed (only ES256 and EdDSA)"))
        }
        guard header["typ"] as? String == type else { return .failure(Problem("typ is not \(type)")) }
        for field in ["jwk", "jku", "x5u", "x5c", "crit"] where header[field] != nil {
            return .failure(Problem("the header carries \(field): keys come only from the JWKS"))
        }
        guard let kid = header["kid"] as? String, let key = keys[kid] else {
            return .failure(Problem("kid names no key in the JWKS: signed with a foreign key"))
        }
        guard key.algorithm == algorithm else { return .failure(Problem("alg does not match the key's algorithm")) }
        guard key.verify(signature, over: Data((parts[0] + "." + parts[1]).utf8)) else {
            return .failure(Problem("the signature does not verify: the entry was altered or signed by someone else"))
        }
        return .success(payloadData)
    }
}
