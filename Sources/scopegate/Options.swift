import ArgumentParser
import Foundation
import Logging
import ScopeGateCore
import ScopeGateServer

/// The `--config` option every command that needs the configuration takes.
struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "The configuration file.")
    var config: String = "proxy-config/scopegate.yaml"

    func load() throws -> ScopeGateConfiguration { try Self.load(config) }

    static func load(_ path: String) throws -> ScopeGateConfiguration {
        do {
            return try ScopeGateConfiguration.load(path: path)
        } catch {
            throw ValidationError(error.message)
        }
    }
}

enum Logs {
    /// The process logger: level from `SCOPEGATE_LOG_LEVEL` (default info), to standard error.
    static func make(_ label: String = "scopegate") -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = ProcessInfo.processInfo.environment["SCOPEGATE_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
        return logger
    }
}
