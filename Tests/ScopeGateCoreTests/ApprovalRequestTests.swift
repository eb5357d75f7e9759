import Foundation
import Testing

@testable import ScopeGateCore

@Suite struct ApprovalRequestTests {
    let start = Date(timeIntervalSince1970: 1_000_000)
    var pending: ApprovalRequest {
        ApprovalRequest(
            id: "ar_1", clientID: "app", scopes: ScopeSet(["orders:read"]), alreadyGranted: ScopeSet([String]()),
            createdAt: start, expiresAt: start.addingTimeInterval(60))
    }

    @Test(arguments: [ApprovalRequest.State.approved, .approvedOnce, .denied])
    func aPendingRequestTakesOneDecision(_ outcome: ApprovalRequest.State) throws {
        let decided = try pending.applying(Decision(outcome: outcome, actor: "cli:alice", at: start))
        #expect(decided.state == outcome)
        #expect(decided.decision?.actor == "cli:alice")
    }

    @Test func aDecidedRequestKeepsItsFirstDecision() throws {
        let approved = try pending.applying(Decision(outcome: .approved, actor: "a", at: start))
        #expect { try approved.applying(Decision(outcome: .denied, actor: "b", at: start)) } throws: {
            ($0 as? GateError)?.code == .alreadyDecided
        }
        #expect { try approved.applying(Decision(outcome: .expired, actor: "policy:expiry", at: start.addingTimeInterval(99))) } throws: {
            ($0 as? GateError)?.code == .alreadyDecided
        }
    }

    @Test func expiryOnlyAfterTheDeadline() throws {
        #expect(throws: GateError.self) {
            try pending.applying(Decision(outcome: .expired, actor: "policy:expiry", at: start.addingTimeInterval(59)))
        }
        let expired = try pending.applying(Decision(outcome: .expired, actor: "policy:expiry", at: start.addingTimeInterval(60)))
        #expect(expired.state == .expired)
        #expect(!expired.state.releases)
    }
}
