import Foundation
import Logging
import PostgresNIO
import ScopeGateAudit
import ScopeGateCore
import Testing

@testable import ScopeGateStore

/// The stores ScopeGate runs on, each on a database of its own: a SQLite file, and a PostgreSQL
/// database made for the test on the server `SCOPEGATE_TEST_POSTGRES_URL` names
/// (`scripts/start-test-postgres.sh` starts one; `scripts/test.sh` always does).
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres

    var testDescription: String { rawValue }

    static var baseURL: String? { ProcessInfo.processInfo.environment["SCOPEGATE_TEST_POSTGRES_URL"] }

    /// The kinds this run can test: PostgreSQL only where a server was started for the tests.
    static var available: [StoreKind] { baseURL == nil ? [.sqlite] : allCases }

    /// What a test needs of a store, whichever it is.
    typealias Store = GateStore & ChatOutboxStore

    /// A new, empty store, sealing its audit entries with `signer`; and a second handle on the same
    /// database (another process, another replica).
    func make(signer: AuditSigner) async throws -> (Store, @Sendable () async throws -> Store) {
        switch self {
        case .sqlite:
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("sg-conf-\(UUID().uuidString)/gate.sqlite").path
            return (try SQLiteGateStore(path: path, audit: signer), { try SQLiteGateStore(path: path, audit: signer) })
        case .postgres:
            let url = try await Self.freshDatabase()
            return (try await PostgresGateStore(url: url, audit: signer), { try await PostgresGateStore(url: url, audit: signer) })
        }
    }

    /// A database of its own on the test server; its URL.
    static func freshDatabase() async throws -> String {
        guard let base = baseURL, var components = URLComponents(string: base) else {
            throw GateError(.invalidConfiguration, "SCOPEGATE_TEST_POSTGRES_URL is not set")
        }
        let name = "sg_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        let client = PostgresClient(configuration: try PostgresGateStore.configuration(base), backgroundLogger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
            group.cancelAll()
        }
        components.path = "/" + name
        return components.string!
    }

    /// The entries of the audit log, whichever store keeps it.
    static func auditEntries(_ store: Store) async throws -> [AuditLogRow] {
        if let sqlite = store as? SQLiteGateStore { return try await sqlite.auditEntries() }
        if let postgres = store as? PostgresGateStore { return try await postgres.auditEntries() }
        return []
    }
}

@Suite struct GateStoreConformanceTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let signer = AuditSigner(key: .generate(.es256), issuer: "https://login.example")

    func draft(_ binder: String = "b1", client: String = "app", scopes: [String] = ["orders:read"]) -> HoldDraft {
        HoldDraft(
            clientID: client, binderHash: binder, method: .get, encodedParameters: "client_id=\(client)&scope=\(scopes.joined(separator: "%20"))&b=\(binder)",
            requestedScopes: ScopeSet(scopes), unapproved: ScopeSet(scopes), alreadyGranted: ScopeSet([String]()), rules: ["r"], route: "everyone")
    }

    func grant(_ scope: String, request: String, expires: Date? = nil, client: String = "app") -> Grant {
        Grant(clientID: client, scope: scope, approvedBy: "cli:alice", grantedAt: now, expiresAt: expires, approvalRequestID: request)
    }

    func verify(_ store: StoreKind.Store) async throws {
        let entries = try await StoreKind.auditEntries(store).map(\.jws)
        #expect(!entries.isEmpty)
        #expect(AuditVerifier(keys: [signer.key.publicKey]).verify(entries: entries) == .success(.init(entries: entries.count, checkpoints: 0)))
    }

    @Test(arguments: StoreKind.available)
    func oneQuestionIsOnePendingRequestAndEveryHoldIsKept(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make(signer: signer)
        let first = try await store.openHold(draft("b1"), at: now, expiresAt: now.addingTimeInterval(600))
        let second = try await store.openHold(draft("b2"), at: now.addingTimeInterval(1), expiresAt: now.addingTimeInterval(600))
        #expect(first.opened && !second.opened)
        #expect(first.request.id == second.request.id)
        #expect(try await store.holds(approvalRequestID: first.request.id).map(\.binderHash) == ["b1", "b2"])
        #expect(try await store.hold(id: second.hold.id)?.encodedParameters == draft("b2").encodedParameters)
        #expect(try await store.holds(binderPrefix: "b").count == 2)
        #expect(try await store.holds(binderPrefix: "b_").isEmpty, "a prefix is matched literally, never as a pattern")
        #expect(try await store.firstRequestDate(clientID: "app") == now)
        #expect(try await store.approvalRequests(states: [.pending]).map(\.id) == [first.request.id])
        #expect(try await store.pendingRequests(expiringBy: now.addingTimeInterval(600)).count == 1)
        #expect(try await store.pendingRequests(expiringBy: now.addingTimeInterval(599)).isEmpty)
        try await verify(store)
    }

    @Test(arguments: StoreKind.available)
    func ofConcurrentDecisionsFromTwoProcessesExactlyOneStands(_ kind: StoreKind) async throws {
        let (store, another) = try await kind.make(signer: signer)
        let other = try await another()
        let opened = try await store.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(600))
        let versionBefore = try await store.grantsVersion()
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<8 {
                let target = index.isMultiple(of: 2) ? store : other
                group.addTask {
                    let outcome: ApprovalRequest.State = index.isMultiple(of: 3) ? .denied : .approved
                    let grants = outcome == .approved ? [self.grant("orders:read", request: opened.request.id)] : []
                    do {
                        _ = try await target.decide(
                            opened.request.id, Decision(outcome: outcome, actor: "cli:\(index)", at: self.now), grants: grants)
                        return true
                    } catch {
                        return false
                    }
                }
            }
            var outcomes: [Bool] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        #expect(outcomes.filter { $0 }.count == 1)
        let decided = try #require(try await store.approvalRequest(id: opened.request.id))
        #expect(decided.state != .pending)
        #expect(try await store.decisionEvents(after: 0).map(\.approvalRequestID) == [opened.request.id])
        #expect(try await store.latestDecisionCursor() > 0)
        if decided.state == .approved {
            #expect(try await store.activeGrants(clientID: "app", among: ScopeSet(["orders:read"]), at: now).count == 1)
            #expect(try await store.grantsVersion() != versionBefore)
        }
        do {
            _ = try await store.decide(opened.request.id, Decision(outcome: .denied, actor: "late", at: now), grants: [])
            Issue.record("a second decision was accepted")
        } catch {
            #expect((error as? GateError)?.code == .alreadyDecided)
        }
        try await verify(store)
    }

    @Test(arguments: StoreKind.available)
    func votesCountOncePerVoterAndPersonAndTheLastOneNeededDecides(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make(signer: signer)
        let opened = try await store.openHold(draft(scopes: ["orders:write"]), at: now, expiresAt: now.addingTimeInterval(600))
        let quorum = Quorum(approve: 2, deny: 1)
        let grants = [grant("orders:write", request: opened.request.id)]
        var alice = Vote(voter: "slack:T/U1", choice: .approve, at: now)
        alice.person = "alice@example.com"
        guard case .counted(_, let votes) = try await store.vote(opened.request.id, alice, quorum: quorum, grants: grants) else {
            Issue.record("the first vote decided")
            return
        }
        #expect(votes.count == 1)
        for repeated in [alice, { var other = Vote(voter: "teams:alice", choice: .approve, at: now); other.person = "alice@example.com"; return other }()] {
            do {
                _ = try await store.vote(opened.request.id, repeated, quorum: quorum, grants: grants)
                Issue.record("a repeated vote counted")
            } catch {
                #expect((error as? GateError)?.code == .alreadyVoted)
            }
        }
        guard case .decided(let decided) = try await store.vote(
            opened.request.id, Vote(voter: "slack:T/U2", choice: .approve, at: now.addingTimeInterval(1)), quorum: quorum, grants: grants)
        else {
            Issue.record("the second approval did not decide")
            return
        }
        #expect(decided.state == .approved)
        #expect(try await store.votes(approvalRequestID: opened.request.id).map(\.voter) == ["slack:T/U1", "slack:T/U2"])
        #expect(try await store.activeGrants(clientID: "app", among: ScopeSet(["orders:write"]), at: now).count == 1)
        try await verify(store)
    }

    @Test(arguments: StoreKind.available)
    func grantsExpireAreRevokedAndTheirLapseIsRecordedOnce(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make(signer: signer)
        let opened = try await store.openHold(draft(scopes: ["a:read", "b:read"]), at: now, expiresAt: now.addingTimeInterval(600))
        _ = try await store.decide(
            opened.request.id, Decision(outcome: .approved, actor: "cli:alice", at: now),
            grants: [grant("a:read", request: opened.request.id, expires: now.addingTimeInterval(60)), grant("b:read", request: opened.request.id)])
        let both = ScopeSet(["a:read", "b:read"])
        #expect(Set(try await store.activeGrants(clientID: "app", among: both, at: now).map(\.scope)) == ["a:read", "b:read"])
        #expect(try await store.activeGrants(clientID: "app", among: both, at: now.addingTimeInterval(61)).map(\.scope) == ["b:read"])
        #expect(try await store.allActiveGrants(at: now).count == 2)
        #expect(try await store.recordLapsedGrants(at: now.addingTimeInterval(61)) == 1)
        #expect(try await store.recordLapsedGrants(at: now.addingTimeInterval(62)) == 0)
        #expect(try await store.revokeGrant(clientID: "app", scope: "b:read", actor: "admin:ops", at: now))
        #expect(try await !store.revokeGrant(clientID: "app", scope: "b:read", actor: "admin:ops", at: now))
        let events = try await StoreKind.auditEntries(store).map(\.event)
        #expect(events.filter { $0 == "grant.expired" }.count == 1 && events.filter { $0 == "grant.revoked" }.count == 1)
        try await verify(store)
    }

    @Test(arguments: StoreKind.available)
    func holdsAreAnsweredOnceAndTheirRequesterSetOnce(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make(signer: signer)
        let opened = try await store.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(600))
        let requester = Requester(subject: "u1", email: "alice@example.com", emailVerified: true, name: "Alice", groups: ["eng"])
        #expect(try await store.setRequester(holdID: opened.hold.id, requester, at: now))
        #expect(try await !store.setRequester(holdID: opened.hold.id, requester, at: now))
        #expect(try await store.hold(id: opened.hold.id)?.requester?.groups == ["eng"])
        _ = try await store.decide(opened.request.id, Decision(outcome: .approvedOnce, actor: "cli:alice", at: now), grants: [])
        #expect(try await store.releasedHolds(binderHash: "b1", clientID: "app", decidedSince: now).map(\.id) == [opened.hold.id])
        #expect(try await store.releasedHolds(binderHash: "b1", clientID: "app", decidedSince: now.addingTimeInterval(1)).isEmpty)
        #expect(try await store.markContinued(holdID: opened.hold.id, at: now))
        #expect(try await !store.markContinued(holdID: opened.hold.id, at: now))
        #expect(try await !store.markRejected(holdID: opened.hold.id, at: now))
        #expect(try await store.hold(id: opened.hold.id)?.consumedAt == now)
        try await verify(store)
    }

    @Test(arguments: StoreKind.available)
    func theOutboxPostsEachMessageAndShowsEveryChange(_ kind: StoreKind) async throws {
        let (store, _) = try await kind.make(signer: signer)
        let opened = try await store.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(600))
        #expect(try await store.requestsAwaitingMessage(platform: "slack").map(\.id) == [opened.request.id])
        #expect(try await store.addChatMessages(approvalRequestID: opened.request.id, platform: "slack", channels: ["C1", "U1"], at: now))
        #expect(try await !store.addChatMessages(approvalRequestID: opened.request.id, platform: "slack", channels: ["C1"], at: now))
        #expect(try await store.requestsAwaitingMessage(platform: "slack").isEmpty)
        let due = try await store.dueChatMessages(platform: "slack", at: now, limit: 10)
        #expect(due.map(\.channel) == ["C1", "U1"])
        for message in due {
            try await store.chatMessageDelivered(message, messageID: "ts-\(message.channel)", postedChannel: message.channel, revision: message.revision, at: now)
        }
        #expect(try await store.dueChatMessages(platform: "slack", at: now.addingTimeInterval(120), limit: 10).isEmpty)
        // A justification and a decision change what the messages show: they are due again.
        try await store.setJustification(holdID: opened.hold.id, "quarterly export")
        let updates = try await store.dueChatMessages(platform: "slack", at: now.addingTimeInterval(120), limit: 10)
        #expect(updates.count == 2 && updates.allSatisfy { $0.messageID != nil && $0.deliveredRevision < $0.revision })
        try await store.chatMessageFailed(updates[0], error: "channel_not_found", permanent: true, retryAt: now, at: now)
        try await store.chatMessageFailed(updates[1], error: "http_503", permanent: false, retryAt: now.addingTimeInterval(300), at: now)
        #expect(try await store.dueChatMessages(platform: "slack", at: now.addingTimeInterval(299), limit: 10).isEmpty)
        #expect(try await store.dueChatMessages(platform: "slack", at: now.addingTimeInterval(301), limit: 10).map(\.channel) == ["U1"])
        #expect(try await store.chatMessages(approvalRequestID: opened.request.id).first { $0.channel == "C1" }?.failedPermanently == true)
        #expect(try await store.firstSeenInteraction(platform: "slack", id: "trigger-1", at: now))
        #expect(try await !store.firstSeenInteraction(platform: "slack", id: "trigger-1", at: now))
        #expect(try await store.escalate(opened.request.id, to: "leads", channels: ["slack": ["C2"]], at: now))
        #expect(try await !store.escalate(opened.request.id, to: "leads", channels: ["slack": ["C2"]], at: now))
        #expect(try await store.markReminded(opened.request.id, at: now))
        #expect(try await !store.markReminded(opened.request.id, at: now))
        #expect(try await store.chatMessages(approvalRequestID: opened.request.id).map(\.channel).sorted() == ["C1", "C2", "U1"])
        try await verify(store)
    }

    /// A reader of the log (owners' notices, revocations at the IdP) acts in one process at a time
    /// where several share the store; its place moves only forward.
    @Test(arguments: StoreKind.available)
    func oneProcessAtATimeReadsTheLogForAReader(_ kind: StoreKind) async throws {
        let (store, another) = try await kind.make(signer: signer)
        let other = try await another()
        let audited = try #require(store as? any AuditLogStore)
        let second = try #require(other as? any AuditLogStore)
        _ = try await store.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(600))
        let start = try #require(try await audited.claimAuditReader("slack", until: now.addingTimeInterval(30), at: now))
        #expect(start == 2, "a new reader starts at the newest entry")
        try await audited.advanceAuditReadCursor("slack", to: 5)
        try await audited.advanceAuditReadCursor("slack", to: 3)
        if audited.sharedByProcesses {
            #expect(try await second.claimAuditReader("slack", until: now.addingTimeInterval(60), at: now.addingTimeInterval(10)) == nil)
            #expect(try await audited.claimAuditReader("slack", until: now.addingTimeInterval(40), at: now.addingTimeInterval(10)) == 5)
            #expect(try await second.claimAuditReader("slack", until: now.addingTimeInterval(90), at: now.addingTimeInterval(41)) == 5)
            #expect(try await audited.claimAuditReader("slack", until: now.addingTimeInterval(90), at: now.addingTimeInterval(42)) == nil)
        } else {
            #expect(try await second.claimAuditReader("slack", until: now.addingTimeInterval(60), at: now.addingTimeInterval(10)) == 5)
        }
    }

    /// Two processes writing at once keep one audit chain: every entry follows the one before, none
    /// is lost and none forks.
    @Test(arguments: StoreKind.available)
    func concurrentWritersFromTwoProcessesKeepOneChain(_ kind: StoreKind) async throws {
        let (store, another) = try await kind.make(signer: signer)
        let other = try await another()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<24 {
                let target = index.isMultiple(of: 2) ? store : other
                group.addTask {
                    let opened = try await target.openHold(
                        self.draft("b\(index)", client: "app\(index % 6)", scopes: ["s\(index):read"]), at: self.now,
                        expiresAt: self.now.addingTimeInterval(600))
                    _ = try await target.decide(
                        opened.request.id, Decision(outcome: .approved, actor: "cli:\(index)", at: self.now),
                        grants: [self.grant("s\(index):read", request: opened.request.id, client: "app\(index % 6)")])
                }
            }
            try await group.waitForAll()
        }
        let entries = try await StoreKind.auditEntries(store)
        #expect(entries.map(\.seq) == Array(1...Int64(entries.count)))
        #expect(entries.count == 24 * 4, "opened, hold, decision and grant for each")
        try await verify(store)
        #expect(try await store.decisionEvents(after: 0).count == 24)
    }
}

/// What only replicas need: limits on new holds counted together, and short-lived shared state.
@Suite struct PostgresSharedStateTests {
    @Test(.enabled(if: StoreKind.baseURL != nil))
    func newHoldsAreCountedTogetherAcrossProcessesPerMinute() async throws {
        let url = try await StoreKind.freshDatabase()
        let first = try await PostgresGateStore(url: url)
        let second = try await PostgresGateStore(url: url)
        let minute = Date(timeIntervalSince1970: 1_800_000_000)
        let limits = HoldLimits(.init(perSource: 2, perClient: 3, total: 4), shared: first)
        let other = HoldLimits(.init(perSource: 2, perClient: 3, total: 4), shared: second)
        #expect(try await limits.admit(clientID: "a", source: "1.1.1.1", at: minute))
        #expect(try await other.admit(clientID: "a", source: "1.1.1.1", at: minute.addingTimeInterval(10)))
        #expect(try await !limits.admit(clientID: "a", source: "1.1.1.1", at: minute.addingTimeInterval(20)), "per source, across both")
        #expect(try await other.admit(clientID: "a", source: "2.2.2.2", at: minute.addingTimeInterval(30)))
        #expect(try await !limits.admit(clientID: "a", source: "3.3.3.3", at: minute.addingTimeInterval(40)), "per client")
        #expect(try await other.admit(clientID: "b", source: "3.3.3.3", at: minute.addingTimeInterval(50)))
        #expect(try await !limits.admit(clientID: "c", source: "4.4.4.4", at: minute.addingTimeInterval(55)), "in all")
        #expect(try await limits.admit(clientID: "a", source: "1.1.1.1", at: minute.addingTimeInterval(61)), "a new minute")
    }

    @Test(.enabled(if: StoreKind.baseURL != nil))
    func sharedEntriesAreReadByKindAndHashUntilTheyExpire() async throws {
        let url = try await StoreKind.freshDatabase()
        let store = try await PostgresGateStore(url: url)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        try await store.putShared(kind: "code", keyHash: "abc", value: "{}", expiresAt: now.addingTimeInterval(600))
        #expect(try await store.shared(kind: "code", keyHash: "abc", at: now) == "{}")
        #expect(try await store.shared(kind: "par", keyHash: "abc", at: now) == nil)
        #expect(try await store.shared(kind: "code", keyHash: "abc", at: now.addingTimeInterval(601)) == nil)
    }
}

@Suite struct PostgresAvailabilityTests {
    /// The PostgreSQL half of the store tests must run in CI: a server that did not start fails here,
    /// not silently.
    @Test func thePostgresStoreIsTestedInCI() {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            #expect(StoreKind.baseURL != nil, "scripts/test.sh starts PostgreSQL and sets SCOPEGATE_TEST_POSTGRES_URL")
        }
    }

    /// A database that refuses ScopeGate is a store failure whose message names the failure, never
    /// the credentials.
    @Test(.enabled(if: StoreKind.baseURL != nil))
    func aRefusedConnectionFailsWithoutTheCredentials() async throws {
        var url = try #require(URLComponents(string: StoreKind.baseURL!))
        url.password = "wrong-password-0123456789"
        do {
            _ = try await PostgresGateStore(url: url.string!)
            Issue.record("the store opened with a wrong password")
        } catch let error as GateError {
            #expect(error.code == .storeFailure)
            #expect(!error.message.contains("wrong-password-0123456789") && error.message.hasPrefix("PostgreSQL"), "\(error.message)")
        }
    }

    @Test func urlsAreReadAsPostgresDocumentsThem() throws {
        #expect(throws: GateError.self) { try PostgresGateStore.configuration("mysql://u@h/db") }
        #expect(throws: GateError.self) { try PostgresGateStore.configuration("postgres://h/db") }
        #expect(throws: GateError.self) { try PostgresGateStore.configuration("postgres://u@h/db?sslmode=allow") }
        let remote = try PostgresGateStore.configuration("postgres://scope%40gate:p%2Fss@db.internal:6543/scopegate")
        #expect(remote.username == "scope@gate" && remote.password == "p/ss" && remote.database == "scopegate")
        #expect(remote.port == 6543)
    }
}
