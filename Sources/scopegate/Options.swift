import ArgumentParser
import Foundation
import Logging
import ScopeGateCore
import ScopeGateServer

/// The `--config` option every command that needs the configuration takes.
struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "The configuration file.")
    var config: String = "proxy-config/scopegate.yaml"

    /// The configuration, for a command that uses none of its secrets (every one but `serve`): a
    /// secret that cannot be read is no error here, so that an auditor or an approver needs only the
    /// file, the store and the keys the command uses.
    func load(secrets: ScopeGateConfiguration.Secrets = .deferred) throws -> ScopeGateConfiguration {
        try Self.load(config, secrets: secrets)
    }

    static func load(_ path: String, secrets: ScopeGateConfiguration.Secrets = .deferred) throws -> ScopeGateConfiguration {
        do {
            return try ScopeGateConfiguration.load(path: path, secrets: secrets)
        } catch {
            throw ValidationError(error.message)
        }
    }
}

enum Logs {
    /// The process logger: level from `SCOPEGATE_LOG_LEVEL` (default info), format from
    /// `SCOPEGATE_LOG_FORMAT` (`text`, the default, or `json`: one JSON object a line), to standard error.
    static func make(_ label: String = "scopegate") -> Logger {
        let json = ProcessInfo.processInfo.environment["SCOPEGATE_LOG_FORMAT"] == "json"
        var logger = Logger(label: label) { label -> any LogHandler in
            json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
        }
        logger.logLevel = ProcessInfo.processInfo.environment["SCOPEGATE_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
        return logger
    }
}
