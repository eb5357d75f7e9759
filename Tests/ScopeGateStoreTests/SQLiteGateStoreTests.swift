import Foundation
import ScopeGateCore
import Testing

@testable import ScopeGateStore

@Suite struct SQLiteGateStoreTests {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("sg-store-\(UUID().uuidString)/gate.sqlite").path
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func draft(_ binder: String = "b1", scopes: [String] = ["orders:read"]) -> HoldDraft {
        HoldDraft(
            clientID: "app", binderHash: binder, method: .get, encodedParameters: "client_id=app&scope=\(scopes.joined(separator: "%20"))&b=\(binder)",
            requestedScopes: ScopeSet(scopes), unapproved: ScopeSet(scopes), alreadyGranted: ScopeSet([String]()))
    }

    @Test func holdsRequestsAndGrantsSurviveARestart() async throws {
        var store: SQLiteGateStore? = try SQLiteGateStore(path: path)
        let (hold, request, opened) = try await store!.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(60))
        #expect(opened)
        try await store!.setJustification(holdID: hold.id, "for the audit")
        store = nil

        let reopened = try SQLiteGateStore(path: path)
        #expect(try await reopened.hold(id: hold.id)?.justification == "for the audit")
        #expect(try await reopened.approvalRequest(id: request.id)?.state == .pending)
        let grant = Grant(clientID: "app", scope: "orders:read", approvedBy: "cli:alice", grantedAt: now, expiresAt: nil, approvalRequestID: request.id)
        _ = try await reopened.decide(request.id, Decision(outcome: .approved, actor: "cli:alice", at: now), grants: [grant])

        let again = try SQLiteGateStore(path: path)
        #expect(try await again.activeGrants(clientID: "app", among: ScopeSet(["orders:read", "x"]), at: now) == [grant])
        #expect(try await again.activeGrants(clientID: "app", among: ScopeSet(["x"]), at: now).isEmpty)
        #expect(try await again.activeGrants(clientID: "other", among: ScopeSet(["orders:read"]), at: now).isEmpty)
        #expect(try await again.approvalRequest(id: request.id)?.decision?.actor == "cli:alice")
        #expect(try await again.releasedHolds(binderHash: "b1", clientID: hold.clientID, decidedSince: now).map(\.id) == [hold.id])
        #expect(try await again.releasedHolds(binderHash: "b1", clientID: hold.clientID, decidedSince: now + 1).isEmpty)
        #expect(try await again.releasedHolds(binderHash: "b2", clientID: hold.clientID, decidedSince: now).isEmpty)
        #expect(try await again.latestDecisionCursor() == 1)
    }

    @Test func aClientIsKnownFromItsFirstApprovalRequest() async throws {
        let store = try SQLiteGateStore(path: path)
        #expect(try await store.firstRequestDate(clientID: "app") == nil)
        let first = try await store.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(60))
        _ = try await store.decide(first.request.id, Decision(outcome: .denied, actor: "x", at: now), grants: [])
        _ = try await store.openHold(draft("b2", scopes: ["b:read"]), at: now.addingTimeInterval(500), expiresAt: now.addingTimeInterval(600))
        #expect(try await store.firstRequestDate(clientID: "app") == now)
        #expect(try await store.firstRequestDate(clientID: "other") == nil)
    }

    @Test func theGrantsVersionMovesWithEveryGrantChangeFromAnyConnection() async throws {
        let store = try SQLiteGateStore(path: path)
        let start = try await store.grantsVersion()
        let (_, request, _) = try await store.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(60))
        #expect(try await store.grantsVersion() == start, "a hold is not a grant")
        let grant = Grant(clientID: "app", scope: "orders:read", approvedBy: "cli:alice", grantedAt: now, expiresAt: nil, approvalRequestID: request.id)
        _ = try await store.decide(request.id, Decision(outcome: .approved, actor: "cli:alice", at: now), grants: [grant])
        let afterGrant = try await store.grantsVersion()
        #expect(afterGrant > start)
        // Another process (the command line) revokes: this connection sees the change.
        let commandLine = try SQLiteGateStore(path: path)
        #expect(try await commandLine.revokeGrant(clientID: "app", scope: "orders:read", actor: "cli:bob", at: now))
        #expect(try await store.grantsVersion() > afterGrant)
    }

    @Test func sameQuestionAttachesToOnePendingRequest() async throws {
        let store = try SQLiteGateStore(path: path)
        let first = try await store.openHold(draft("b1"), at: now, expiresAt: now.addingTimeInterval(60))
        let second = try await store.openHold(draft("b2"), at: now, expiresAt: now.addingTimeInterval(60))
        let other = try await store.openHold(draft("b3", scopes: ["users:read"]), at: now, expiresAt: now.addingTimeInterval(60))
        #expect(first.request.id == second.request.id)
        #expect(!second.opened)
        #expect(other.request.id != first.request.id)
        _ = try await store.decide(first.request.id, Decision(outcome: .denied, actor: "x", at: now), grants: [])
        let after = try await store.openHold(draft("b4"), at: now, expiresAt: now.addingTimeInterval(60))
        #expect(after.opened, "a decided request does not collect new holds")
    }

    @Test func decisionsFromTwoConnectionsYieldOneOutcome() async throws {
        let serverSide = try SQLiteGateStore(path: path)
        let commandLine = try SQLiteGateStore(path: path)
        let (_, request, _) = try await serverSide.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(60))
        let results = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<16 {
                let store = index.isMultiple(of: 2) ? serverSide : commandLine
                group.addTask {
                    let outcome: ApprovalRequest.State = index.isMultiple(of: 3) ? .denied : .approved
                    return (try? await store.decide(request.id, Decision(outcome: outcome, actor: "a\(index)", at: now), grants: [])) != nil
                }
            }
            return await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
        #expect(results == 1)
        #expect(try await serverSide.decisionEvents(after: 0).count == 1)
    }

    /// Votes from two processes at once: each voter counts once, exactly one vote decides, and every
    /// vote and the decision are in the audit log and bump the chat messages.
    @Test func concurrentVotesFromTwoConnectionsDecideOnce() async throws {
        let serverSide = try SQLiteGateStore(path: path)
        let commandLine = try SQLiteGateStore(path: path)
        let (_, request, _) = try await serverSide.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(60))
        _ = try await serverSide.addChatMessages(approvalRequestID: request.id, platform: "slack", channels: ["C0A"], at: now)
        let quorum = Quorum(approve: 3, deny: 5)
        let outcomes = await withTaskGroup(of: String.self) { group in
            for index in 0..<12 {
                let store = index.isMultiple(of: 2) ? serverSide : commandLine
                group.addTask {
                    // Voters 0…5, each voting twice.
                    let vote = Vote(voter: "v\(index % 6)", choice: .approve, at: now)
                    do {
                        switch try await store.vote(request.id, vote, quorum: quorum, grants: []) {
                        case .counted: return "counted"
                        case .decided: return "decided"
                        }
                    } catch let error as GateError {
                        return error.code.rawValue
                    } catch {
                        return "failed"
                    }
                }
            }
            return await group.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
        }
        #expect(outcomes["decided"] == 1)
        #expect(outcomes["counted"] == 2)
        #expect((outcomes["already_voted"] ?? 0) + (outcomes["already_decided"] ?? 0) == 9)
        #expect(Set(try await serverSide.votes(approvalRequestID: request.id).map(\.voter)).count == 3)
        #expect(try await commandLine.approvalRequest(id: request.id)?.state == .approved)
        #expect(try await serverSide.decisionEvents(after: 0).count == 1)
        let message = try #require(try await serverSide.chatMessages(approvalRequestID: request.id).first)
        #expect(message.revision == 1 + 3 + 1, "each vote and the decision change what the message shows")
    }

    /// A partial approval's scopes, on the decision and on each vote, survive a restart; the grants a
    /// quorum writes are only those every approving vote approved.
    @Test func partialApprovalsAreStoredWithTheirScopes() async throws {
        var store: SQLiteGateStore? = try SQLiteGateStore(path: path)
        let scopes = ["a:read", "b:read", "c:read"]
        let (_, request, _) = try await store!.openHold(draft(scopes: scopes), at: now, expiresAt: now.addingTimeInterval(60))
        let grants = scopes.map {
            Grant(clientID: "app", scope: $0, approvedBy: "v2", grantedAt: now, expiresAt: nil, approvalRequestID: request.id)
        }
        let quorum = Quorum(approve: 2, deny: 1)
        _ = try await store!.vote(request.id, Vote(voter: "v1", choice: .approve, at: now, scopes: ScopeSet(["a:read", "b:read"])), quorum: quorum, grants: [])
        guard case .decided(let decided) = try await store!.vote(
            request.id, Vote(voter: "v2", choice: .approve, at: now + 1, scopes: ScopeSet(["b:read", "c:read"])), quorum: quorum, grants: grants)
        else {
            Issue.record("the second vote did not decide")
            return
        }
        #expect(decided.approvedScopes.tokens == ["b:read"])
        store = nil

        let reopened = try SQLiteGateStore(path: path)
        let stored = try #require(try await reopened.approvalRequest(id: request.id))
        #expect(stored.decision?.scopes?.tokens == ["b:read"])
        #expect(stored.withheldScopes.tokens == ["a:read", "c:read"])
        #expect(try await reopened.votes(approvalRequestID: request.id).map { $0.scopes?.tokens ?? [] } == [["a:read", "b:read"], ["b:read", "c:read"]])
        #expect(try await reopened.activeGrants(clientID: "app", among: ScopeSet(scopes), at: now).map(\.scope) == ["b:read"])
    }

    /// Who asks is recorded once, audited, survives a restart, and brings the request's messages up to date.
    @Test func aRequesterIsRecordedOnceAndAudited() async throws {
        var store: SQLiteGateStore? = try SQLiteGateStore(path: path)
        let (hold, request, _) = try await store!.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(60))
        _ = try await store!.addChatMessages(approvalRequestID: request.id, platform: "slack", channels: ["C0A"], at: now)
        let alice = Requester(subject: "1", email: "alice@example.com", emailVerified: true, name: "Alice", groups: ["sales"])
        #expect(try await store!.setRequester(holdID: hold.id, alice, at: now))
        #expect(try await !store!.setRequester(holdID: hold.id, Requester(subject: "2", email: nil, emailVerified: false, name: nil), at: now))
        #expect(try await store!.chatMessages(approvalRequestID: request.id).first?.revision == 2)
        store = nil
        let reopened = try SQLiteGateStore(path: path)
        #expect(try await reopened.hold(id: hold.id)?.requester == alice)
    }

    @Test func onePersonVotesOnceUnderAnyIdentity() async throws {
        let store = try SQLiteGateStore(path: path)
        let (_, request, _) = try await store.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(60))
        var slack = Vote(voter: "slack:T/U1", choice: .approve, at: now)
        slack.person = "bob@example.com"
        _ = try await store.vote(request.id, slack, quorum: Quorum(approve: 3, deny: 1), grants: [])
        var page = Vote(voter: "page:bob@example.com", choice: .approve, at: now)
        page.person = "bob@example.com"
        await #expect(throws: GateError.self) { try await store.vote(request.id, page, quorum: Quorum(approve: 3, deny: 1), grants: []) }
        #expect(try await store.votes(approvalRequestID: request.id).map(\.person) == ["bob@example.com"])
    }

    @Test func theFirstContinuationIsRecordedOnce() async throws {
        let store = try SQLiteGateStore(path: path)
        let (hold, _, _) = try await store.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(60))
        #expect(try await store.markContinued(holdID: hold.id, at: now))
        #expect(try await !store.markContinued(holdID: hold.id, at: now + 5))
        #expect(try await store.hold(id: hold.id)?.consumedAt == now)
    }

    @Test func expiringRequestsAreFoundByDeadline() async throws {
        let store = try SQLiteGateStore(path: path)
        let (_, request, _) = try await store.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(60))
        #expect(try await store.pendingRequests(expiringBy: now.addingTimeInterval(59)).isEmpty)
        #expect(try await store.pendingRequests(expiringBy: now.addingTimeInterval(60)).map(\.id) == [request.id])
    }

    @Test func aReadOnlyDatabaseFailsLoudly() async throws {
        let store = try SQLiteGateStore(path: path)
        _ = try await store.openHold(draft(), at: now, expiresAt: now.addingTimeInterval(60))
        let readOnly = try SQLiteGateStore(path: path, readOnly: true)
        await #expect(throws: (any Error).self) {
            try await readOnly.openHold(draft("b9"), at: now, expiresAt: now.addingTimeInterval(60))
        }
    }
}
