import Foundation
import Logging

/// Log records as JSON lines on standard error, one object each: `ts`, `level`, `msg`, `logger`, and
/// the metadata's dotted keys (`sg.request.id`, `sg.client.id`, …) as they are.
///
/// What ScopeGate logs is chosen so that no secret, token, code, cookie or gated query is ever in a
/// message or its metadata (messages are constant; metadata holds ids, paths and reasons); the format
/// only makes those records easy to ship and query.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let write: @Sendable (String) -> Void

    /// A handler for `label`, writing each line with `write` (standard error by default).
    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        record(level: event.level, message: event.message, explicit: event.metadata)
    }

    public func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String,
        function: String, line: UInt
    ) {
        record(level: level, message: message, explicit: explicit)
    }

    /// One record: the handler's metadata, the provider's, then the call's (each overriding the last).
    /// An event's `error` is not written: an error's description is not chosen to be free of secrets.
    private func record(level: Logger.Level, message: Logger.Message, explicit: Logger.Metadata?) {
        var fields: [String: String] = [:]
        for (key, value) in metadata { fields[key] = "\(value)" }
        for (key, value) in metadataProvider?.get() ?? [:] { fields[key] = "\(value)" }
        for (key, value) in explicit ?? [:] { fields[key] = "\(value)" }
        fields["ts"] = Self.timestamp(Date())
        fields["level"] = level.rawValue
        fields["msg"] = message.description
        fields["logger"] = label
        guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return
        }
        write(String(decoding: data, as: UTF8.self))
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon))
            + "Z"
    }

    /// Writes one line to standard error.
    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
