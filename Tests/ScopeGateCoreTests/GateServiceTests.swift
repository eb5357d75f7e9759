import Foundation
import Logging
import Testing

@testable import ScopeGateCore

struct Observer: GateObserver {
    let record: RecordingObserver
    func approvalRequestOpened(_ request: ApprovalRequest, by hold: Hold) async { record.opened.withLock { $0.append(request.id) } }
    func approvalRequestDecided(_ request: ApprovalRequest) async { record.decided.withLock { $0.append(request.id) } }
}

@Suite struct GateServiceTests {
    let clock = TestClock()
    let store = InMemoryGateStore()
    let record = RecordingObserver()
    var service: GateService {
        GateService(
            policy: PolicyTests.policy(), store: store, observer: Observer(record: record), logger: Logger(label: "test"),
            now: { [clock] in clock.now })
    }

    func request(_ scope: String, state: String = "s1") throws -> AuthorizationRequest {
        try AuthorizationRequest(
            method: .get,
            query: Substring("response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=\(state)&scope=\(scope)"))
    }

    @Test func approvedScopesAreForwarded() async throws {
        #expect(try await service.admit(request("openid"), binderHash: "b1") == .forward)
        #expect(record.opened.withLock { $0 }.isEmpty)
    }

    @Test func tenBrowsersAskingTheSameMakeOneQuestion() async throws {
        var approvalIDs = Set<String>()
        for index in 0..<10 {
            guard case .held(_, let approval) = try await service.admit(request("openid+orders:read", state: "s\(index)"), binderHash: "b\(index)")
            else { Issue.record("expected a hold"); return }
            approvalIDs.insert(approval.id)
        }
        #expect(approvalIDs.count == 1)
        #expect(record.opened.withLock { $0 }.count == 1)
        #expect(try await store.holds(approvalRequestID: approvalIDs.first!).count == 10)
    }

    @Test func approvalWritesGrantsAndLaterRequestsPass() async throws {
        guard case .held(_, let approval) = try await service.admit(request("orders:read"), binderHash: "b1") else {
            Issue.record("expected a hold"); return
        }
        try await service.approve(approval.id, actor: "cli:alice", once: false)
        let grants = try await store.activeGrants(clientID: "app", among: ScopeSet(["orders:read", "other"]), at: clock.now)
        #expect(grants.map(\.scope) == ["orders:read"])
        #expect(grants.first?.expiresAt == clock.now.addingTimeInterval(3600))
        #expect(try await service.admit(request("orders:read", state: "other"), binderHash: "b2") == .forward)
        clock.advance(by: 3601)
        guard case .held = try await service.admit(request("orders:read", state: "later"), binderHash: "b2") else {
            Issue.record("an expired grant must not pass"); return
        }
    }

    @Test func approveOnceReleasesOnlyThatBrowsersRequestForTheReleaseWindow() async throws {
        let held = try request("orders:read")
        guard case .held(let hold, let approval) = try await service.admit(held, binderHash: "b1") else {
            Issue.record("expected a hold"); return
        }
        try await service.approve(approval.id, actor: "cli:alice", once: true)
        #expect(try await store.allActiveGrants(at: clock.now).isEmpty)
        // Another browser replaying the same request is not released.
        guard case .held = try await service.admit(held, binderHash: "b2") else { Issue.record("another browser was released"); return }
        let once = GateService.Admission.forwardOnce(ScopeSet(["orders:read"]), holdID: hold.id)
        #expect(try await service.admit(held, binderHash: "b1") == once)
        #expect(try await service.admit(held, binderHash: "b1") == once, "the IdP's sign-in step replays the request")
        guard case .held = try await service.admit(try request("orders:read", state: "different"), binderHash: "b1") else {
            Issue.record("a release admitted a different request"); return
        }
        clock.advance(by: GateService.releaseWindow.seconds + 1)
        guard case .held = try await service.admit(held, binderHash: "b1") else { Issue.record("a release outlived its window"); return }
    }

    @Test func aReleaseTheIdPCompletedAdmitsNothingMore() async throws {
        let service = self.service
        let held = try request("orders:read")
        guard case .held(let hold, let approval) = try await service.admit(held, binderHash: "b1") else {
            Issue.record("expected a hold"); return
        }
        try await service.approve(approval.id, actor: "cli:alice", once: true)
        #expect(try await service.admit(held, binderHash: "b1") == .forwardOnce(ScopeSet(["orders:read"]), holdID: hold.id))
        // The IdP answered with a code: the authorization happened once.
        service.spentReleases.spend(hold.id, at: clock.now)
        guard case .held = try await service.admit(held, binderHash: "b1") else { Issue.record("a spent release admitted more"); return }
    }

    @Test func policyDenialIsImmediate() async throws {
        #expect(try await service.admit(request("admin:org"), binderHash: "b1") == .deny(ScopeSet(["admin:org"])))
    }

    @Test func concurrentDecisionsYieldOneOutcome() async throws {
        guard case .held(_, let approval) = try await service.admit(request("orders:read"), binderHash: "b1") else {
            Issue.record("expected a hold"); return
        }
        let service = self.service
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<20 {
                group.addTask {
                    do {
                        if index.isMultiple(of: 2) {
                            try await service.approve(approval.id, actor: "a\(index)", once: false)
                        } else {
                            try await service.deny(approval.id, actor: "d\(index)")
                        }
                        return true
                    } catch {
                        return false
                    }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == 1)
        #expect(record.decided.withLock { $0 }.count == 1)
    }

    @Test func unansweredRequestsExpire() async throws {
        guard case .held(_, let approval) = try await service.admit(request("orders:read"), binderHash: "b1") else {
            Issue.record("expected a hold"); return
        }
        #expect(try await service.expireDue().isEmpty)
        clock.advance(by: 600)
        #expect(try await service.expireDue().map(\.id) == [approval.id])
        #expect(try await store.approvalRequest(id: approval.id)?.state == .expired)
        await #expect(throws: GateError.self) { try await service.approve(approval.id, actor: "late", once: false) }
    }

    @Test func aFailingStoreNeverForwards() async throws {
        await store.setFailing(true)
        await #expect { try await service.admit(request("openid"), binderHash: "b1") } throws: {
            ($0 as? GateError)?.code == .temporarilyUnavailable
        }
    }

    @Test func onlyTheOwningBrowserSeesOrJustifiesAHold() async throws {
        guard case .held(let hold, _) = try await service.admit(request("orders:read"), binderHash: "b1") else {
            Issue.record("expected a hold"); return
        }
        await #expect(throws: GateError.self) { try await service.status(ofHold: hold.id, binderHash: "b2") }
        await #expect(throws: GateError.self) { try await service.justify(holdID: hold.id, binderHash: "b2", text: "x") }
        try await service.justify(holdID: hold.id, binderHash: "b1", text: "  quarterly report  ")
        #expect(try await store.hold(id: hold.id)?.justification == "quarterly report")
        await #expect(throws: GateError.self) {
            try await service.justify(holdID: hold.id, binderHash: "b1", text: String(repeating: "x", count: 2001))
        }
    }
}

@Suite struct HoldLimitsTests {
    @Test func eachLimitHoldsForAMinuteAndThenResets() {
        let limits = HoldLimits(.init(perSource: 2, perClient: 3, total: 4))
        let start = Date(timeIntervalSince1970: 1_000)
        #expect(limits.take(clientID: "a", source: "1.1.1.1", at: start))
        #expect(limits.take(clientID: "a", source: "1.1.1.1", at: start))
        #expect(!limits.take(clientID: "a", source: "1.1.1.1", at: start), "per source")
        #expect(limits.take(clientID: "a", source: "2.2.2.2", at: start))
        #expect(!limits.take(clientID: "a", source: "3.3.3.3", at: start), "per client")
        #expect(limits.take(clientID: "b", source: "3.3.3.3", at: start))
        #expect(!limits.take(clientID: "c", source: "4.4.4.4", at: start), "in all")
        // A refused attempt counts against nothing: a minute later every window is fresh.
        #expect(limits.take(clientID: "a", source: "1.1.1.1", at: start.addingTimeInterval(61)))
    }
}
