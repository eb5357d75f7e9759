import AsyncHTTPClient
import NIOHTTP1
import Foundation

/// One browser's cookie jar over the harness client: enough to follow ScopeGate's own redirects.
actor Browser {
    let harness: GateHarness
    private var cookie: String?

    init(_ harness: GateHarness) { self.harness = harness }

    func send(_ method: HTTPMethod = .GET, _ target: String, headers: [(String, String)] = [], body: String? = nil) async throws
        -> GateHarness.Reply
    {
        let target = target.hasPrefix(harness.publicURL) ? String(target.dropFirst(harness.publicURL.count)) : target
        var all = headers
        if let cookie { all.append(("Cookie", cookie)) }
        let reply = try await harness.send(method, target, headers: all, body: body)
        if let set = reply.headers.first(name: "Set-Cookie") { cookie = String(set.split(separator: ";")[0]) }
        return reply
    }

    /// Starts an authorization request that the gate holds; returns the waiting page's path.
    func hold(scope: String, state: String = "s1") async throws -> String {
        let reply = try await send(.GET, GateHarness.authorizePath + "?" + GateHarness.authorizeQuery(scope: scope, state: state))
        guard reply.status == 303, let location = reply.location, location.hasPrefix("/_scopegate/holds/") else {
            throw HarnessError("expected a hold, got \(reply.status) \(reply.location ?? "")")
        }
        return location
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
