import AsyncHTTPClient
import Foundation
import ScopeGateCore
import Testing

@testable import ScopeGateServer

@Suite(.serialized) struct HoldFlowTests {
    func pendingID(_ h: GateHarness) async throws -> String {
        try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first?.id)
    }

    @Test func aHeldRequestShowsASafeWaitingPageAndReachesNobody() async throws {
        try await GateHarness.with { h in
            let browser = Browser(h)
            let page = try await browser.hold(scope: "openid+orders:read")
            #expect(h.upstream.received.isEmpty)
            let reply = try await browser.send(.GET, page)
            #expect(reply.status == 200)
            let csp = try #require(reply.headers.first(name: "Content-Security-Policy"))
            #expect(csp.contains("frame-ancestors 'none'"))
            #expect(csp.contains("default-src 'none'"))
            #expect(reply.headers.first(name: "Cache-Control") == "no-store")
            #expect(reply.body.contains("Test &lt;App&gt;"), "the client name is escaped")
            #expect(reply.body.contains("orders:read"))
            #expect(reply.body.contains("Read data"))
            #expect(!reply.body.contains("<App>"))
        }
    }

    @Test func anotherBrowserCannotSeeOrContinueAHold() async throws {
        try await GateHarness.with { h in
            let page = try await Browser(h).hold(scope: "orders:read")
            let stranger = Browser(h)
            let reply = try await stranger.send(.GET, page)
            #expect(reply.status == 404)
            #expect(!reply.body.contains("orders:read"))
            let forged = try await h.send(.GET, page, headers: [("Cookie", "sg_browser=" + String(repeating: "a", count: 64))])
            #expect(forged.status == 404)
        }
    }

    @Test func tenBrowsersMakeOneApprovalRequestAndAllContinueAfterApproval() async throws {
        try await GateHarness.with { h in
            var browsers: [(Browser, String)] = []
            for index in 0..<10 {
                let browser = Browser(h)
                browsers.append((browser, try await browser.hold(scope: "orders:read", state: "s\(index)")))
            }
            let requests = try await h.gate.service.store.approvalRequests(states: nil)
            #expect(requests.count == 1)
            try await h.gate.service.approve(requests[0].id, actor: "test", once: false)
            for (browser, page) in browsers {
                let reply = try await browser.send(.GET, page)
                #expect(reply.status == 303)
                let next = try #require(reply.location)
                #expect(next.hasPrefix(h.publicURL + GateHarness.authorizePath + "?"))
                let forwarded = try await browser.send(.GET, next)
                #expect(forwarded.status == 200)
            }
            #expect(h.upstream.received(at: GateHarness.authorizePath).count == 10)
        }
    }

    /// Holds a request, opens the live status, lets `decide` decide it, and checks that the status
    /// answered `expected` within a second of the decision.
    func expectStatusWakes(_ h: GateHarness, expected: String, decide: (String) async throws -> Void) async throws {
        let browser = Browser(h)
        let page = try await browser.hold(scope: "orders:read")
        let id = try await pendingID(h)
        async let status = browser.send(.GET, page + "/status")
        try await Task.sleep(for: .milliseconds(300))
        let decidedAt = ContinuousClock.now
        try await decide(id)
        let reply = try await status
        #expect(reply.body == "{\"state\":\"\(expected)\"}")
        #expect(ContinuousClock.now - decidedAt < .seconds(1))
    }

    @Test func theLiveStatusWakesWithinASecondOfADecision() async throws {
        try await GateHarness.with { h in
            try await expectStatusWakes(h, expected: "approved") { id in
                try await h.gate.service.approve(id, actor: "test", once: false)
            }
        }
    }

    @Test func aDecisionFromAnotherProcessReachesTheWaitingBrowser() async throws {
        try await GateHarness.with { h in
            // A second store on the same file, as `scopegate requests deny` would open.
            let other = GateService(
                policy: h.gate.configuration.policy, store: try SQLiteGateStoreForTests.open(h.storePath),
                observer: GateObservers([]), logger: .init(label: "cli"))
            try await expectStatusWakes(h, expected: "denied") { id in
                try await other.deny(id, actor: "cli:bob", reason: "not this quarter")
            }
        }
    }

    @Test func aDenialReachesTheClientWithItsStateAndIss() async throws {
        try await GateHarness.with { h in
            let browser = Browser(h)
            let page = try await browser.hold(scope: "orders:read", state: "a%26b")
            try await h.gate.service.deny(try await pendingID(h), actor: "test", reason: "no")
            let reply = try await browser.send(.GET, page)
            #expect(reply.status == 303)
            let location = try #require(reply.location)
            #expect(location.hasPrefix("https://app.example/cb?error=access_denied&error_description="))
            #expect(location.contains("&state=a%26b"))
            #expect(location.contains("&iss="))
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test(arguments: [("fragment", "https://app.example/cb#error=access_denied"), ("form_post", "")])
    func aDenialHonoursTheResponseMode(_ mode: String, _ prefix: String) async throws {
        try await GateHarness.with { h in
            let browser = Browser(h)
            let reply = try await browser.send(
                .GET, GateHarness.authorizePath + "?" + GateHarness.authorizeQuery(scope: "admin:org", extra: "&response_mode=\(mode)"))
            if mode == "form_post" {
                #expect(reply.status == 200)
                #expect(reply.body.contains("<form id=\"continue\" method=\"post\" action=\"https://app.example/cb\">"))
                #expect(reply.body.contains("name=\"error\" value=\"access_denied\""))
                #expect(reply.body.contains("name=\"state\" value=\"st/ate 1\""))
                #expect(reply.headers.first(name: "Content-Security-Policy")?.contains("form-action 'self' https://app.example") == true)
            } else {
                #expect(reply.location?.hasPrefix(prefix) == true)
            }
        }
    }

    @Test func expiryEndsLikeADenialWithItsOwnDescription() async throws {
        try await GateHarness.with(extraConfig: "") { h in
            let browser = Browser(h)
            let page = try await browser.hold(scope: "orders:read")
            let id = try await pendingID(h)
            let later = GateService(
                policy: h.gate.configuration.policy, store: h.gate.service.store, observer: GateObservers([]),
                logger: .init(label: "t"), now: { Date().addingTimeInterval(601) })
            #expect(try await later.expireDue().map(\.id) == [id])
            let reply = try await browser.send(.GET, page)
            #expect(reply.location?.contains("error=access_denied") == true)
            #expect(reply.location?.contains("expired") == true)
        }
    }

    @Test func approveOnceContinuesWithoutAStandingGrant() async throws {
        try await GateHarness.with { h in
            let browser = Browser(h)
            let page = try await browser.hold(scope: "orders:read")
            try await h.gate.service.approve(try await pendingID(h), actor: "test", once: true)
            let next = try #require(try await browser.send(.GET, page).location)
            #expect(try await browser.send(.GET, next).status == 200)
            let otherBrowser = try await Browser(h).send(.GET, next)
            #expect(otherBrowser.status == 303, "another browser replaying the request is held")
            #expect(h.upstream.received(at: GateHarness.authorizePath).count == 1)
            #expect(try await h.gate.service.store.allActiveGrants(at: Date()).isEmpty)
        }
    }

    /// A release admits only what still stands: a grant revoked between the hold and its release sends
    /// the request back to the approvers, and the IdP receives nothing.
    @Test(arguments: [false, true])
    func aGrantRevokedBeforeTheReleaseIsAskedAgain(_ once: Bool) async throws {
        try await GateHarness.with { h in
            // orders:read is granted; the held request asks for it and for billing:read.
            _ = try await Browser(h).hold(scope: "orders:read", state: "first")
            try await h.gate.service.approve(try await pendingID(h), actor: "test", once: false)
            let browser = Browser(h)
            let page = try await browser.hold(scope: "orders:read+billing:read")
            let approval = try await pendingID(h)
            #expect(try await h.gate.service.store.approvalRequest(id: approval)?.scopes.tokens == ["billing:read"])
            if once {
                try await h.gate.service.approve(approval, actor: "test", once: true)
            } else {
                try await h.gate.service.approve(approval, actor: "test", once: false)
                _ = try await h.gate.service.store.revokeGrant(clientID: "app", scope: "billing:read", actor: "test", at: Date())
            }
            _ = try await h.gate.service.store.revokeGrant(clientID: "app", scope: "orders:read", actor: "test", at: Date())
            h.gate.snapshot.invalidate()
            let next = try #require(try await browser.send(.GET, page).location)
            let again = try await browser.send(.GET, next)
            #expect(again.status == 303)
            #expect(again.location?.hasPrefix("/_scopegate/holds/") == true, "asked again, not forwarded")
            #expect(h.upstream.received(at: GateHarness.authorizePath).isEmpty)
        }
    }

    /// Opening approval requests takes no authentication: new holds are limited per source address,
    /// per client and in all, and a request over a limit is refused before anything is stored.
    @Test func aFloodOfNewHoldsIsRefusedBeforeAnythingIsStored() async throws {
        let limits = "approvals:\n  new_holds_per_minute:\n    per_source: 3\n    per_client: 100\n    total: 100"
        try await GateHarness.with(configuration: { places in
            GateHarness.configYAML(
                upstreamPort: Int(places.upstreamURL.split(separator: ":").last!)!, publicPort: places.publicPort,
                adminPort: places.adminPort, storePath: places.storePath, extra: "", unreachableUpstream: false
            ).replacingOccurrences(of: "approvals:\n  timeout: 10m", with: limits)
        }) { h in
            for index in 0..<3 { _ = try await Browser(h).hold(scope: "orders:read", state: "s\(index)") }
            let refused = try await Browser(h).send(
                .GET, GateHarness.authorizePath + "?" + GateHarness.authorizeQuery(scope: "billing:read", state: "s4"))
            #expect(refused.status == 429)
            #expect(refused.headers.first(name: "Retry-After") == "60")
            let requests = try await h.gate.service.store.approvalRequests(states: nil)
            #expect(requests.count == 1, "three browsers asking the same make one question; the fourth opened nothing")
            #expect(try await h.gate.service.store.holds(approvalRequestID: requests[0].id).count == 3)
            let token = try await h.send(
                .POST, "/o/token/", headers: [("Content-Type", "application/x-www-form-urlencoded"),
                    ("Authorization", "Basic " + Data("app:s".utf8).base64EncodedString())],
                body: "grant_type=client_credentials&scope=billing%3Awrite")
            #expect(token.status == 429)
            #expect(token.body.contains("slow_down"))
            #expect(h.upstream.received.isEmpty)
        }
    }

    @Test func aJustificationIsStoredAndShownEscaped() async throws {
        try await GateHarness.with { h in
            let browser = Browser(h)
            let page = try await browser.hold(scope: "orders:read")
            let posted = try await browser.send(
                .POST, page + "/justification", headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Origin", h.publicURL)],
                body: "justification=Quarterly+%3Cscript%3E+report")
            #expect(posted.status == 303)
            let hold = try #require(try await h.gate.service.store.holds(approvalRequestID: try await pendingID(h)).first)
            #expect(hold.justification == "Quarterly <script> report")
            let reply = try await browser.send(.GET, page)
            #expect(reply.body.contains("Quarterly &lt;script&gt; report"))
            let crossSite = try await browser.send(
                .POST, page + "/justification", headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Origin", "https://evil.example")],
                body: "justification=forged")
            #expect(crossSite.status == 403)
        }
    }

    @Test func aFailingStoreAnswers503AndForwardsNothing() async throws {
        let store = InMemoryGateStore()
        try await GateHarness.with(store: store) { h in
            await store.setFailing(true)
            // The grant snapshot answers for at most its maximum age after its last good refresh.
            try await Task.sleep(for: h.gate.snapshot.maximumAge + .milliseconds(600))
            let reply = try await h.send(.GET, GateHarness.authorizePath + "?" + GateHarness.authorizeQuery(scope: "openid"))
            #expect(reply.status == 503)
            #expect(h.upstream.received.isEmpty)
        }
    }

    /// Both spellings: `orders%3Aread` makes the whole query canonical, read in place on the event loop
    /// (`PlainAuthorizationQuery`); `orders:read` takes the strict parser.
    @Test(arguments: ["orders%3Aread", "orders:read"])
    func aRevocationFromAnotherProcessStopsAdmissionWithinASecond(_ scope: String) async throws {
        try await GateHarness.with { h in
            let browser = Browser(h)
            _ = try await browser.hold(scope: "orders:read")
            try await h.gate.service.approve(try await pendingID(h), actor: "test", once: false)
            let query = GateHarness.authorizePath + "?" + GateHarness.authorizeQuery(scope: scope, state: "again")
            let admitted = try await Browser(h).send(.GET, query)
            #expect(admitted.status == 200)
            let commandLine = try SQLiteGateStoreForTests.open(h.storePath)
            #expect(try await commandLine.revokeGrant(clientID: "app", scope: "orders:read", actor: "test", at: Date()))
            try await Task.sleep(for: .seconds(1))
            let afterRevocation = try await Browser(h).send(.GET, query)
            #expect(afterRevocation.status == 303, "a revoked grant must not admit anything")
            #expect(h.upstream.received(at: GateHarness.authorizePath).count == 1)
        }
    }
}
