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

    /// The request the proxy would read for `client` asking for `scope` (spaces written `separator`).
    func request(_ scope: String, client: String = "app", separator: String = "%20") -> PlainAuthorizationQuery? {
        let query =
            "response_type=code&client_id=\(client)&scope=\(scope.replacingOccurrences(of: " ", with: separator).replacingOccurrences(of: ":", with: "%3A"))&state=x"
        guard let plain = PlainAuthorizationQuery(Substring(query)) else {
            Issue.record("not of the plain shape: \(query)")
            return nil
        }
        return plain
    }

    func admits(_ scope: String, client: String = "app", separator: String = "%20") -> Bool {
        guard let plain = request(scope, client: client, separator: separator) else { return false }
        return service.admitsAtOnce(plain, snapshot: snapshot)
    }

    func remembered(_ scope: String, client: String = "app", separator: String = "%20") -> Bool? {
        guard let plain = request(scope, client: client, separator: separator) else { return nil }
        return snapshot.rememberedAnswer(to: plain, under: live.generation, now: { clock.now })
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
        #expect(snapshot.rememberedAnswer(to: plain, under: live.generation, now: { clock.now }) == nil)
        #expect(!service.admitsAtOnce(plain, snapshot: snapshot))
    }

    @Test func anAnswerFromGrantsReadBeforeAChangeIsNotRemembered() {
        snapshot.replace(with: [grant("orders:read")], readStartedAt: .now)
        let before = snapshot.grants(of: "app", now: { clock.now })!
        snapshot.replace(with: [], readStartedAt: .now)
        snapshot.remember(true, to: request("orders:read")!, under: live.generation, from: before)
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
        for index in 0..<GrantSnapshot.maximumAnswers + 100 {
            #expect(!admits("openid x\(index):read"))
            #expect(remembered("openid x\(index):read") != true)
        }
        #expect(snapshot.rememberedAnswerCount <= GrantSnapshot.maximumAnswers)
        #expect(snapshot.rememberedAnswerCount > GrantSnapshot.maximumAnswers / 2)
        // Past the limit a request is evaluated every time, and still answered right.
        #expect(admits("orders:read"))
        #expect(!admits("openid x0:read"))
    }

    @Test func spellingsOfOneScopeValueAreAnsweredAlike() {
        snapshot.replace(with: [grant("orders:read"), grant("stock:read")], readStartedAt: .now)
        #expect(admits("orders:read stock:read", separator: "+"))
        #expect(remembered("orders:read stock:read", separator: "+") == true)
        #expect(admits("orders:read stock:read", separator: "%20"))
        #expect(!admits("orders:read admin:write", separator: "+"))
        #expect(remembered("orders:read admin:write", separator: "%20") == nil)
        #expect(!admits("orders:read admin:write", separator: "%20"))
        #expect(remembered("orders:read admin:write", separator: "%20") == false)
    }
}

/// The table remembered answers are kept in: found by the bytes of both values, never another's.
@Suite struct RememberedAnswersTableTests {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func answer(_ table: RememberedAnswers, _ clientID: String, _ scope: String) -> RememberedAnswers.Answer? {
        bytes(clientID).withUnsafeBufferPointer { client in bytes(scope).withUnsafeBufferPointer { table.answer(clientID: client, scope: $0) } }
    }

    func remember(_ table: inout RememberedAnswers, _ admitted: Bool, _ clientID: String, _ scope: String) {
        bytes(clientID).withUnsafeBufferPointer { client in
            bytes(scope).withUnsafeBufferPointer { table.remember(.init(admitted: admitted, until: nil), clientID: client, scope: $0) }
        }
    }

    @Test func theBoundaryBetweenClientAndScopeCounts() {
        var table = RememberedAnswers(capacity: 16, seed: 1)
        remember(&table, true, "ab", "c")
        #expect(answer(table, "ab", "c")?.admitted == true)
        #expect(answer(table, "a", "bc") == nil)
        #expect(answer(table, "abc", "") == nil)
        remember(&table, false, "a", "bc")
        #expect(answer(table, "a", "bc")?.admitted == false)
        #expect(answer(table, "ab", "c")?.admitted == true)
    }

    @Test func manyKeysAreEachFoundWithTheirOwnAnswer() {
        for seed: UInt64 in [0, 42, .max] {
            var table = RememberedAnswers(capacity: 4096, seed: seed)
            for index in 0..<4096 { remember(&table, index % 3 == 0, "client-\(index % 7)", "scope \(index)") }
            #expect(table.count > 4000)
            var found = 0
            for index in 0..<4096 {
                guard let remembered = answer(table, "client-\(index % 7)", "scope \(index)") else { continue }
                #expect(remembered.admitted == (index % 3 == 0))
                found += 1
            }
            #expect(found == table.count)
            #expect(answer(table, "client-0", "scope 1") == nil)  // 1 % 7 is 1
        }
    }

    @Test func anAnswerForTheSameKeyIsReplaced() {
        var table = RememberedAnswers(capacity: 4, seed: 7)
        remember(&table, true, "app", "openid")
        remember(&table, false, "app", "openid")
        #expect(answer(table, "app", "openid")?.admitted == false)
        #expect(table.count == 1)
    }
}
