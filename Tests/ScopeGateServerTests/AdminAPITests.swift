import Foundation
import Testing

@testable import ScopeGateServer

@Suite(.serialized) struct AdminAPITests {
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
