import Foundation
import ScopeGateCore
import ScopeGateStore
import Testing

@testable import ScopeGateServer

/// What apps' owners are told, read from the audit log: one notice per approval's grants, one per
/// revocation, only for clients whose owner asked, on the platform they named.
@Suite struct ChatNoticesTests {
    static func row(_ seq: Int64, _ event: String, client: String, _ data: [String: Any]) throws -> AuditLogRow {
        let payload = try JSONSerialization.data(withJSONObject: ["seq": seq, "event": event, "client_id": client, "data": data])
        return AuditLogRow(
            seq: seq, jws: "e30." + Base64URL.encode(payload) + ".c2ln", event: event, clientID: client, at: Date())
    }

    static var policy: Policy {
        var app = Policy.Client(id: "app", name: "App", redirectURIs: [])
        app.ownerNotify = ["slack": "U0OWNER"]
        return Policy(
            rules: [], clients: [app, Policy.Client(id: "other", name: "Other", redirectURIs: [])],
            tiers: [.init(name: "elevated", grantLifetime: nil)], defaultTier: "elevated", approvalTimeout: .seconds(600))
    }

    @Test func grantsOfOneApprovalMakeOneNoticeAndRevocationsOneEach() throws {
        let rows = [
            try Self.row(1, "decision", client: "app", ["request_id": "ar_1", "outcome": "approved"]),
            try Self.row(2, "grant.created", client: "app", ["request_id": "ar_1", "scope": "a:read", "approved_by": "cli:bob", "expires_at": 1_900_000_000]),
            try Self.row(3, "grant.created", client: "app", ["request_id": "ar_1", "scope": "b:read", "approved_by": "cli:bob", "expires_at": 1_900_000_000]),
            try Self.row(4, "grant.created", client: "other", ["request_id": "ar_2", "scope": "a:read", "approved_by": "cli:bob"]),
            try Self.row(5, "grant.revoked", client: "app", ["scope": "a:read", "actor": "admin:ops"]),
        ]
        let slack = ChatNotices.notices(from: rows, policy: Self.policy, platform: "slack")
        #expect(slack.map(\.through) == [3, 5])
        #expect(slack.allSatisfy { $0.channel == "U0OWNER" })
        #expect(slack[0].text.contains("App (app) was granted a:read b:read by") && slack[0].text.contains("ar_1"))
        #expect(slack[1].text.contains("The grant of a:read to App (app) was revoked"))
        #expect(ChatNotices.notices(from: rows, policy: Self.policy, platform: "teams").isEmpty, "the owner asked for Slack only")
    }

    @Test func identifiedRequestersAreToldOfTheDecision() throws {
        var policy = Self.policy
        let rows = [try Self.row(7, "decision", client: "app", ["request_id": "ar_9", "outcome": "denied", "actor": "cli:bob", "reason": "not now", "scopes": ["a:read"]])]
        #expect(ChatNotices.notices(from: rows, policy: policy, platform: "slack").isEmpty, "requesters are told only where they are identified")
        policy.identifyRequesters = true
        let told = ChatNotices.notices(from: rows, policy: policy, platform: "slack")
        #expect(told.map(\.destination) == [.requesters(requestID: "ar_9")])
        #expect(told.first?.text.contains("Your request for App to have a:read (request ar_9) was denied by") == true)
        #expect(told.first?.text.contains(": not now") == true)
    }

    @Test func theConfigurationNeedsAnAuditLogAndAPlatform() throws {
        let yaml = """
            public_url: https://login.example
            upstream:
              url: http://127.0.0.1:9000
            store:
              path: /tmp/x.sqlite
            clients:
              - id: app
                owner_notify: {slack: U0OWNER}
            """
        #expect {
            try ScopeGateConfiguration.parse(yaml: yaml, baseDirectory: URL(fileURLWithPath: "/tmp"), environment: [:])
        } throws: { error in
            (error as? GateError)?.message.hasPrefix("clients[0].owner_notify needs an audit section") == true
        }
    }
}
