import ArgumentParser
import Foundation
import ScopeGateCore
import ScopeGateServer
import ScopeGateStore

struct Requests: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, show and decide approval requests: directly on the store (a running server notices within a second), or with --server through a running ScopeGate's admin API.",
        subcommands: [List.self, Show.self, Approve.self, Deny.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List approval requests, newest first.")
        @OptionGroup var options: ConfigOption
        @OptionGroup var server: ServerOption
        @Option(help: "Only requests in this state (pending, approved, approved_once, denied, expired).")
        var state: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            var states: Set<ApprovalRequest.State>?
            if let state {
                guard let parsed = ApprovalRequest.State(rawValue: state) else {
                    throw ValidationError("--state must be one of \(ApprovalRequest.State.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                states = [parsed]
            }
            let reports: [RequestReport]
            if let client = try server.client() {
                reports = try await client.requests(state: state)
            } else {
                reports = try await CLIContext(options).reports(states: states)
            }
            if json {
                print(String(decoding: try RequestReport.encoder.encode(reports), as: UTF8.self))
                return
            }
            if reports.isEmpty { print("no approval requests"); return }
            for report in reports {
                print("\(report.id)  \(report.state.padding(toLength: 13, withPad: " ", startingAt: 0))  \(report.clientName) (\(report.clientID))  \(report.scopes.joined(separator: " "))")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one approval request with its holds.")
        @OptionGroup var options: ConfigOption
        @OptionGroup var server: ServerOption
        @Argument(help: "The approval request's id.") var id: String

        func run() async throws {
            let report: RequestReport
            if let client = try server.client() {
                report = try await client.request(id)
            } else {
                report = try await CLIContext(options).report(id)
            }
            print(String(decoding: try RequestReport.encoder.encode(report), as: UTF8.self))
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve a pending request; its holds continue.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The approval request's id.") var id: String
        @Flag(help: "Release the waiting requests without a standing grant.") var once = false
        @Option(name: .customLong("for"), help: "How long the standing grants last, among the durations the request's tier offers (e.g. 1d, 30d).")
        var duration: String?
        @Option(help: "Approve only these of the scopes asked for (space-separated); the request is released without the others.")
        var scopes: String?
        @Option(help: "Why, recorded with the decision.") var reason: String?
        @Option(name: .customLong("as"), help: "Who decides (defaults to the login name).") var actor: String?
        @OptionGroup var server: ServerOption

        func run() async throws {
            if let client = try server.client() {
                var body: [String: Any] = ["once": once, "as": actor ?? CLIContext.userName]
                if let reason { body["reason"] = reason }
                if let duration { body["for"] = duration }
                if let scopes { body["scopes"] = scopes }
                let decided = try await client.decide(id, "approve", body: body)
                print("\(decided.id) \(decided.state)")
                return
            }
            let context = try await CLIContext(options)
            var chosen: Duration?
            if let duration {
                guard let parsed = ScopeGateConfiguration.duration(duration) else { throw ValidationError("--for must be a duration such as 1d or 30d") }
                chosen = parsed
            }
            var part: ScopeSet?
            if let scopes {
                do {
                    part = try ScopeSet(parsing: scopes)
                } catch {
                    throw ValidationError("--scopes must be scope tokens separated by single spaces: \(error.message)")
                }
            }
            let decided = try await context.decide { () async throws(GateError) in
                try await context.service.approve(
                    id, actor: "cli:\(actor ?? CLIContext.userName)", once: once, reason: reason, duration: chosen, scopes: part)
            }
            print("\(decided.id) \(decided.state.rawValue)")
        }
    }

    struct Deny: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deny a pending request; its holds return access_denied to the app.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The approval request's id.") var id: String
        @Option(help: "Why, shown to the requester.") var reason: String?
        @Option(name: .customLong("as"), help: "Who decides (defaults to the login name).") var actor: String?
        @OptionGroup var server: ServerOption

        func run() async throws {
            if let client = try server.client() {
                var body: [String: Any] = ["as": actor ?? CLIContext.userName]
                if let reason { body["reason"] = reason }
                let decided = try await client.decide(id, "deny", body: body)
                print("\(decided.id) \(decided.state)")
                return
            }
            let context = try await CLIContext(options)
            let decided = try await context.decide { () async throws(GateError) in
                try await context.service.deny(id, actor: "cli:\(actor ?? CLIContext.userName)", reason: reason)
            }
            print("\(decided.id) \(decided.state.rawValue)")
        }
    }
}

/// What the store-facing commands share: the configuration, the store and the service over them.
struct CLIContext {
    let configuration: ScopeGateConfiguration
    let store: any ScopeGateStorage
    let service: GateService

    init(_ options: ConfigOption) async throws {
        configuration = try options.load()
        store = try await configuration.openStore()
        service = GateService(
            policy: configuration.policy, store: store, observer: GateObservers([]), logger: Logs.make())
    }

    static var userName: String {
        ProcessInfo.processInfo.environment["USER"] ?? ProcessInfo.processInfo.environment["LOGNAME"] ?? "unknown"
    }

    func reports(states: Set<ApprovalRequest.State>?) async throws -> [RequestReport] {
        var reports: [RequestReport] = []
        for request in try await store.approvalRequests(states: states) {
            reports.append(RequestReport(request, holds: try await store.holds(approvalRequestID: request.id), policy: configuration.policy))
        }
        return reports
    }

    func report(_ id: String) async throws -> RequestReport {
        guard let request = try await store.approvalRequest(id: id) else {
            throw ValidationError("no approval request \(id)")
        }
        return RequestReport(
            request, holds: try await store.holds(approvalRequestID: id), policy: configuration.policy,
            notifications: try await store.chatMessages(approvalRequestID: id), votes: try await store.votes(approvalRequestID: id))
    }

    func decide(_ body: () async throws(GateError) -> ApprovalRequest) async throws -> ApprovalRequest {
        do {
            return try await body()
        } catch {
            throw ValidationError(error.message)
        }
    }
}
