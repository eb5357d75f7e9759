// The gate's own cost per authorization request, outside the proxy: the strict parse, the request's
// validation, the policy evaluation against standing grants and the re-serialized target, as the
// event loop does them for a request whose scopes are all granted. `benchmarks/gate_cost.py` runs it
// under callgrind to count instructions, which are repeatable on a shared machine where time is not.
//
//     swift build -c release --product gate-cost
//     .build/release/gate-cost [iterations] [plain|evaluated|strict] [short]
//
// `short`: only the proxy benchmark's own request (by default the two requests alternate).

import Foundation
import Logging
import ScopeGateCore

let policy = Policy(
    rules: [
        .init(pattern: GlobPattern("openid"), auto: .approve, tier: "low", origin: "scopes[0]"),
        .init(pattern: GlobPattern("admin:*"), auto: .deny, tier: "critical", origin: "scopes[1]"),
        .init(pattern: GlobPattern("s*"), auto: .ask, tier: "low", origin: "scopes[2]"),
    ],
    clients: [.init(id: "bench", name: "Bench", redirectURIs: ["https://bench.example/cb"])],
    tiers: [.init(name: "low", grantLifetime: nil), .init(name: "critical", grantLifetime: .seconds(3600))],
    defaultTier: "low", approvalTimeout: .seconds(600))
// The same request the proxy benchmark sends, and one shaped like a real browser's (PKCE, nonce).
let requests: [Substring] = [
    "response_type=code&client_id=bench&redirect_uri=https%3A%2F%2Fbench.example%2Fcb&scope=s1%20s2%20s3&state=abc",
    "response_type=code&client_id=bench&redirect_uri=https%3A%2F%2Fbench.example%2Fcb&scope=openid%20s1%20s2"
        + "&state=af0ifjsldkj&nonce=n-0S6_WzA2Mj&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        + "&code_challenge_method=S256",
]
// The proxy's own snapshot, holding the benchmark's 10,000 grants (100 clients with 100 scopes each);
// fresh for the whole run (under callgrind a run takes longer than the proxy's two seconds).
let snapshot = GrantSnapshot(maximumAge: .seconds(3600))
snapshot.replace(
    with: (0..<100).flatMap { client in
        (0..<100).map { scope in
            Grant(
                clientID: client == 0 ? "bench" : "client-\(client)", scope: "s\(scope)", approvedBy: "bench", grantedAt: Date(),
                expiresAt: nil, approvalRequestID: nil)
        }
    }, readStartedAt: .now)
let service = GateService(
    policy: policy, store: InMemoryGateStore(), observer: GateObservers([]), logger: Logger(label: "gate-cost"), now: { Date() })
/// The same snapshot without its remembered answers: every request's scopes evaluated against the policy
/// and the grants, as for a scope value the proxy sees for the first time since grants last changed.
struct Unremembered: GrantSnapshotPort {
    let snapshot: GrantSnapshot
    func grants(of clientID: String, now: @escaping @Sendable () -> Date) -> GrantSnapshot.ClientGrants? {
        snapshot.grants(of: clientID, now: now)
    }
}
let iterations = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 200_000
// `plain` (the default): a query of the common shape read in place, its answer remembered as the proxy's
// snapshot remembers it. `evaluated`: the same, every request evaluated. `strict`: every request through
// the strict parser, as a query of another shape (a `+` for a space, a lower-case escape, an unknown
// parameter) is admitted.
let mode = CommandLine.arguments.dropFirst(2).first ?? "plain"
let strict = mode == "strict"
let onlyTheBenchmarksRequest = CommandLine.arguments.dropFirst(3).first == "short"

var forwarded = 0
let start = ContinuousClock.now
for index in 0..<iterations {
    let query = requests[onlyTheBenchmarksRequest ? 0 : index % requests.count]
    // As the proxy does: a query of the plain shape is read in place and forwarded as it came.
    if !strict, let plain = PlainAuthorizationQuery(query) {
        let admitted =
            mode == "evaluated"
            ? service.admitsAtOnce(plain, snapshot: Unremembered(snapshot: snapshot)) : service.admitsAtOnce(plain, snapshot: snapshot)
        guard admitted else { fatalError("the benchmark's requests must be admitted") }
        forwarded &+= query.utf8.count
        continue
    }
    guard let parsed = try? AuthorizationRequest(method: .get, query: query), service.admitsAtOnce(parsed, snapshot: snapshot) != nil
    else { fatalError("the benchmark's requests must be admitted") }
    // As the proxy does: a canonical query is forwarded as it came, anything else re-serialized.
    forwarded &+= parsed.parameters.isCanonical ? query.utf8.count : parsed.parameters.appendingEncoded(to: "/authorize?").utf8.count
}
let elapsed = ContinuousClock.now - start
let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
print("\(iterations) gate decisions, \(Int(nanoseconds / Double(iterations))) ns each (\(forwarded) bytes forwarded)")
