import Foundation
import ScopeGateCore
import Testing

@testable import ScopeGateServer

@Suite struct GrantSnapshotTests {
    let now = Date()

    func grant(_ scope: String, expiresAt: Date? = nil) -> Grant {
        Grant(clientID: "app", scope: scope, approvedBy: "t", grantedAt: now, expiresAt: expiresAt, approvalRequestID: nil)
    }

    @Test func answersNothingUntilFirstRefreshed() {
        let snapshot = GrantSnapshot()
        #expect(snapshot.granted(clientID: "app", among: ScopeSet(["a"]), at: now) == nil)
        snapshot.replace(with: [grant("a")], readStartedAt: .now)
        #expect(snapshot.granted(clientID: "app", among: ScopeSet(["a", "b"]), at: now) == ["a"])
        #expect(snapshot.granted(clientID: "other", among: ScopeSet(["a"]), at: now) == [])
    }

    @Test func respectsGrantExpiry() {
        let snapshot = GrantSnapshot()
        snapshot.replace(with: [grant("a", expiresAt: now.addingTimeInterval(10))], readStartedAt: .now)
        #expect(snapshot.granted(clientID: "app", among: ScopeSet(["a"]), at: now) == ["a"])
        #expect(snapshot.granted(clientID: "app", among: ScopeSet(["a"]), at: now.addingTimeInterval(10)) == [])
    }

    @Test func goesStaleWhenRefreshesStop() async throws {
        let snapshot = GrantSnapshot(maximumAge: .milliseconds(100))
        snapshot.replace(with: [grant("a")], readStartedAt: .now)
        try await Task.sleep(for: .milliseconds(150))
        #expect(snapshot.granted(clientID: "app", among: ScopeSet(["a"]), at: now) == nil)
    }

    @Test func aReadFromBeforeARevocationCannotRestoreIt() {
        let snapshot = GrantSnapshot()
        let before = ContinuousClock.now
        snapshot.replace(with: [], readStartedAt: .now)
        snapshot.invalidate()
        snapshot.replace(with: [grant("a")], readStartedAt: before)
        #expect(snapshot.granted(clientID: "app", among: ScopeSet(["a"]), at: now) == nil)
        snapshot.replace(with: [], readStartedAt: .now)
        #expect(snapshot.granted(clientID: "app", among: ScopeSet(["a"]), at: now) == [])
    }
}
