import Foundation
import Logging
import Testing

@testable import ScopeGateCore

/// Approvers approve some of the scopes asked for: only those are granted, the held request is released
/// without the others, and where several approvers must agree, what all of them approved is what stands.
@Suite struct PartialApprovalTests {
    let clock = TestClock()
    let store = InMemoryGateStore()

    func service(quorum: Int = 1) -> GateService {
        var policy = PolicyTests.policy()
        policy.tiers["elevated"] = .init(name: "elevated", grantLifetime: .seconds(3600), quorum: quorum)
        return GateService(policy: policy, store: store, observer: GateObservers([]), logger: Logger(label: "test"), now: { [clock] in clock.now })
    }

    static func request(_ scope: String, state: String = "s1") throws -> AuthorizationRequest {
        try AuthorizationRequest(
            method: .get,
            query: Substring(
                "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=\(state)&scope=\(scope)"))
    }

    func held(_ service: GateService, _ scope: String = "openid%20orders:read%20billing:read%20users:read", binder: String = "b1")
        async throws -> (Hold, ApprovalRequest)
    {
        guard case .held(let hold, let approval) = try await service.admit(try Self.request(scope), binderHash: binder) else {
            throw GateError(.invalidRequest, "expected a hold")
        }
        return (hold, approval)
    }

    @Test func onlyTheApprovedScopesAreGrantedAndTheReleaseLeavesTheOthersOut() async throws {
        let service = service()
        let (hold, approval) = try await held(service)
        #expect(approval.scopes.tokens == ["billing:read", "orders:read", "users:read"])
        #expect(approval.isNarrowable)
        let decided = try await service.approve(approval.id, actor: "cli:a", once: false, scopes: ScopeSet(["orders:read", "users:read"]))
        #expect(decided.state == .approved)
        #expect(decided.approvedScopes.tokens == ["orders:read", "users:read"])
        #expect(decided.withheldScopes.tokens == ["billing:read"])
        #expect(try await store.allActiveGrants(at: clock.now).map(\.scope).sorted() == ["orders:read", "users:read"])

        // The browser continues with the request narrowed, in its own order, and the gate lets it through.
        let released = try hold.request().parameters.withholding(decided.withheldScopes, requested: hold.requestedScopes)
        #expect(released["scope"] == "openid orders:read users:read")
        #expect(released["state"] == "s1")
        let narrowed = try AuthorizationRequest(method: .get, parameters: released)
        guard case .forward = try await service.admit(narrowed, binderHash: "b1") else {
            Issue.record("the narrowed request was not let through")
            return
        }
        // The whole request again is asked about again, for the scope that was left out only.
        guard case .held(_, let again) = try await service.admit(try Self.request("openid%20orders:read%20billing:read", state: "s2"), binderHash: "b1")
        else {
            Issue.record("the left-out scope passed")
            return
        }
        #expect(again.scopes.tokens == ["billing:read"])
        #expect(again.alreadyGranted.tokens == ["orders:read"])
    }

    @Test func anApprovalOnceOfSomeScopesReleasesOnlyTheNarrowedRequest() async throws {
        let service = service()
        let (hold, approval) = try await held(service)
        try await service.approve(approval.id, actor: "cli:a", once: true, scopes: ScopeSet(["orders:read"]))
        #expect(try await store.allActiveGrants(at: clock.now).isEmpty)
        let decided = try #require(try await store.approvalRequest(id: approval.id))
        let released = try hold.request().parameters.withholding(decided.withheldScopes, requested: hold.requestedScopes)
        #expect(released["scope"] == "openid orders:read")
        // The original request, with the scopes left out, is not what the release covers.
        if case .forwardOnce = try await service.admit(try hold.request(), binderHash: "b1") {
            Issue.record("the whole request passed on an approval of part of it")
        }
        guard case .forwardOnce(let scopes, _) = try await service.admit(try AuthorizationRequest(method: .get, parameters: released), binderHash: "b1")
        else {
            Issue.record("the narrowed request was not released")
            return
        }
        #expect(scopes.tokens == ["orders:read"])
    }

    @Test(arguments: [
        ["billing:read", "payments:read"],  // one that was not asked for
        [String](),  // none
    ])
    func anApprovalOfWhatWasNotAskedForIsRefused(_ scopes: [String]) async throws {
        let service = service()
        let (_, approval) = try await held(service)
        await #expect(throws: GateError.self) {
            try await service.approve(approval.id, actor: "cli:a", once: false, scopes: ScopeSet(scopes))
        }
        #expect(try await store.approvalRequest(id: approval.id)?.state == .pending)
        #expect(try await store.allActiveGrants(at: clock.now).isEmpty)
    }

    @Test func approvingEveryScopeIsAWholeApproval() async throws {
        let service = service()
        let (_, approval) = try await held(service)
        let decided = try await service.approve(approval.id, actor: "cli:a", once: false, scopes: approval.scopes)
        #expect(decided.decision?.scopes == nil)
        #expect(decided.withheldScopes.isEmpty)
    }

    @Test func aRequestForAResourceIsApprovedAsAWholeOnly() async throws {
        let service = service()
        let (_, approval) = try await held(
            service, "orders:read%20billing:read&resource=https%3A%2F%2Fapi.example%2F")
        #expect(!approval.isNarrowable)
        do {
            try await service.approve(approval.id, actor: "cli:a", once: false, scopes: ScopeSet(["orders:read"]))
            Issue.record("a request carrying a resource was approved in part")
        } catch {
            #expect(error.code == .invalidRequest)
        }
    }

    @Test func withQuorumWhatEveryApproverApprovedStands() async throws {
        let service = service(quorum: 2)
        let (_, approval) = try await held(service)
        #expect(try await service.approve(approval.id, actor: "cli:a", once: false, scopes: ScopeSet(["orders:read", "users:read"])).state == .pending)
        // A vote with nothing in common with the first is refused, not counted.
        do {
            try await service.approve(approval.id, actor: "cli:b", once: false, scopes: ScopeSet(["billing:read"]))
            Issue.record("a vote with no scope in common was counted")
        } catch {
            #expect(error.code == .invalidRequest)
        }
        let decided = try await service.approve(approval.id, actor: "cli:c", once: false, scopes: ScopeSet(["users:read", "billing:read"]))
        #expect(decided.state == .approved)
        #expect(decided.approvedScopes.tokens == ["users:read"])
        #expect(try await store.allActiveGrants(at: clock.now).map(\.scope) == ["users:read"])
    }

    @Test func votesWithNothingInCommonDeny() {
        let votes = [
            Vote(voter: "a", choice: .approve, at: Date(), scopes: ScopeSet(["x"])),
            Vote(voter: "b", choice: .approve, at: Date(), scopes: ScopeSet(["y"])),
        ]
        let decision = Quorum(approve: 2, deny: 1).decision(of: votes)
        #expect(decision?.outcome == .denied)
        #expect(Vote.approvedInCommon(votes)?.isEmpty == true)
        #expect(Vote.approvedInCommon([Vote(voter: "a", choice: .approve, at: Date())]) == nil)
    }
}

/// Taking scopes out of a held request's parameters, as a partial approval's release does.
@Suite struct WithholdingTests {
    @Test func theScopeParameterLosesTheWithheldTokensAndNothingElseChanges() throws {
        let form = try FormParameters(parsing: "client_id=app&scope=openid+b+a&state=x&nonce=n")
        let narrowed = try form.withholding(ScopeSet(["b"]), requested: ScopeSet(["openid", "a", "b"]))
        #expect(narrowed.encoded == "client_id=app&scope=openid%20a&state=x&nonce=n")
    }

    @Test func aRequestThatReliedOnDefaultScopesNamesTheRemainingOnes() throws {
        let form = try FormParameters(parsing: "client_id=app&state=x")
        let narrowed = try form.withholding(ScopeSet(["b"]), requested: ScopeSet(["a", "b", "c"]))
        #expect(narrowed["scope"] == "a c")
    }

    @Test(arguments: ["client_id=app&scope=a+b&request=eyJ", "client_id=app&scope=a+b&request_uri=urn%3Ax"])
    func aRequestObjectCannotBeNarrowed(_ query: String) throws {
        let form = try FormParameters(parsing: Substring(query))
        #expect(throws: GateError.self) { try form.withholding(ScopeSet(["b"]), requested: ScopeSet(["a", "b"])) }
    }

    @Test func nothingWithheldChangesNothing() throws {
        let form = try FormParameters(parsing: "client_id=app&scope=a+b&request=eyJ")
        #expect(try form.withholding(ScopeSet([String]()), requested: ScopeSet(["a", "b"])) == form)
    }
}
