import Foundation
import GRDB
import ScopeGateCore
import Testing

@testable import ScopeGateAudit
@testable import ScopeGateStore

@Suite struct AuditKeyTests {
    @Test func thumbprintMatchesRFC8037Example() throws {
        // RFC 8037 appendix A.3: the RFC 7638 thumbprint of the example Ed25519 key.
        let key = try AuditPublicKey(jwk: ["kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"])
        #expect(key.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
    }

    @Test func encodingsAgreeWithFoundation() throws {
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let expected = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(Base64URL.encode(bytes) == expected)
            #expect(Base64URL.decode(expected) == Data(bytes))
        }
        #expect(Base64URL.decode("ab+c") == nil, "the standard alphabet is refused")
        #expect(Base64URL.decode("abc=") == nil, "padding is refused")
        let tricky = "quote \" backslash \\ newline \n tab \t bell \u{07} é 🙂"
        let json = CompactJSON.encode(.object([("k", .string(tricky)), ("n", .int(-3)), ("b", .bool(true)), ("z", .null)]))
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(parsed["k"] as? String == tricky)
        #expect(json.hasSuffix(#","n":-3,"b":true,"z":null}"#))
    }

    @Test(arguments: AuditAlgorithm.allCases)
    func privateKeysRoundTripThroughJWK(_ algorithm: AuditAlgorithm) throws {
        let key = AuditSigningKey.generate(algorithm)
        let jwk = try #require(try JSONSerialization.jsonObject(with: Data(key.privateJWK.utf8)) as? [String: Any])
        let read = try AuditSigningKey(jwk: jwk)
        #expect(read.publicKey == key.publicKey)
        let signature = try read.sign(Data("x".utf8))
        #expect(key.publicKey.verify(signature, over: Data("x".utf8)))
        #expect(!key.publicKey.verify(signature, over: Data("y".utf8)))
    }

    @Test func keyringRotationKeepsRetiredKeysAndProtectsThePrivateKey() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sg-keys-\(UUID().uuidString)")
        let keyring = AuditKeyring(directory: directory)
        let first = try keyring.generate(.es256)
        #expect(first.retired == nil)
        let second = try keyring.generate(.eddsa)
        #expect(second.retired == first.new.publicKey)
        #expect(try keyring.publicKeys().map(\.kid) == [second.new.publicKey.kid, first.new.publicKey.kid])
        #expect(try keyring.signingKey().publicKey == second.new.publicKey)
        let mode = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(AuditKeyring.signingKeyFile).path)[
            .posixPermissions] as? Int
        #expect(mode == 0o600)
    }
}

/// The audit log written by the SQLite store, verified and tampered with.
@Suite struct AuditLogTests {
    static func store(_ sealer: (any AuditSealing)? = nil) throws -> (SQLiteGateStore, AuditSigner) {
        let signer = AuditSigner(key: .generate(.es256), issuer: "https://login.example")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sg-audit-\(UUID().uuidString)/gate.sqlite").path
        return (try SQLiteGateStore(path: path, audit: sealer ?? signer), signer)
    }

    static func draft(_ client: String, _ scope: String) throws -> HoldDraft {
        HoldDraft(
            clientID: client, binderHash: String(repeating: "b", count: 64), method: .get,
            encodedParameters: "client_id=\(client)&scope=\(scope)", requestedScopes: try ScopeSet(parsing: scope),
            unapproved: try ScopeSet(parsing: scope), alreadyGranted: ScopeSet([String]()), rules: ["\(scope)=scopes[1]"],
            route: "everyone")
    }

    /// A held request approved, its hold released: five entries.
    static func flow(_ store: SQLiteGateStore, client: String = "app", scope: String = "orders:read") async throws {
        let now = Date()
        let (hold, request, _) = try await store.openHold(try draft(client, scope), at: now, expiresAt: now.addingTimeInterval(600))
        _ = try await store.decide(
            request.id, Decision(outcome: .approved, actor: "slack:T1/U1", at: now),
            grants: [Grant(clientID: client, scope: scope, approvedBy: "slack:T1/U1", grantedAt: now, expiresAt: nil, approvalRequestID: request.id)])
        _ = try await store.markContinued(holdID: hold.id, at: now)
    }

    static func entries(_ store: SQLiteGateStore) async throws -> [String] {
        try await store.auditEntries().map(\.jws)
    }

    @Test func stateChangesAreSignedChainedAndVerify() async throws {
        let (store, signer) = try Self.store()
        try await Self.flow(store)
        let rows = try await store.auditEntries()
        #expect(rows.map(\.event) == ["approval_request.opened", "hold.created", "decision", "grant.created", "hold.released"])
        #expect(rows.map(\.seq) == [1, 2, 3, 4, 5])
        let verifier = AuditVerifier(keys: [signer.key.publicKey])
        #expect(verifier.verify(entries: rows.map(\.jws)) == .success(.init(entries: 5, checkpoints: 0)))
        let payload = try Self.payload(rows[2].jws)
        #expect(payload["event"] as? String == "decision")
        #expect(payload["iss"] as? String == "https://login.example")
        #expect((payload["data"] as? [String: Any])?["actor"] as? String == "slack:T1/U1")
        #expect(payload["prev"] as? String == AuditSigner.hash(rows[1].jws))
        let header = try Self.header(rows[0].jws)
        #expect(header["typ"] as? String == "scopegate-audit+jwt")
        #expect(header["kid"] as? String == signer.key.publicKey.kid)
    }

    /// A request that needs two approvers: each vote is an entry of its own, then the decision.
    @Test func votesAreSignedAndChainedBeforeTheDecision() async throws {
        let (store, signer) = try Self.store()
        let now = Date()
        let (_, request, _) = try await store.openHold(try Self.draft("app", "orders:write"), at: now, expiresAt: now.addingTimeInterval(600))
        let quorum = Quorum(approve: 2, deny: 1)
        _ = try await store.vote(request.id, Vote(voter: "slack:T1/U1", choice: .approve, at: now), quorum: quorum, grants: [])
        _ = try await store.vote(request.id, Vote(voter: "teams:t/o2", choice: .approveOnce, at: now), quorum: quorum, grants: [])
        let rows = try await store.auditEntries()
        #expect(rows.map(\.event) == ["approval_request.opened", "hold.created", "vote", "vote", "decision"])
        #expect(AuditVerifier(keys: [signer.key.publicKey]).verify(entries: rows.map(\.jws)) == .success(.init(entries: 5, checkpoints: 0)))
        let second = try Self.payload(rows[3].jws)["data"] as? [String: Any]
        #expect(second?["voter"] as? String == "teams:t/o2")
        #expect(second?["choice"] as? String == "approve_once")
        #expect(second?["approvals"] as? Int == 2 && second?["quorum"] as? Int == 2)
        let decision = try Self.payload(rows[4].jws)["data"] as? [String: Any]
        #expect(decision?["outcome"] as? String == "approved_once")
        #expect(decision?["reason"] as? String == "approved by 2 of 2 needed: slack:T1/U1, teams:t/o2")
    }

    @Test func everyKindOfTamperingIsCaughtAndNamed() async throws {
        let (store, signer) = try Self.store()
        try await Self.flow(store)
        try await Self.flow(store, client: "other", scope: "invoices:read")
        let checkpoint = try await store.writeAuditCheckpoint(
            sign: { try signer.checkpoint(count: $0, head: $1, previous: $2, at: Date()) }, at: Date())
        let entries = try await Self.entries(store)
        let verifier = AuditVerifier(keys: [signer.key.publicKey])
        #expect(verifier.verify(entries: entries, checkpoints: [checkpoint.jws]) == .success(.init(entries: 10, checkpoints: 1)))

        func failure(_ tampered: [String], checkpoints: [String] = []) -> AuditVerifier.Failure? {
            if case .failure(let failure) = verifier.verify(entries: tampered, checkpoints: checkpoints) { return failure }
            return nil
        }
        // A payload changed (the actor), its signature kept.
        var edited = entries
        edited[2] = try Self.replacingPayload(of: entries[2]) { $0.replacingOccurrences(of: "slack:T1/U1", with: "slack:T1/U9") }
        #expect(failure(edited)?.position == 3)
        #expect(failure(edited)?.reason.contains("signature") == true)
        // An entry deleted.
        var deleted = entries
        deleted.remove(at: 4)
        #expect(failure(deleted)?.position == 5)
        #expect(failure(deleted)?.reason.contains("seq") == true)
        // Two entries swapped.
        var swapped = entries
        swapped.swapAt(6, 7)
        #expect(failure(swapped)?.position == 7)
        // The newest entries dropped: only a checkpoint can tell.
        let truncated = Array(entries.prefix(8))
        #expect(failure(truncated) == nil)
        #expect(failure(truncated, checkpoints: [checkpoint.jws])?.kind == "checkpoint")
        #expect(failure(truncated, checkpoints: [checkpoint.jws])?.reason.contains("truncated") == true)
        // An entry re-signed with a foreign key, under its own kid and under the real one.
        let foreign = AuditSigner(key: .generate(.es256), issuer: "https://login.example")
        var resigned = entries
        resigned[3] = try foreign.seal(AuditEvent("grant.created", clientID: "app"), seq: 4, previous: entries[2], at: Date())
        #expect(failure(resigned)?.position == 4)
        #expect(failure(resigned)?.reason.contains("foreign") == true)
        var forgedKid = entries
        forgedKid[3] = try Self.replacingHeader(of: resigned[3], signedBy: foreign) {
            $0.replacingOccurrences(of: foreign.key.publicKey.kid, with: signer.key.publicKey.kid)
        }
        #expect(failure(forgedKid)?.position == 4)
        #expect(failure(forgedKid)?.reason.contains("signature") == true)
        // alg none.
        var unsigned = entries
        let parts = entries[1].split(separator: ".")
        let none = Base64URL.encode(Data(#"{"alg":"none","kid":"\#(signer.key.publicKey.kid)","typ":"scopegate-audit+jwt"}"#.utf8))
        unsigned[1] = none + "." + parts[1] + "."
        #expect(failure(unsigned)?.position == 2)
        #expect(failure(unsigned)?.reason.contains("not allowed") == true)
    }

    @Test func theTableRefusesUpdatesAndDeletes() async throws {
        let (store, _) = try Self.store()
        try await Self.flow(store)
        await #expect(throws: (any Error).self) {
            try await store.writer.write { db in try db.execute(sql: "UPDATE audit_entry SET event = 'x' WHERE seq = 1") }
        }
        await #expect(throws: (any Error).self) {
            try await store.writer.write { db in try db.execute(sql: "DELETE FROM audit_entry WHERE seq = 5") }
        }
        #expect(try await store.auditEntries().count == 5)
    }

    struct BrokenSealer: AuditSealing {
        func seal(_ event: AuditEvent, seq: Int64, previous: String?, at date: Date) throws -> String {
            throw AuditKeyError("the key is gone")
        }
    }

    @Test func aDecisionWithoutItsAuditEntryDoesNotHappen() async throws {
        let (good, _) = try Self.store()
        let now = Date()
        let (hold, request, _) = try await good.openHold(try Self.draft("app", "orders:read"), at: now, expiresAt: now.addingTimeInterval(600))
        // The same file, opened by a process whose signing fails.
        let broken = try SQLiteGateStore(path: good.writer.path, audit: BrokenSealer())
        await #expect(throws: GateError.self) {
            _ = try await broken.decide(
                request.id, Decision(outcome: .approved, actor: "cli:alice", at: now),
                grants: [Grant(clientID: "app", scope: "orders:read", approvedBy: "cli:alice", grantedAt: now, expiresAt: nil, approvalRequestID: request.id)])
        }
        #expect(try await good.approvalRequest(id: request.id)?.state == .pending)
        #expect(try await good.activeGrants(clientID: "app", among: try ScopeSet(parsing: "orders:read"), at: now).isEmpty)
        await #expect(throws: GateError.self) { _ = try await broken.markContinued(holdID: hold.id, at: now) }
        #expect(try await good.hold(id: hold.id)?.consumedAt == nil)
    }

    @Test func concurrentWritersShareCommitsAndKeepOneChain() async throws {
        let (store, signer) = try Self.store()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<100 {
                group.addTask { try await store.recordAudit(AuditEvent("request.refused", [("n", .int(Int64(index)))]), at: Date()) }
            }
            try await group.waitForAll()
        }
        let entries = try await Self.entries(store)
        #expect(entries.count == 100)
        #expect(AuditVerifier(keys: [signer.key.publicKey]).verify(entries: entries) == .success(.init(entries: 100, checkpoints: 0)))
    }

    // MARK: Helpers

    static func decode(_ part: Substring) throws -> [String: Any] {
        let data = try #require(Base64URL.decode(part))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func payload(_ jws: String) throws -> [String: Any] { try decode(jws.split(separator: ".")[1]) }
    static func header(_ jws: String) throws -> [String: Any] { try decode(jws.split(separator: ".")[0]) }

    static func replacingPayload(of jws: String, _ change: (String) -> String) throws -> String {
        let parts = jws.split(separator: ".")
        let payload = String(decoding: try #require(Base64URL.decode(parts[1])), as: UTF8.self)
        return parts[0] + "." + Base64URL.encode(Data(change(payload).utf8)) + "." + parts[2]
    }

    /// Changes the header and signs again with `signer`'s key.
    static func replacingHeader(of jws: String, signedBy signer: AuditSigner, _ change: (String) -> String) throws -> String {
        let parts = jws.split(separator: ".")
        let header = String(decoding: try #require(Base64URL.decode(parts[0])), as: UTF8.self)
        let input = Base64URL.encode(Data(change(header).utf8)) + "." + parts[1]
        return input + "." + Base64URL.encode(try signer.key.sign(Data(input.utf8)))
    }
}

@Suite struct GrantLapseTests {
    @Test func aLapsedGrantIsRecordedOnce() async throws {
        let (store, signer) = try AuditLogTests.store()
        let now = Date()
        let draft = try AuditLogTests.draft("app", "orders:write")
        let (_, request, _) = try await store.openHold(draft, at: now, expiresAt: now.addingTimeInterval(600))
        _ = try await store.decide(
            request.id, Decision(outcome: .approved, actor: "cli:alice", at: now),
            grants: [
                Grant(
                    clientID: "app", scope: "orders:write", approvedBy: "cli:alice", grantedAt: now,
                    expiresAt: now.addingTimeInterval(60), approvalRequestID: request.id)
            ])
        #expect(try await store.recordLapsedGrants(at: now.addingTimeInterval(30)) == 0)
        #expect(try await store.recordLapsedGrants(at: now.addingTimeInterval(61)) == 1)
        #expect(try await store.recordLapsedGrants(at: now.addingTimeInterval(120)) == 0)
        let rows = try await store.auditEntries()
        #expect(rows.last?.event == "grant.expired")
        #expect(AuditVerifier(keys: [signer.key.publicKey]).verify(entries: rows.map(\.jws)) == .success(.init(entries: rows.count, checkpoints: 0)))
    }
}

/// The audit write fails the way disks and files fail; the state change must not happen.
@Suite struct AuditFailClosedTests {
    @Test func aReadOnlyDatabaseFileTakesNoDecision() async throws {
        let (store, signer) = try AuditLogTests.store()
        let now = Date()
        let (_, request, _) = try await store.openHold(try AuditLogTests.draft("app", "orders:read"), at: now, expiresAt: now.addingTimeInterval(600))
        let readOnly = try SQLiteGateStore(path: store.writer.path, readOnly: true, audit: signer)
        await #expect(throws: (any Error).self) {
            _ = try await readOnly.decide(request.id, Decision(outcome: .approved, actor: "cli:alice", at: now), grants: [])
        }
        #expect(try await store.approvalRequest(id: request.id)?.state == .pending)
    }

    @Test func aFullDiskTakesNoDecisionAndLosesNothing() async throws {
        let (store, signer) = try AuditLogTests.store()
        let now = Date()
        let (_, request, _) = try await store.openHold(try AuditLogTests.draft("app", "orders:read"), at: now, expiresAt: now.addingTimeInterval(600))
        let before = try await store.auditEntries().count
        // No page beyond those in use: the next write that needs one fails with SQLITE_FULL.
        try await store.writer.write { db in
            let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            _ = try Int.fetchOne(db, sql: "PRAGMA max_page_count = \(pages)")
        }
        let big = String(repeating: "x", count: 200_000)
        await #expect(throws: (any Error).self) {
            _ = try await store.decide(request.id, Decision(outcome: .approved, actor: "cli:alice", at: now, reason: big), grants: [])
        }
        #expect(try await store.approvalRequest(id: request.id)?.state == .pending)
        #expect(try await store.auditEntries().count == before)
        try await store.writer.write { db in _ = try Int.fetchOne(db, sql: "PRAGMA max_page_count = 1073741823") }
        _ = try await store.decide(request.id, Decision(outcome: .approved, actor: "cli:alice", at: now), grants: [])
        let entries = try await store.auditEntries().map(\.jws)
        #expect(AuditVerifier(keys: [signer.key.publicKey]).verify(entries: entries) == .success(.init(entries: entries.count, checkpoints: 0)))
    }
}
