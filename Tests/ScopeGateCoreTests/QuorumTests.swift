import Foundation
import Logging
import Testing

@testable import ScopeGateCore

/// Tiers that need several approvers: each approver's vote counts once, the last vote needed decides,
/// one deny decides unless the tier says otherwise, and an approval for once among the votes makes the
/// decision an approval for once.
@Suite struct QuorumTests {
    let clock = TestClock()
    let store = InMemoryGateStore()
    let record = RecordingObserver()

    func service(quorum: Int, denyQuorum: Int = 1) -> GateService {
        var policy = PolicyTests.policy()
        policy.tiers["elevated"] = .init(name: "elevated", grantLifetime: .seconds(3600), quorum: quorum, denyQuorum: denyQuorum)
        return GateService(policy: policy, store: store, observer: Observer(record: record), logger: Logger(label: "test"), now: { [clock] in clock.now })
    }

    func held(_ service: GateService, state: String = "s1") async throws -> ApprovalRequest {
        let request = try AuthorizationRequest(
            method: .get,
            query: Substring("response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=\(state)&scope=orders:read"))
        guard case .held(_, let approval) = try await service.admit(request, binderHash: "b1") else {
            throw GateError(.invalidRequest, "expected a hold")
        }
        return approval
    }

    @Test func theSecondDistinctApprovalDecides() async throws {
        let service = service(quorum: 2)
        let approval = try await held(service)
        let first = try await service.approve(approval.id, actor: "slack:T/U1", once: false)
        #expect(first.state == .pending)
        #expect(record.decided.withLock { $0 }.isEmpty)
        #expect(try await store.allActiveGrants(at: clock.now).isEmpty, "one vote grants nothing")
        await #expect(throws: GateError.self) { try await service.approve(approval.id, actor: "slack:T/U1", once: false) }
        do {
            try await service.approve(approval.id, actor: "slack:T/U1", once: true)
        } catch {
            #expect(error.code == .alreadyVoted, "the same approver again counts for nothing")
        }
        let second = try await service.approve(approval.id, actor: "teams:t/o2", once: false)
        #expect(second.state == .approved)
        #expect(second.decision?.actor == "teams:t/o2")
        #expect(second.decision?.reason == "approved by 2 of 2 needed: slack:T/U1, teams:t/o2")
        #expect(try await store.allActiveGrants(at: clock.now).map(\.scope) == ["orders:read"])
        #expect(try await store.votes(approvalRequestID: approval.id).map(\.voter) == ["slack:T/U1", "teams:t/o2"])
        #expect(record.decided.withLock { $0 } == [approval.id])
    }

    @Test func anApprovalForOnceAmongTheVotesGrantsNothingStanding() async throws {
        let service = service(quorum: 2)
        let approval = try await held(service)
        try await service.approve(approval.id, actor: "cli:a", once: true)
        let decided = try await service.approve(approval.id, actor: "cli:b", once: false)
        #expect(decided.state == .approvedOnce)
        #expect(try await store.allActiveGrants(at: clock.now).isEmpty)
    }

    @Test func oneDenyDecidesUnlessTheTierNeedsMore() async throws {
        let single = service(quorum: 3)
        let approval = try await held(single)
        try await single.approve(approval.id, actor: "cli:a", once: false)
        #expect(try await single.deny(approval.id, actor: "cli:b").state == .denied)

        let strict = service(quorum: 3, denyQuorum: 2)
        let second = try await held(strict, state: "s2")
        #expect(second.id != approval.id)
        #expect(try await strict.deny(second.id, actor: "cli:a").state == .pending)
        #expect(try await strict.approve(second.id, actor: "cli:b", once: false).state == .pending)
        let decided = try await strict.deny(second.id, actor: "cli:c")
        #expect(decided.state == .denied)
        #expect(decided.decision?.reason == "denied by 2 of 2 needed: cli:a, cli:c")
    }

    @Test func aDecidedRequestTakesNoMoreVotes() async throws {
        let service = service(quorum: 2)
        let approval = try await held(service)
        try await service.deny(approval.id, actor: "cli:a")
        do {
            try await service.approve(approval.id, actor: "cli:b", once: false)
            Issue.record("a vote on a denied request was counted")
        } catch {
            #expect(error.code == .alreadyDecided)
        }
        #expect(try await store.votes(approvalRequestID: approval.id).map(\.voter) == ["cli:a"])
    }

    @Test(arguments: [
        (Quorum(approve: 2, deny: 1), ["a+", "b+"], ApprovalRequest.State.approved),
        (Quorum(approve: 2, deny: 1), ["a+"], nil),
        (Quorum(approve: 2, deny: 1), ["a+", "b-"], ApprovalRequest.State.denied),
        (Quorum(approve: 2, deny: 2), ["a+", "b-"], nil),
        (Quorum(approve: 3, deny: 2), ["a-", "b+", "c-"], ApprovalRequest.State.denied),
        (Quorum(approve: 2, deny: 2), ["a1", "b+"], ApprovalRequest.State.approvedOnce),
        (Quorum(approve: 1, deny: 1), ["a1"], ApprovalRequest.State.approvedOnce),
    ] as [(Quorum, [String], ApprovalRequest.State?)])
    func theTallyDecidesAsTheTierSays(quorum: Quorum, votes: [String], expected: ApprovalRequest.State?) {
        let cast = votes.enumerated().map { index, vote in
            Vote(
                voter: String(vote.first!),
                choice: vote.last == "+" ? .approve : vote.last == "1" ? .approveOnce : .deny,
                at: Date(timeIntervalSince1970: Double(index)))
        }
        #expect(quorum.decision(of: cast)?.outcome == expected)
        #expect(quorum.decision(of: cast)?.actor == (expected == nil ? nil : cast.last?.voter))
    }
}

/// A tier can allow only standing approvals, or only approvals for once.
@Suite struct TierApprovalKindsTests {
    @Test func aTierThatApprovesOnceOnlyRefusesStandingGrants() async throws {
        let clock = TestClock()
        let store = InMemoryGateStore()
        var policy = PolicyTests.policy()
        var elevated = Policy.Tier(name: "elevated", grantLifetime: .seconds(3600))
        elevated.allowsStanding = false
        policy.tiers["elevated"] = elevated
        let service = GateService(policy: policy, store: store, observer: GateObservers([]), logger: Logger(label: "test"), now: { clock.now })
        let request = try AuthorizationRequest(
            method: .get,
            query: Substring("response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=s&scope=orders:read"))
        guard case .held(_, let approval) = try await service.admit(request, binderHash: "b") else { Issue.record("expected a hold"); return }
        do {
            try await service.approve(approval.id, actor: "cli:a", once: false)
            Issue.record("a standing approval was recorded on a once-only tier")
        } catch {
            #expect(error.code == .forbidden)
            #expect(error.message == "requests of tier elevated are approved once only, never with standing grants")
        }
        #expect(try await store.approvalRequest(id: approval.id)?.state == .pending)
        #expect(try await service.approve(approval.id, actor: "cli:a", once: true).state == .approvedOnce)
        #expect(try await store.allActiveGrants(at: clock.now).isEmpty)
    }
}

/// Approvers choose how long a standing grant lasts, among the durations the tier offers.
@Suite struct ChosenDurationTests {
    @Test func aChosenDurationSetsTheGrantsExpiryAndOthersAreRefused() async throws {
        let clock = TestClock()
        let store = InMemoryGateStore()
        var policy = PolicyTests.policy()
        var elevated = Policy.Tier(name: "elevated", grantLifetime: .seconds(86400 * 30))
        elevated.grantDurations = [.seconds(3600), .seconds(86400)]
        policy.tiers["elevated"] = elevated
        let service = GateService(policy: policy, store: store, observer: GateObservers([]), logger: Logger(label: "test"), now: { clock.now })
        func held(_ state: String) async throws -> ApprovalRequest {
            let request = try AuthorizationRequest(
                method: .get,
                query: Substring("response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=\(state)&scope=orders:read"))
            guard case .held(_, let approval) = try await service.admit(request, binderHash: "b") else { throw GateError(.invalidRequest, "no hold") }
            return approval
        }
        let approval = try await held("a")
        #expect(policy.grantDurations(of: approval) == [.seconds(3600), .seconds(86400)])
        do {
            try await service.approve(approval.id, actor: "cli:a", once: false, duration: .seconds(7 * 86400))
            Issue.record("a duration the tier does not offer was accepted")
        } catch {
            #expect(error.code == .invalidRequest)
        }
        try await service.approve(approval.id, actor: "cli:a", once: false, duration: .seconds(3600))
        #expect(try await store.allActiveGrants(at: clock.now).first?.expiresAt == clock.now.addingTimeInterval(3600))
        clock.advance(by: 3601)
        guard case .held = try await service.admit(
            try AuthorizationRequest(
                method: .get,
                query: Substring("response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=b&scope=orders:read")),
            binderHash: "b2")
        else { Issue.record("the grant outlived its chosen hour"); return }
    }
}
