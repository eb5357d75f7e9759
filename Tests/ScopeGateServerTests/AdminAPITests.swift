import Foundation
import ScopeGateCore
import Testing

@testable import ScopeGateServer

@Suite(.serialized) struct AdminAPITests {
    /// The scraper's token reads metrics and nothing else; the admin token, which decides requests, does
    /// not read metrics: a leaked scraper credential approves nothing.
    @Test func metricsTakeTheirOwnTokenAndTheAdminTokenIsNotIt() async throws {
        let scraper = "scraper-token-0123456789"
        try await GateHarness.with(
            extraConfig: "metrics:\n  token_env: SG_TEST_METRICS_TOKEN", environment: ["SG_TEST_METRICS_TOKEN": scraper]
        ) { (h: GateHarness) async throws in
            #expect(try await h.admin(.GET, "/metrics", token: scraper).status == 200)
            #expect(try await h.admin(.GET, "/metrics").status == 401, "the admin token does not read metrics")
            #expect(try await h.admin(.GET, "/metrics", token: nil).status == 401)
            #expect(try await h.admin(.GET, "/v1/requests", token: scraper).status == 401, "the scraper's token decides nothing")
            #expect(try await h.admin(.GET, "/v1/requests").status == 200)
        }
    }

    @Test func healthAndReadinessNeedNoCredentialAndSayWhatIsWrong() async throws {
        let store = InMemoryGateStore()
        try await GateHarness.with(store: store) { h in
            let health = try await h.admin(.GET, "/healthz", token: nil)
            #expect(health.status == 200 && health.body == "ok\n")
            let ready = try await h.admin(.GET, "/readyz", token: nil)
            #expect(ready.status == 200)
            #expect(ready.body.contains(#""status":"ready""#) && ready.body.contains(#""store":"ok""#) && ready.body.contains(#""upstream":"ok""#))
            await store.setFailing(true)
            let failing = try await h.admin(.GET, "/readyz", token: nil)
            #expect(failing.status == 503)
            #expect(failing.body.contains(#""store":"not writable""#))
            #expect(try await h.admin(.GET, "/healthz", token: nil).status == 200, "alive, though not ready")
        }
        try await GateHarness.with(unreachableUpstream: true) { h in
            let unreachable = try await h.admin(.GET, "/readyz", token: nil)
            #expect(unreachable.status == 503)
            #expect(unreachable.body.contains(#""upstream":"unreachable""#))
        }
    }

    @Test func refusesRequestsWithoutTheToken() async throws {
        try await GateHarness.with { h in
            let missing = try await h.admin(.GET, "/v1/requests", token: nil)
            let wrong = try await h.admin(.GET, "/v1/requests", token: "wrong-token-wrong-token")
            #expect(missing.status == 401)
            #expect(wrong.status == 401)
            #expect(missing.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer") == true)
        }
    }

    @Test func listsApprovesAndReportsTheDecision() async throws {
        try await GateHarness.with { h in
            let browser = Browser(h)
            let page = try await browser.hold(scope: "orders:read")
            let list = try await h.admin(.GET, "/v1/requests?state=pending")
            let reports = try RequestReport.decoder.decode([RequestReport].self, from: Data(list.body.utf8))
            let id = try #require(reports.first?.id)
            #expect(reports.first?.clientName == "Test <App>")
            let approved = try await h.admin(.POST, "/v1/requests/\(id)/approve", body: "{\"reason\":\"ok\"}")
            #expect(approved.status == 200)
            let report = try RequestReport.decoder.decode(RequestReport.self, from: Data(approved.body.utf8))
            #expect(report.state == "approved")
            #expect(report.decidedBy == "admin:admin")
            #expect(try await h.admin(.POST, "/v1/requests/\(id)/deny").status == 409, "the first decision stands")
            #expect(try await browser.send(.GET, page).status == 303)
            let grants = try await h.admin(.GET, "/v1/grants")
            #expect(grants.body.contains("orders:read"))
            #expect(try await h.admin(.DELETE, "/v1/grants/app/orders:read").status == 204)
            #expect(try await h.admin(.DELETE, "/v1/grants/app/orders:read").status == 404)
        }
    }

    @Test func unknownRequestsAre404() async throws {
        try await GateHarness.with { h in
            let reply = try await h.admin(.POST, "/v1/requests/ar_nope/approve")
            #expect(reply.status == 404)
        }
    }
}
