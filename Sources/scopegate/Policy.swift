import ArgumentParser
import Foundation
import ScopeGateCore
import ScopeGateServer

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Work with the policy.", subcommands: [Explain.self])

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Say what the policy does with a client's request, rule by rule, and where it would be asked; changes nothing.")
        @OptionGroup var options: ConfigOption
        @Option(help: "The client_id.")
        var client: String
        @Option(help: "The permissions asked for, space-separated, as in a scope parameter (other kinds as @resource:…).")
        var scope: String
        @Flag(help: "Count the client's grants in force in the store (read only); without it, as for a client that holds none.")
        var withGrants = false

        func run() async throws {
            let configuration = try options.load()
            let policy = configuration.policy
            let permissions = ScopeSet(scope.split(separator: " ").map(String.init))
            guard !permissions.isEmpty else { throw ValidationError("--scope names no permission") }
            var granted = Set<String>()
            var firstRequest: Date?
            if withGrants {
                let store = try await configuration.openStore()
                granted = Set(try await store.activeGrants(clientID: client, among: permissions, at: Date()).map(\.scope))
                // A client never held before would be known from this request on: age 0.
                firstRequest = try await store.firstRequestDate(clientID: client) ?? Date()
            }
            print("client \(client) (\(policy.clients[client].map { "\($0.name)" } ?? "not in the configuration"))")
            let standing = policy.standing(of: client, firstRequest: firstRequest)
            let clientRules = policy.automation.filter { rule in
                (rule.looksAtClientAge || !rule.registrations.isEmpty) && (rule.clients.isEmpty || rule.clients.contains(client))
                    && (rule.registrations.isEmpty || rule.registrations.contains(standing.registration))
            }
            if !clientRules.isEmpty {
                let since: String
                if let known = standing.knownSince {
                    let days = Int(Date().timeIntervalSince(known) / 86_400)
                    since = "known since \(known.formatted(.iso8601)) (\(days) days)"
                } else {
                    since = "age unknown, so rules on client age do not apply here (--with-grants reads its first request from the store)"
                }
                print("  registration \(standing.registration), \(since)")
            }
            for permission in permissions {
                let rule = policy.rule(for: permission, clientID: client)
                let held = granted.contains(permission) ? ", granted" : ""
                print("  \(permission): \(rule.auto.rawValue) by \(rule.origin) ('\(rule.pattern)'), tier \(rule.tier)\(held)")
            }
            switch policy.evaluate(scopes: permissions, clientID: client, granted: granted) {
            case .allow:
                print("decision: forwarded to the IdP (every permission is granted or approved by policy)")
            case .deny(let denied):
                print("decision: refused with access_denied (the policy denies \(denied.tokens.joined(separator: " ")))")
            case .hold(let unapproved, let alreadyGranted):
                print("decision: held for approval of \(unapproved.tokens.joined(separator: " "))"
                    + (alreadyGranted.isEmpty ? "" : " (already granted: \(alreadyGranted.tokens.joined(separator: " ")))"))
                let asked = ApprovalRequest(
                    id: "", clientID: client, scopes: unapproved, alreadyGranted: alreadyGranted, createdAt: Date(), expiresAt: Date())
                if let rule = policy.automation(for: asked, client: standing) {
                    print("automation: \(rule.name) (\(rule.origin)) decides it at once: \(rule.outcome == .approve ? "approved" : "denied"), no approver is asked")
                } else if let routing = configuration.routing {
                    for rule in policy.automation where !rule.requesterGroups.isEmpty {
                        var rule = rule
                        rule.requesterGroups = []
                        guard rule.matches(asked, policy: policy, client: standing) else { continue }
                        print("automation: \(rule.name) (\(rule.origin)) \(rule.outcome == .approve ? "approves" : "denies") it once the requesters sign in, if each is in \(rule.origin).requester_groups")
                    }
                    let question = ApprovalRequest(
                        id: "", clientID: client, scopes: unapproved, alreadyGranted: alreadyGranted, createdAt: Date(), expiresAt: Date())
                    let route = routing.route(for: question, policy: policy)
                    print("route: \(route.name): \(route.allDestinations.joined(separator: ", ")); approvers \(route.allApprovers.joined(separator: ", "))")
                    let quorum = policy.quorum(of: question)
                    if quorum.approve > 1 || quorum.deny > 1 {
                        print("votes needed: \(quorum.approve) distinct approvals, \(quorum.deny) denials (tier \(policy.tier(of: question)))")
                    }
                } else {
                    print("route: none configured (decided on the command line or the admin API)")
                }
            }
        }
    }
}
