import ArgumentParser
import ScopeGateServer

@main
struct ScopeGateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scopegate",
        abstract: "An inline approval gate for OAuth 2.0 / OpenID Connect scopes.",
        version: ScopeGateVersion.current,
        subcommands: [Serve.self, Requests.self, Grants.self, Audit.self, Keys.self, Config.self, PolicyCommand.self, Demo.self])
}
