import Foundation
import ScopeGateCore
import Testing

@testable import ScopeGateServer

@Suite struct GrantSnapshotTests {
    let now = Date()

    /// Which of `scopes` the snapshot says `client` holds at `date`; `nil` when it is not fresh.
    func granted(_ snapshot: GrantSnapshot, _ client: String, _ scopes: [String], at date: Date) -> Set<String>? {
        snapshot.grants(of: client, now: { date }).map { grants in Set(scopes.filter(grants.contains)) }
    }

    func grant(_ scope: String, expiresAt: Date? = nil) -> Grant {
        Grant(clientID: "app", scope: scope, approvedBy: "t", grantedAt: now, expiresAt: expiresAt, approvalRequestID: nil)
    }

    @Test func answersNothingUntilFirstRefreshed() {
        let snapshot = GrantSnapshot()
        #expect(granted(snapshot, "app", ["a"], at: now) == nil)
        snapshot.replace(with: [grant("a")], readStartedAt: .now)
        #expect(granted(snapshot, "app", ["a", "b"], at: now) == ["a"])
        #expect(granted(snapshot, "other", ["a"], at: now) == [])
    }

    @Test func respectsGrantExpiry() {
        let snapshot = GrantSnapshot()
        snapshot.replace(with: [grant("a", expiresAt: now.addingTimeInterval(10))], readStartedAt: .now)
        #expect(granted(snapshot, "app", ["a"], at: now) == ["a"])
        #expect(granted(snapshot, "app", ["a"], at: now.addingTimeInterval(10)) == [])
    }

    @Test func goesStaleWhenRefreshesStop() async throws {
        let snapshot = GrantSnapshot(maximumAge: .milliseconds(100))
        snapshot.replace(with: [grant("a")], readStartedAt: .now)
        try await Task.sleep(for: .milliseconds(150))
        #expect(granted(snapshot, "app", ["a"], at: now) == nil)
    }

    @Test func aReadFromBeforeARevocationCannotRestoreIt() {
        let snapshot = GrantSnapshot()
        let before = ContinuousClock.now
        snapshot.replace(with: [], readStartedAt: .now)
        snapshot.invalidate()
        snapshot.replace(with: [grant("a")], readStartedAt: before)
        #expect(granted(snapshot, "app", ["a"], at: now) == nil)
        snapshot.replace(with: [], readStartedAt: .now)
        #expect(granted(snapshot, "app", ["a"], at: now) == [])
    }
}
