import Foundation
import Logging
import Testing

@testable import ScopeGateCore

/// Nobody approves their own request, under any identity that maps to the same person; where
/// requesters are identified, a browser's request is approved only once ScopeGate knows who asks.
@Suite struct SeparationOfDutiesTests {
    let clock = TestClock()
    let store = InMemoryGateStore()

    func service(identify: Bool = true) -> GateService {
        var policy = PolicyTests.policy()
        policy.identifyRequesters = identify
        return GateService(policy: policy, store: store, observer: GateObservers([]), logger: Logger(label: "test"), now: { [clock] in clock.now })
    }

    func held(_ service: GateService, binder: String = "b1", state: String = "s1") async throws -> (Hold, ApprovalRequest) {
        guard case .held(let hold, let approval) = try await service.admit(try PartialApprovalTests.request("orders:read", state: state), binderHash: binder)
        else { throw GateError(.invalidRequest, "expected a hold") }
        return (hold, approval)
    }

    static let alice = Requester(subject: "1", email: "Alice@Example.com", emailVerified: true, name: "Alice", groups: ["sales"])

    func refusal(_ body: () async throws -> ApprovalRequest) async -> String? {
        do {
            _ = try await body()
            return nil
        } catch let error as GateError {
            #expect(error.code == .forbidden)
            return error.message
        } catch {
            return "\(error)"
        }
    }

    @Test func theRequesterCannotApproveUnderAnyIdentityThatIsThem() async throws {
        let service = service()
        let (hold, approval) = try await held(service)
        try await service.identify(holdID: hold.id, binderHash: "b1", as: Self.alice)
        #expect(try await store.hold(id: hold.id)?.requester?.email == "alice@example.com")
        // Slack or Teams, by the address their directory verified (case does not matter)…
        let chat = await refusal { try await service.approve(approval.id, actor: "slack:T/U1", once: false, identity: .person(verifiedEmail: "ALICE@example.com", idpSubject: nil)) }
        #expect(chat?.contains("you asked for this request yourself") == true)
        // …the approval page, by the IdP's subject even without an address…
        #expect(await refusal { try await service.approve(approval.id, actor: "page:1", once: true, identity: .person(verifiedEmail: nil, idpSubject: "1")) } != nil)
        // …and someone whose address ScopeGate cannot read might be them.
        let unknown = await refusal { try await service.approve(approval.id, actor: "slack:T/U9", once: false, identity: .person(verifiedEmail: nil, idpSubject: nil)) }
        #expect(unknown?.contains("cannot tell whether you are the requester") == true)
        #expect(try await store.approvalRequest(id: approval.id)?.state == .pending)
        // She may still deny it, and someone else approves.
        let decided = try await service.approve(approval.id, actor: "slack:T/U2", once: false, identity: .person(verifiedEmail: "bob@example.com", idpSubject: nil))
        #expect(decided.state == .approved)
    }

    @Test func anUnverifiedAddressNamesNobody() async throws {
        let service = service()
        let (hold, approval) = try await held(service)
        try await service.identify(holdID: hold.id, binderHash: "b1", as: Requester(subject: "7", email: "bob@example.com", emailVerified: false, name: nil))
        // The requester claimed bob's address without the IdP verifying it: bob may still approve.
        #expect(try await service.approve(approval.id, actor: "slack:T/U2", once: false, identity: .person(verifiedEmail: "bob@example.com", idpSubject: nil)).state == .approved)
    }

    @Test func approvalsWaitForTheRequesterToSignIn() async throws {
        let service = service()
        let (hold, approval) = try await held(service)
        let early = await refusal { try await service.approve(approval.id, actor: "slack:T/U2", once: false, identity: .person(verifiedEmail: "bob@example.com", idpSubject: nil)) }
        #expect(early?.contains("the requester has not signed in yet") == true)
        // A denial does not wait, nor does an operator.
        #expect(try await service.deny(approval.id, actor: "slack:T/U2").state == .denied)
        _ = hold
        let (_, second) = try await held(service, binder: "b2", state: "s2")
        #expect(try await service.approve(second.id, actor: "cli:ops", once: false).state == .approved)
    }

    @Test func withoutIdentificationNothingWaits() async throws {
        let service = service(identify: false)
        let (_, approval) = try await held(service)
        #expect(try await service.approve(approval.id, actor: "slack:T/U1", once: false, identity: .person(verifiedEmail: nil, idpSubject: nil)).state == .approved)
    }

    @Test func aHoldIsIdentifiedOnceByItsOwnBrowserOnly() async throws {
        let service = service()
        let (hold, _) = try await held(service)
        await #expect(throws: GateError.self) { try await service.identify(holdID: hold.id, binderHash: "other", as: Self.alice) }
        try await service.identify(holdID: hold.id, binderHash: "b1", as: Self.alice)
        try await service.identify(holdID: hold.id, binderHash: "b1", as: Requester(subject: "2", email: "m@example.com", emailVerified: true, name: nil))
        #expect(try await store.hold(id: hold.id)?.requester == Self.alice, "the first sign-in stands")
    }
}

/// Automation on who asks: a rule on requesters' groups decides once the requesters have signed in.
@Suite struct RequesterGroupAutomationTests {
    let clock = TestClock()
    let store = InMemoryGateStore()

    func service() -> GateService {
        var policy = PolicyTests.policy()
        policy.identifyRequesters = true
        var rule = AutomationRule(name: "sales-reads", outcome: .approve, tiers: ["elevated"], origin: "automation[0]")
        rule.requesterGroups = ["sales"]
        policy.automation = [rule]
        return GateService(policy: policy, store: store, observer: GateObservers([]), logger: Logger(label: "test"), now: { [clock] in clock.now })
    }

    @Test func aRequesterInTheGroupIsApprovedByTheRuleAndOthersWait() async throws {
        let service = service()
        guard case .held(let hold, let approval) = try await service.admit(try PartialApprovalTests.request("orders:read"), binderHash: "b1")
        else { Issue.record("not held"); return }
        #expect(approval.state == .pending, "nobody's groups are known when the request opens")
        try await service.identify(holdID: hold.id, binderHash: "b1", as: SeparationOfDutiesTests.alice)
        let decided = try #require(try await store.approvalRequest(id: approval.id))
        #expect(decided.state == .approved)
        #expect(decided.decision?.actor == "policy:automation/sales-reads")

        guard case .held(let other, let second) = try await service.admit(try PartialApprovalTests.request("billing:read", state: "s2"), binderHash: "b2")
        else { Issue.record("not held"); return }
        try await service.identify(holdID: other.id, binderHash: "b2", as: Requester(subject: "2", email: "m@example.com", emailVerified: true, name: nil, groups: ["engineering"]))
        #expect(try await store.approvalRequest(id: second.id)?.state == .pending)
    }
}

/// Where a tier needs several approvers, one person counts once, whichever platforms they vote from.
@Suite struct OnePersonOneVoteTests {
    @Test func theSamePersonFromSlackAndThePageIsOneVote() async throws {
        let clock = TestClock()
        let store = InMemoryGateStore()
        var policy = PolicyTests.policy()
        policy.tiers["elevated"] = .init(name: "elevated", grantLifetime: nil, quorum: 2)
        let service = GateService(policy: policy, store: store, observer: GateObservers([]), logger: Logger(label: "test"), now: { clock.now })
        guard case .held(_, let approval) = try await service.admit(try PartialApprovalTests.request("orders:read"), binderHash: "b1")
        else { Issue.record("not held"); return }
        #expect(try await service.approve(approval.id, actor: "slack:T/U1", once: false, identity: .person(verifiedEmail: "Bob@Example.com", idpSubject: nil)).state == .pending)
        do {
            try await service.approve(approval.id, actor: "page:bob@example.com", once: false, identity: .person(verifiedEmail: "bob@example.com", idpSubject: "9"))
            Issue.record("the same person's second vote was counted")
        } catch {
            #expect(error.code == .alreadyVoted)
        }
        #expect(try await store.votes(approvalRequestID: approval.id).count == 1)
        #expect(try await service.approve(approval.id, actor: "teams:t/o", once: false, identity: .person(verifiedEmail: "carol@example.com", idpSubject: nil)).state == .approved)
    }
}
