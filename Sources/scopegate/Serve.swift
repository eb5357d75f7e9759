import ArgumentParser
import ScopeGateServer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy in front of the IdP.")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        EventLoopThreads.sizeSharedGroupByAffinity()
        let configuration = try options.load(secrets: .required)
        try await ScopeGateApplication.run(configuration: configuration, logger: Logs.make())
    }
}
