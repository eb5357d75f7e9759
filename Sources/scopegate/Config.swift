import ArgumentParser
import ScopeGateServer

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with the configuration file.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate the configuration and summarize the policy.")
        @OptionGroup var options: ConfigOption

        func run() async throws {
            let configuration = try options.load()
            let policy = configuration.policy
            print("configuration is valid: \(options.config)")
            print("public URL \(configuration.publicURL.absoluteString), upstream \(configuration.upstreamURL.absoluteString)")
            print("\(policy.rules.count) scope rules, \(policy.clients.count) clients, tiers: \(policy.tiers.keys.sorted().joined(separator: ", "))")
            print("admin API: \(configuration.adminToken == nil ? "disabled (no token configured)" : "\(configuration.adminAddress.host):\(configuration.adminAddress.port)")")
        }
    }
}
