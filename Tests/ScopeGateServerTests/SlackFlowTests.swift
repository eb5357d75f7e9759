import AsyncHTTPClient
import Foundation
import ScopeGateAudit
import ScopeGateCore
import ScopeGateStore
import Synchronization
import Testing

@testable import ScopeGateServer

/// Slack approvals end to end inside the process: ScopeGate in front of a recording upstream, posting
/// to a fake Slack Web API, clicked through signed interactions.
@Suite(.serialized) struct SlackFlowTests {
    /// Polls until `condition` holds (the outbox works in the background), for up to five seconds.
    func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<100 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw HarnessError("timed out waiting until \(what)")
    }

    func pending(_ h: GateHarness) async throws -> ApprovalRequest {
        try #require(try await h.gate.service.store.approvalRequests(states: [.pending]).first)
    }

    func click(
        _ h: GateHarness, _ action: SlackApprovalMessage.Action, on id: String, as user: String = "U0ALICE",
        team: String = FakeSlack.teamID, triggerID: String = UUID().uuidString
    ) async throws -> GateHarness.Reply {
        let (body, headers) = FakeSlack.interaction(action: action.rawValue, requestID: id, user: user, team: team, triggerID: triggerID)
        return try await h.send(.POST, SlackInteractions.path, headers: headers, body: body)
    }

    func blocks(_ call: FakeSlack.Call) -> String { call.json["blocks"]?.text ?? "" }

    @Test func anApprovalClickReleasesTheWaitingBrowserAndUpdatesTheMessage() async throws {
        try await FakeSlack.with { slack in
            try await GateHarness.with(slack: slack) { h in
                let browser = Browser(h)
                let page = try await browser.hold(scope: "openid+orders:read")
                let request = try await pending(h)
                try await eventually("the request is posted") { slack.calls("chat.postMessage").count == 2 }
                let posts = slack.calls("chat.postMessage")
                #expect(Set(posts.compactMap { $0.json["channel"]?.string }) == ["C0APPROVALS", "U0ALICE"])
                #expect(posts.allSatisfy { self.blocks($0).contains(request.id) && self.blocks($0).contains("orders:read") })
                #expect(posts.allSatisfy { self.blocks($0).contains("App: known since \(ChatText.date(request.createdAt))") })
                #expect(posts.allSatisfy { $0.authorization == "Bearer \(FakeSlack.botToken)" })
                #expect(h.upstream.received(at: GateHarness.authorizePath).isEmpty)

                let reply = try await click(h, .approve, on: request.id)
                #expect(reply.status == 200)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .approved)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.decision?.actor == "slack:T0TEAM/U0ALICE")
                let continued = try await browser.send(.GET, page)
                #expect(continued.status == 303)
                let forwarded = try await browser.send(.GET, try #require(continued.location))
                #expect(forwarded.status == 200)
                #expect(h.upstream.received(at: GateHarness.authorizePath).count == 1)

                try await eventually("both messages are updated") { slack.calls("chat.update").count == 2 }
                let updates = slack.calls("chat.update")
                #expect(Set(updates.compactMap { $0.json["channel"]?.string }) == ["C0APPROVALS", "D0ALICE"])
                #expect(updates.allSatisfy { self.blocks($0).contains("*Approved* by <@U0ALICE>") })
                #expect(updates.allSatisfy { !self.blocks($0).contains("scopegate_approve") })
            }
        }
    }

    /// Identical asks collapse into one message, which says how many requests wait on it.
    @Test func theMessageCountsTheRequestsWaiting() async throws {
        try await FakeSlack.with { slack in
            try await GateHarness.with(slack: slack) { h in
                _ = try await Browser(h).hold(scope: "orders:read", state: "a")
                try await eventually("the request is posted") { slack.calls("chat.postMessage").count == 2 }
                #expect(slack.calls("chat.postMessage").allSatisfy { self.blocks($0).contains("*Waiting*\\n1 request") })
                _ = try await Browser(h).hold(scope: "orders:read", state: "b")
                _ = try await Browser(h).hold(scope: "orders:read", state: "c")
                try await eventually("the messages show three waiting") {
                    slack.calls("chat.update").filter { self.blocks($0).contains("*Waiting*\\n3 requests") }.count == 2
                }
                #expect(slack.calls("chat.postMessage").count == 2, "one question, not three")
                // Approve once releases all three: the button says so, and asks to confirm.
                let latest = try #require(slack.calls("chat.update").last)
                #expect(self.blocks(latest).contains("Approve once (all 3)"))
                #expect(self.blocks(latest).contains("Release all 3?"))
            }
        }
    }

    @Test func aDenyClickEndsTheFlowWithAccessDenied() async throws {
        try await FakeSlack.with { slack in
            try await GateHarness.with(slack: slack) { h in
                let browser = Browser(h)
                let page = try await browser.hold(scope: "orders:read", state: "xyz")
                let request = try await pending(h)
                #expect(try await click(h, .deny, on: request.id).status == 200)
                let reply = try await browser.send(.GET, page)
                #expect(reply.status == 303)
                #expect(reply.location?.hasPrefix("https://app.example/cb?error=access_denied") == true)
                #expect(reply.location?.contains("state=xyz") == true)
                #expect(h.upstream.received(at: GateHarness.authorizePath).isEmpty)
                try await eventually("the message shows the denial") {
                    slack.calls("chat.update").contains { self.blocks($0).contains("*Denied* by <@U0ALICE>") }
                }
            }
        }
    }

    @Test func criticalScopesGoToTheirRouteAndItsGroupDecides() async throws {
        try await FakeSlack.with { slack in
            slack.setGroup("S0SECURITY", members: ["U0BOB"])
            try await GateHarness.with(slack: slack) { h in
                _ = try await Browser(h).hold(scope: "orders:write")
                let request = try await pending(h)
                try await eventually("the request is posted") { !slack.calls("chat.postMessage").isEmpty }
                #expect(slack.calls("chat.postMessage").map { $0.json["channel"]?.string } == ["C0CRITICAL"])
                #expect(self.blocks(slack.calls("chat.postMessage")[0]).contains("Approve critical scopes?"))

                // Alice approves the everyday route, not this one.
                #expect(try await click(h, .approve, on: request.id, as: "U0ALICE").status == 200)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .pending)
                #expect(slack.calls("chat.postEphemeral").last?.json["text"]?.string?.contains("not an approver") == true)
                #expect(slack.calls("chat.postEphemeral").last?.json["user"]?.string == "U0ALICE")

                // Bob is in the group, but while his account is a guest's he decides nothing.
                slack.makeGuest("U0BOB")
                #expect(try await click(h, .approve, on: request.id, as: "U0BOB").status == 200)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .pending)
                #expect(slack.calls("users.info").last?.form["user"] == "U0BOB")
                #expect(try await click(h, .approveOnce, on: request.id, as: "U0BOB").status == 200)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .pending, "the verdict is cached")
                #expect(slack.calls("usergroups.users.list").first?.form["usergroup"] == "S0SECURITY")
            }
        }
    }

    @Test func aGroupMemberWithAnActiveAccountDecides() async throws {
        try await FakeSlack.with { slack in
            slack.setGroup("S0SECURITY", members: ["U0BOB", "U0CAROL"])
            slack.deactivate("U0CAROL")
            try await GateHarness.with(slack: slack) { h in
                _ = try await Browser(h).hold(scope: "orders:write")
                let request = try await pending(h)
                #expect(try await click(h, .approve, on: request.id, as: "U0CAROL").status == 200)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .pending, "a deactivated account decides nothing")
                #expect(try await click(h, .approveOnce, on: request.id, as: "U0BOB").status == 200)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .approvedOnce)
            }
        }
    }

    @Test func forgedStaleReplayedForeignAndMalformedClicksChangeNothing() async throws {
        try await FakeSlack.with { slack in
            try await GateHarness.with(slack: slack) { h in
                _ = try await Browser(h).hold(scope: "orders:read")
                let request = try await pending(h)
                let path = SlackInteractions.path

                let (body, headers) = FakeSlack.interaction(action: "scopegate_approve", requestID: request.id, user: "U0ALICE")
                var forged = headers
                forged[2].1 = "v0=" + String(repeating: "0", count: 64)
                #expect(try await h.send(.POST, path, headers: forged, body: body).status == 401)
                #expect(try await h.send(.POST, path, headers: Array(headers.prefix(1)), body: body).status == 401)
                #expect(try await h.send(.POST, path, headers: headers, body: body + "&x=1").status == 401)
                let stale = FakeSlack.interaction(
                    action: "scopegate_approve", requestID: request.id, user: "U0ALICE", timestamp: Date().addingTimeInterval(-400))
                #expect(try await h.send(.POST, path, headers: stale.headers, body: stale.body).status == 401)
                let foreignSecret = FakeSlack.interaction(
                    action: "scopegate_approve", requestID: request.id, user: "U0ALICE", secret: "not-the-secret")
                #expect(try await h.send(.POST, path, headers: foreignSecret.headers, body: foreignSecret.body).status == 401)
                #expect(try await h.send(.GET, path).status == 405)
                let malformed = "payload=%7Bnot-json"
                #expect(try await h.send(.POST, path, headers: FakeSlack.signed(body: malformed, timestamp: Date()), body: malformed).status == 400)
                // An approver's id in another workspace is not that approver.
                #expect(try await click(h, .approve, on: request.id, team: "T0OTHER").status == 200)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .pending)

                // A real click, then the same delivery again (Slack's retry): one effect.
                let trigger = "trigger-1"
                #expect(try await click(h, .deny, on: request.id, triggerID: trigger).status == 200)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .denied)
                let ephemeralBefore = slack.calls("chat.postEphemeral").count
                #expect(try await click(h, .approve, on: request.id, triggerID: trigger).status == 200)
                #expect(slack.calls("chat.postEphemeral").count == ephemeralBefore, "a replay has no effect at all")
                // A new click on a decided request: the first decision stands.
                #expect(try await click(h, .approve, on: request.id).status == 200)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .denied)
                #expect(slack.calls("chat.postEphemeral").last?.json["text"]?.string?.contains("already denied") == true)
                #expect(h.upstream.received(at: GateHarness.authorizePath).isEmpty)
            }
        }
    }

    @Test func aSlackOutageLosesNothingAndPostsOnce() async throws {
        try await FakeSlack.with { slack in
            slack.fail("chat.postMessage", with: .status(500), .rateLimited(retryAfter: 1), .error("internal_error"))
            try await GateHarness.with(slack: slack) { h in
                let browser = Browser(h)
                let page = try await browser.hold(scope: "orders:read")
                let request = try await pending(h)
                let outbox = h.gate.service.store as! any ChatOutboxStore
                try await eventually("the request is posted to both destinations") {
                    let messages = try await outbox.chatMessages(approvalRequestID: request.id)
                    return messages.count == 2 && messages.allSatisfy(\.isCurrent)
                }
                #expect(slack.calls("chat.postMessage").count == 5, "three failures, then one post per destination")
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .pending, "an outage never decides")
                #expect(h.upstream.received(at: GateHarness.authorizePath).isEmpty)
                #expect(try await click(h, .approve, on: request.id).status == 200)
                #expect(try await browser.send(.GET, page).status == 303)
            }
        }
    }

    @Test func aSlowSuccessIsNotRacedByARetry() async throws {
        try await FakeSlack.with { slack in
            // Slower than many outbox ticks: no second attempt may start while the first is in flight.
            slack.delay("chat.postMessage", by: .milliseconds(1200))
            try await GateHarness.with(slack: slack) { h in
                _ = try await Browser(h).hold(scope: "orders:read")
                let request = try await pending(h)
                let outbox = h.gate.service.store as! any ChatOutboxStore
                try await eventually("both destinations are posted") {
                    try await outbox.chatMessages(approvalRequestID: request.id).filter(\.isCurrent).count == 2
                }
                try await Task.sleep(for: .milliseconds(600))
                let channels = slack.calls("chat.postMessage").compactMap { $0.json["channel"]?.string }
                #expect(channels.sorted() == ["C0APPROVALS", "U0ALICE"], "each message posted exactly once")
            }
        }
    }

    @Test func aPermanentErrorIsRecordedAndNotRetried() async throws {
        try await FakeSlack.with { slack in
            slack.fail("chat.postMessage", with: .error("channel_not_found"))
            try await GateHarness.with(slack: slack) { h in
                _ = try await Browser(h).hold(scope: "orders:read")
                let request = try await pending(h)
                let outbox = h.gate.service.store as! any ChatOutboxStore
                try await eventually("the failure is recorded") {
                    try await outbox.chatMessages(approvalRequestID: request.id).contains(where: \.failedPermanently)
                }
                try await Task.sleep(for: .milliseconds(600))
                let failed = try await outbox.chatMessages(approvalRequestID: request.id).filter(\.failedPermanently)
                #expect(failed.count == 1)
                #expect(failed.first?.lastError == "channel_not_found")
                #expect(slack.calls("chat.postMessage").filter { $0.json["channel"]?.string == failed.first?.channel }.count == 1)
                let report = try await h.admin(.GET, "/v1/requests/\(request.id)")
                #expect(report.body.contains("\"status\" : \"failed\""))
                #expect(report.body.contains("channel_not_found"))
                let metrics = try await h.admin(.GET, "/metrics")
                #expect(metrics.status == 200)
                #expect(metrics.body.contains(#"scopegate_chat_messages_failed_total{platform="slack"} 1"#))
                #expect(metrics.body.contains(#"scopegate_chat_calls_total{platform="slack",method="chat.postMessage",outcome="permanent"} 1"#))
                #expect(metrics.body.contains("scopegate_approval_requests_opened_total 1"))
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .pending)
            }
        }
    }

    @Test func decisionsElsewhereAndNewJustificationsUpdateTheMessage() async throws {
        try await FakeSlack.with { slack in
            try await GateHarness.with(slack: slack) { h in
                let browser = Browser(h)
                let page = try await browser.hold(scope: "orders:read")
                let request = try await pending(h)
                try await eventually("the request is posted") { slack.calls("chat.postMessage").count == 2 }
                let holdID = String(page.split(separator: "/").last!)
                let pageReply = try await browser.send(.GET, page)
                #expect(pageReply.status == 200)
                let justified = try await browser.send(
                    .POST, page + "/justification",
                    headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Origin", h.publicURL)],
                    body: "justification=Quarterly+report+%3C%40U0BOSS%3E")
                #expect(justified.status == 303 || justified.status == 200, "justification accepted for \(holdID)")
                try await eventually("the justification reaches the message") {
                    slack.calls("chat.update").contains { self.blocks($0).contains("Quarterly report <@U0BOSS>") }
                }
                let withReason = slack.calls("chat.update").first { self.blocks($0).contains("Quarterly report") }!
                #expect(self.blocks(withReason).contains(#""type":"plain_text""#))
                _ = try await h.admin(.POST, "/v1/requests/\(request.id)/deny", body: "{}")
                try await eventually("the admin decision reaches the message") {
                    slack.calls("chat.update").contains { self.blocks($0).contains("*Denied* by the admin API") }
                }

                // An expiry updates the message the same way.
                _ = try await Browser(h).hold(scope: "invoices:read")
                let second = try await pending(h)
                try await eventually("the second request is posted") { slack.calls("chat.postMessage").count == 4 }
                _ = try await h.gate.service.store.decide(
                    second.id, Decision(outcome: .expired, actor: "policy:expiry", at: second.expiresAt), grants: [])
                try await eventually("the expiry reaches the message") {
                    slack.calls("chat.update").contains { self.blocks($0).contains("*Expired* unanswered") && self.blocks($0).contains(second.id) }
                }
            }
        }
    }

    @Test func socketModeAcknowledgesDecidesAndReconnectsWhenAsked() async throws {
        try await FakeSlack.with { slack in
            try await GateHarness.with(slack: slack, socketMode: true) { h in
                try await eventually("ScopeGate connects") { slack.openSockets == 1 }
                let browser = Browser(h)
                let page = try await browser.hold(scope: "orders:read")
                let request = try await pending(h)
                // The HTTP endpoint is off under Socket Mode, even with a valid signature.
                let (body, headers) = FakeSlack.interaction(action: "scopegate_approve", requestID: request.id, user: "U0ALICE")
                #expect(try await h.send(.POST, SlackInteractions.path, headers: headers, body: body).status == 404)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .pending)

                // A stranger's click is acknowledged and changes nothing.
                let strangers = slack.sendInteraction(action: "scopegate_approve", requestID: request.id, user: "U0MALLORY")
                try await eventually("the envelope is acknowledged") { slack.acknowledged.contains(strangers) }
                try await eventually("the stranger is told") { !slack.calls("chat.postEphemeral").isEmpty }
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .pending)

                // Slack rotates the connection; ScopeGate opens a new one at once.
                slack.sendOnSocket(#"{"type":"disconnect","reason":"refresh_requested","debug_info":{"host":"fake"}}"#)
                try await eventually("ScopeGate reconnects") { slack.connectionsOpened == 2 && slack.openSockets == 1 }
                #expect(slack.calls("apps.connections.open").allSatisfy { $0.authorization == "Bearer \(FakeSlack.appToken)" })

                let trigger = "socket-trigger"
                let approval = slack.sendInteraction(action: "scopegate_approve", requestID: request.id, user: "U0ALICE", triggerID: trigger)
                try await eventually("the approval is acknowledged and recorded") {
                    let state = try await h.gate.service.store.approvalRequest(id: request.id)?.state
                    return slack.acknowledged.contains(approval) && state == .approved
                }
                // Slack redelivers an envelope it thinks was lost: acknowledged again, no second effect.
                let ephemerals = slack.calls("chat.postEphemeral").count
                let redelivery = slack.sendInteraction(action: "scopegate_deny", requestID: request.id, user: "U0ALICE", triggerID: trigger)
                try await eventually("the redelivery is acknowledged") { slack.acknowledged.contains(redelivery) }
                try await Task.sleep(for: .milliseconds(200))
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .approved)
                #expect(slack.calls("chat.postEphemeral").count == ephemerals)
                #expect(try await browser.send(.GET, page).status == 303)
            }
        }
    }

    /// Signs until told to fail, as a signing key that became unreadable would.
    final class SwitchableSealer: AuditSealing, @unchecked Sendable {
        let signer = AuditSigner(key: .generate(.es256), issuer: "http://127.0.0.1")
        let failing = Mutex(false)
        func seal(_ event: AuditEvent, seq: Int64, previous: String?, at date: Date) throws -> String {
            if failing.withLock({ $0 }) { throw CancellationError() }
            return try signer.seal(event, seq: seq, previous: previous, at: date)
        }
    }

    @Test func aClickWhoseAuditEntryCannotBeWrittenChangesNothingAndSaysSo() async throws {
        let sealer = SwitchableSealer()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sg-\(UUID().uuidString)/gate.sqlite").path
        let store = try SQLiteGateStore(path: path, audit: sealer)
        try await FakeSlack.with { slack in
            try await GateHarness.with(store: store, slack: slack) { h in
                let browser = Browser(h)
                let page = try await browser.hold(scope: "orders:read")
                let request = try await pending(h)
                sealer.failing.withLock { $0 = true }
                #expect(try await click(h, .approve, on: request.id).status == 200)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .pending)
                #expect(slack.calls("chat.postEphemeral").last?.json["text"]?.string?.contains("could not record your decision") == true)
                #expect(try await browser.send(.GET, page).status == 200, "still the waiting page")
                #expect(h.upstream.received(at: GateHarness.authorizePath).isEmpty)
                sealer.failing.withLock { $0 = false }
                #expect(try await click(h, .approve, on: request.id).status == 200)
                #expect(try await h.gate.service.store.approvalRequest(id: request.id)?.state == .approved)
                let entries = try await store.auditEntries().map(\.jws)
                #expect(entries.count >= 4)
                #expect(AuditVerifier(keys: [sealer.signer.key.publicKey]).verify(entries: entries) == .success(.init(entries: entries.count, checkpoints: 0)))
            }
        }
    }

    @Test func auditCheckpointsGoToTheirSlackChannelFileAndWebhook() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sg-\(UUID().uuidString)")
        let keyring = AuditKeyring(directory: folder.appendingPathComponent("keys"))
        let key = try keyring.generate(.es256).new
        let signer = AuditSigner(key: key, issuer: "http://127.0.0.1")
        let store = try SQLiteGateStore(path: folder.appendingPathComponent("gate.sqlite").path, audit: signer)
        let file = folder.appendingPathComponent("checkpoints.jsonl").path
        let audit = """
            audit:
              keys: \(folder.appendingPathComponent("keys").path)
              checkpoint_every: 2
              checkpoint_interval: 1h
              checkpoint_file: \(file)
              checkpoint_slack_channel: C0AUDIT
            """
        try await FakeSlack.with { slack in
            // The fake Slack server records any POST under its API path: it stands in for the webhook.
            let audit = audit + "\n  checkpoint_webhook: \(slack.apiURL)/audit.checkpoint"
            try await GateHarness.with(extraConfig: audit, store: store, slack: slack, auditSigner: signer) { h in
                // The first checkpoint is written at start, over an empty log.
                try await eventually("the first checkpoint is posted") {
                    slack.calls("chat.postMessage").contains { $0.json["channel"]?.string == "C0AUDIT" }
                }
                _ = try await Browser(h).hold(scope: "orders:read")
                try await eventually("a checkpoint covers the new entries") {
                    (try await store.auditCheckpoints()).count >= 2
                }
                let entries = try await store.auditEntries().map(\.jws)
                let checkpoints = try await store.auditCheckpoints()
                let verifier = AuditVerifier(keys: try keyring.publicKeys())
                #expect(verifier.verify(entries: entries, checkpoints: checkpoints) == .success(.init(entries: entries.count, checkpoints: checkpoints.count)))
                // A checkpoint is stored first and posted after: wait for the post of the last one.
                try await eventually("every checkpoint is posted to the channel") {
                    slack.calls("chat.postMessage").filter { $0.json["channel"]?.string == "C0AUDIT" }.count >= checkpoints.count
                }
                let posted = slack.calls("chat.postMessage").filter { $0.json["channel"]?.string == "C0AUDIT" }
                #expect(posted.count >= checkpoints.count)
                #expect(posted.contains { $0.json["text"]?.string?.contains(checkpoints.last!) == true })
                try await eventually("every checkpoint reaches the webhook") {
                    slack.calls("audit.checkpoint").count >= checkpoints.count
                }
                let hooks = slack.calls("audit.checkpoint")
                #expect(hooks.map { $0.json["checkpoint"]?.string } == checkpoints.map { $0 })
                #expect(hooks.allSatisfy { $0.json["type"]?.string == "scopegate.audit.checkpoint" })
                let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
                #expect(lines.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) } == checkpoints)
                let served = try await h.send(.GET, "/_scopegate/audit/jwks.json")
                #expect(served.status == 200)
                #expect(served.body.contains(key.publicKey.kid))
            }
        }
    }
}
