import Foundation
import Logging
import ScopeGateAudit
import ScopeGateCore
import ScopeGateStore
import Testing

@testable import ScopeGateServer

/// A flood of malformed requests is refused in full but recorded in the audit log only up to a budget.
@Suite(.serialized) struct RefusalAuditTests {
    @Test func theBudgetRecordsAtMostTheLimitAMinuteAndCountsTheRest() throws {
        let service = GateService(
            policy: Policy(rules: [], clients: [], tiers: [], defaultTier: "low", approvalTimeout: .seconds(60)),
            store: InMemoryGateStore(), observer: GateObservers([]), logger: Logger(label: "test"))
        let audit = RefusalAudit(service: service, limit: 3)
        let start = ContinuousClock.now
        let taken = (0..<5).map { audit.admit(at: start + .seconds($0)).record }
        #expect(taken == [true, true, true, false, false])
        // A new minute: the next one is recorded and says two went unrecorded before it.
        let next = audit.admit(at: start + .seconds(61))
        #expect(next.record && next.skippedBefore == 2)
        #expect(audit.admit(at: start + .seconds(62)).skippedBefore == 0)
    }

    @Test func aFloodOfMalformedRequestsGrowsTheLogOnlyUpToTheBudget() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sg-\(UUID().uuidString)")
        let keyring = AuditKeyring(directory: folder.appendingPathComponent("keys"))
        let signer = AuditSigner(key: try keyring.generate(.es256).new, issuer: "http://127.0.0.1")
        let store = try SQLiteGateStore(path: folder.appendingPathComponent("gate.sqlite").path, audit: signer)
        let audit = "audit:\n  keys: \(folder.appendingPathComponent("keys").path)\n  checkpoint_interval: 1h"
        try await GateHarness.with(extraConfig: audit, store: store, auditSigner: signer) { h in
            for index in 0..<105 {
                let reply = try await h.send(.GET, GateHarness.authorizePath + "?" + GateHarness.authorizeQuery(scope: "openid") + "&state=x\(index)")
                #expect(reply.status == 400)
            }
            #expect(try await store.auditEntries(event: "request.refused").count == 100)
            #expect(h.upstream.received.isEmpty)
        }
    }
}
