import Foundation
import Logging
import Testing

@testable import ScopeGateCore

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

/// The gate service's answers the snapshot remembers, asked as the proxy's fast path asks: a remembered
/// answer never outlives the grants, the policy or the expiry it was given under.
@Suite struct RememberedAnswerTests {
    let clock = TestClock()
    let snapshot = GrantSnapshot()
    let live = LivePolicy(policy: PolicyTests.policy())

    var service: GateService {
        GateService(live: live, store: InMemoryGateStore(), observer: GateObservers([]), logger: Logger(label: "test"), now: { [clock] in clock.now })
    }

    func grant(_ scope: String, client: String = "app", expiresAt: Date? = nil) -> Grant {
        Grant(clientID: client, scope: scope, approvedBy: "t", grantedAt: clock.now, expiresAt: expiresAt, approvalRequestID: nil)
    }

    func admits(_ scope: String, client: String = "app") -> Bool {
        let query = "response_type=code&client_id=\(client)&scope=\(scope.replacingOccurrences(of: " ", with: "%20").replacingOccurrences(of: ":", with: "%3A"))&state=x"
        guard let plain = PlainAuthorizationQuery(Substring(query)) else { Issue.record("not of the plain shape: \(query)"); return false }
        return service.admitsAtOnce(plain, snapshot: snapshot)
    }

    func remembered(_ scope: String, client: String = "app") -> Bool? {
        snapshot.rememberedAnswer(clientID: client, scope: scope, under: live.generation, now: { clock.now })
    }

    @Test func anAnswerIsRememberedPerClientAndScopeValue() {
        snapshot.replace(with: [grant("orders:read")], readStartedAt: .now)
        #expect(remembered("openid orders:read") == nil)
        #expect(admits("openid orders:read"))
        #expect(remembered("openid orders:read") == true)
        #expect(remembered("orders:read openid") == nil)
        #expect(remembered("openid orders:read", client: "other") == nil)
        #expect(!admits("openid orders:read", client: "other"))
        #expect(remembered("openid orders:read", client: "other") == false)
        #expect(!admits("admin:write"))
        #expect(remembered("admin:write") == false)
    }

    @Test func aRevocationFoundByTheNextRefreshEndsTheAdmission() {
        snapshot.replace(with: [grant("orders:read")], readStartedAt: .now)
        #expect(admits("orders:read"))
        snapshot.replace(with: [], readStartedAt: .now)
        #expect(remembered("orders:read") == nil)
        #expect(!admits("orders:read"))
    }

    @Test func aNewGrantEndsARememberedRefusal() {
        snapshot.replace(with: [], readStartedAt: .now)
        #expect(!admits("orders:read"))
        snapshot.replace(with: [grant("orders:read")], readStartedAt: .now)
        #expect(admits("orders:read"))
    }

    @Test func anInvalidationForgetsEverything() {
        snapshot.replace(with: [grant("orders:read")], readStartedAt: .now)
        #expect(admits("orders:read"))
        snapshot.invalidate()
        #expect(remembered("orders:read") == nil)
        #expect(!admits("orders:read"))
    }

    @Test func aReloadedPolicyIsAskedAgain() {
        snapshot.replace(with: [grant("orders:read")], readStartedAt: .now)
        #expect(admits("orders:read"))
        var stricter = PolicyTests.policy()
        stricter.rules.insert(.init(pattern: GlobPattern("orders:*"), auto: .deny, tier: "critical", origin: "scopes[0]"), at: 0)
        live.replace(with: LivePolicy.Generation(policy: stricter))
        #expect(remembered("orders:read") == nil)
        #expect(!admits("orders:read"))
    }

    @Test func anAdmissionEndsWhenAGrantOfTheClientExpires() {
        // The admission rests on `orders:read`, which never expires; another grant of the client does.
        snapshot.replace(
            with: [grant("orders:read"), grant("stock:read", expiresAt: clock.now.addingTimeInterval(60))], readStartedAt: .now)
        #expect(admits("orders:read stock:read"))
        #expect(admits("orders:read"))
        clock.advance(by: 60)
        #expect(remembered("orders:read stock:read") == nil)
        #expect(remembered("orders:read") == nil)
        #expect(!admits("orders:read stock:read"))
        #expect(admits("orders:read"))
    }

    @Test func aStaleSnapshotAnswersNothing() async throws {
        let snapshot = GrantSnapshot(maximumAge: .milliseconds(100))
        snapshot.replace(with: [grant("orders:read")], readStartedAt: .now)
        let plain = PlainAuthorizationQuery("response_type=code&client_id=app&scope=orders%3Aread")!
        #expect(service.admitsAtOnce(plain, snapshot: snapshot))
        try await Task.sleep(for: .milliseconds(150))
        #expect(snapshot.rememberedAnswer(clientID: "app", scope: "orders:read", under: live.generation, now: { clock.now }) == nil)
        #expect(!service.admitsAtOnce(plain, snapshot: snapshot))
    }

    @Test func anAnswerFromGrantsReadBeforeAChangeIsNotRemembered() {
        snapshot.replace(with: [grant("orders:read")], readStartedAt: .now)
        let before = snapshot.grants(of: "app", now: { clock.now })!
        snapshot.replace(with: [], readStartedAt: .now)
        snapshot.remember(true, clientID: "app", scope: "orders:read", under: live.generation, from: before)
        #expect(remembered("orders:read") == nil)
        #expect(!admits("orders:read"))
    }

    @Test func longValuesAreNotRemembered() {
        snapshot.replace(with: [grant("orders:read")], readStartedAt: .now)
        let long = "openid " + String(repeating: "x", count: GrantSnapshot.maximumRememberedLength)
        #expect(!admits(long))
        #expect(remembered(long) == nil)
        #expect(admits("openid"))
        #expect(remembered("openid") == true)
    }

    @Test func rememberingStopsAtItsLimit() {
        snapshot.replace(with: [grant("orders:read")], readStartedAt: .now)
        for index in 0..<GrantSnapshot.maximumAnswers { _ = admits("openid x\(index):read") }
        #expect(remembered("openid x0:read") == false)
        #expect(admits("orders:read"))
        #expect(remembered("orders:read") == nil)
    }
}
