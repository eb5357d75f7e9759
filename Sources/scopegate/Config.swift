import ArgumentParser
import ScopeGateCore
import ScopeGateServer

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with the configuration file.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate the configuration and summarize the policy.")
        @OptionGroup var options: ConfigOption
        @Flag(help: "Also read the IdP's discovery document, as serve does at start-up, and say which endpoints will be gated, refused and exposed.")
        var online = false
        @Flag(help: "Check the runtime environment too: a secret that cannot be read (an unset variable, an unreadable file) is an error, as it is for serve.")
        var environment = false

        func run() async throws {
            let configuration = try options.load(secrets: environment ? .required : .deferred)
            let policy = configuration.policy
            print("configuration is valid: \(options.config)")
            for warning in configuration.warnings { print("warning: \(warning)") }
            for warning in policy.shadowedDenials() { print("warning: \(warning)") }
            print("public URL \(configuration.publicURL.absoluteString), upstream \(configuration.upstreamURL.absoluteString)")
            print("\(policy.rules.count) scope rules, \(policy.clients.count) clients, tiers: \(policy.tiers.keys.sorted().joined(separator: ", "))")
            print("admin API: \(configuration.adminToken == nil ? "disabled (no token configured)" : "\(configuration.adminAddress.host):\(configuration.adminAddress.port)")")
            if let slack = configuration.slack { print("Slack approvals in team \(slack.teamID)") }
            if let teams = configuration.teams {
                if let bot = teams.bot { print("Microsoft Teams approvals in tenant \(bot.tenantID) as bot \(bot.appID)") }
                if !teams.webhooks.isEmpty {
                    print("Microsoft Teams Workflows webhooks for routes: \(teams.webhooks.keys.sorted().joined(separator: ", "))")
                }
            }
            if let signIn = configuration.signIn {
                let who = [
                    configuration.routing?.routes.contains { $0.reach(on: ChatReach.approvalPage) != nil } == true ? "approvers (approval page)" : nil,
                    configuration.policy.identifyRequesters ? "requesters (waiting page; separation of duties)" : nil,
                ].compactMap { $0 }.joined(separator: " and ")
                print("sign-in: \(who) sign in at the IdP as client \(signIn.clientID) (\(signIn.scopes.tokens.joined(separator: " ")))")
            }
            if let routing = configuration.routing {
                for route in routing.routes {
                    let isDefault = route.name == routing.defaultRoute.name ? " (default)" : ""
                    print("  route \(route.name)\(isDefault): \(route.allDestinations.joined(separator: ", ")); approvers \(route.allApprovers.joined(separator: ", "))")
                }
            } else {
                print("chat approvals: off (decisions on the command line and the admin API)")
            }
            guard online else { return }
            do {
                let report = try await ScopeGateApplication.upstreamReport(configuration: configuration)
                print("the IdP at \(configuration.upstreamURL.absoluteString), as ScopeGate will front it:")
                for line in report { print("  " + line) }
            } catch {
                throw ValidationError("ScopeGate would not start: \(error.message)")
            }
        }
    }
}
