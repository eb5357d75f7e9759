// The gate's own cost per authorization request, outside the proxy: the strict parse, the request's
// validation, the policy evaluation against standing grants and the re-serialized target, as the
// event loop does them for a request whose scopes are all granted. `benchmarks/gate_cost.py` runs it
// under callgrind to count instructions, which are repeatable on a shared machine where time is not.
//
//     swift build -c release --product gate-cost
//     .build/release/gate-cost [iterations] [strict]

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
let granted: Set<String> = Set((0..<100).map { "s\($0)" })

/// The grants as the proxy's in-memory snapshot serves them: the port the gate service reads.
struct Snapshot: GrantSnapshotPort {
    struct Grants: GrantedScopes {
        let scopes: Set<String>
        func contains(_ scope: String) -> Bool { scopes.contains(scope) }
    }
    let granted: Set<String>
    func grants(of clientID: String, now: @escaping @Sendable () -> Date) -> Grants? { Grants(scopes: granted) }
}
let snapshot = Snapshot(granted: granted)
let service = GateService(
    policy: policy, store: InMemoryGateStore(), observer: GateObservers([]), logger: Logger(label: "gate-cost"), now: { Date() })
let iterations = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 200_000
// `strict`: every request through the strict parser, as a query of another shape (a `+` for a space, a
// lower-case escape, an unknown parameter) is admitted.
let strict = CommandLine.arguments.dropFirst(2).first == "strict"

var forwarded = 0
let start = ContinuousClock.now
for index in 0..<iterations {
    let query = requests[index % requests.count]
    // As the proxy does: a query of the plain shape is read in place and forwarded as it came.
    if !strict, let plain = PlainAuthorizationQuery(query) {
        guard service.admitsAtOnce(plain, snapshot: snapshot) else { fatalError("the benchmark's requests must be admitted") }
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
