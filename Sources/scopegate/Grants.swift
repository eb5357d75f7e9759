import ArgumentParser
import Foundation
import ScopeGateServer

struct Grants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List and revoke standing grants.", subcommands: [List.self, Revoke.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the grants in force.")
        @OptionGroup var options: ConfigOption

        func run() async throws {
            let context = try await CLIContext(options)
            let grants = try await context.store.allActiveGrants(at: Date())
            if grants.isEmpty { print("no grants"); return }
            for grant in grants {
                let until = grant.expiresAt.map { "until \($0.formatted(.iso8601))" } ?? "until revoked"
                print("\(grant.clientID)  \(grant.scope)  by \(grant.approvedBy)  \(until)")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a client's grant of one scope.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The client id.") var client: String
        @Argument(help: "The scope.") var scope: String
        @Option(name: .customLong("as"), help: "Who revokes (defaults to the login name).") var actor: String?

        func run() async throws {
            let context = try await CLIContext(options)
            guard try await context.service.revokeGrant(clientID: client, scope: scope, actor: "cli:\(actor ?? CLIContext.userName)")
            else {
                throw ValidationError("client \(client) holds no grant for \(scope)")
            }
            print("revoked \(scope) for \(client)")
        }
    }
}
