import ArgumentParser
import Foundation
import ScopeGateAudit
import ScopeGateServer
import ScopeGateStore

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export, verify and follow the signed audit log.", subcommands: [Export.self, Verify.self, Tail.self])

    static func store(_ options: ConfigOption) throws -> (ScopeGateConfiguration, SQLiteGateStore) {
        let configuration = try options.load()
        guard configuration.audit != nil else { throw ValidationError("the configuration has no audit section") }
        // Reading needs no signing key: open without one.
        return (configuration, try SQLiteGateStore(path: configuration.storePath))
    }

    static func date(_ text: String?, _ name: String) throws -> Date? {
        guard let text else { return nil }
        guard let date = ISO8601DateFormatter().date(from: text) else {
            throw ValidationError("--\(name) must be an ISO 8601 time such as 2026-11-29T08:00:00Z")
        }
        return date
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print entries as JSON lines, one compact JWS (a JSON string) per line, oldest first.",
            discussion: "Filters give a subset, which verifies entry by entry but not as a chain; export everything to verify the chain.")
        @OptionGroup var options: ConfigOption
        @Option(help: "Only entries at or after this time (ISO 8601).") var since: String?
        @Option(help: "Only entries before this time (ISO 8601).") var until: String?
        @Option(help: "Only entries about this client.") var client: String?
        @Option(help: "Only entries of this event type (decision, hold.released, …).") var event: String?

        func run() async throws {
            let (_, store) = try Audit.store(options)
            let (since, until) = (try Audit.date(since, "since"), try Audit.date(until, "until"))
            var after: Int64 = 0
            while true {
                let rows = try await store.auditEntries(after: after, since: since, until: until, clientID: client, event: event)
                for row in rows { print("\"\(row.jws)\"") }
                guard let last = rows.last else { break }
                after = last.seq
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify signatures, chain, sequence and checkpoints; print the first bad entry and exit non-zero.")
        @OptionGroup var options: ConfigOption
        @Option(help: "An exported log (JSON lines, or - for standard input) instead of the store's.") var input: String?
        @Option(help: "A JWKS file instead of the keyring's.") var jwks: String?
        @Option(help: "Checkpoints (JSON lines) to check the log against, besides the store's own.") var checkpoints: String?

        func run() async throws {
            let (configuration, store) = try Audit.store(options)
            let entries: [String]
            if let input {
                let data = input == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: input))
                entries = try Audit.lines(data)
            } else {
                var all: [String] = []
                var after: Int64 = 0
                while true {
                    let rows = try await store.auditEntries(after: after)
                    all += rows.map(\.jws)
                    guard let last = rows.last else { break }
                    after = last.seq
                }
                entries = all
            }
            let keys: [AuditPublicKey]
            if let jwks {
                keys = try AuditKeyring.parseJWKS(try Data(contentsOf: URL(fileURLWithPath: jwks)))
            } else {
                keys = try AuditKeyring(directory: configuration.audit!.keysDirectory).publicKeys()
            }
            var marks = try await store.auditCheckpoints()
            if let checkpoints { marks = try Audit.lines(try Data(contentsOf: URL(fileURLWithPath: checkpoints))) }
            switch AuditVerifier(keys: keys).verify(entries: entries, checkpoints: marks) {
            case .success(let report):
                print("verified \(report.entries) entries and \(report.checkpoints) checkpoints")
            case .failure(let failure):
                FileHandle.standardError.write(Data("audit log does not verify: \(failure)\n".utf8))
                throw ExitCode(1)
            }
        }
    }

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the newest entries, decoded; --follow keeps printing.")
        @OptionGroup var options: ConfigOption
        @Option(name: .short, help: "How many of the newest entries.") var lines: Int = 20
        @Flag(name: .shortAndLong, help: "Keep printing new entries.") var follow = false

        func run() async throws {
            let (_, store) = try Audit.store(options)
            var after = max(0, try await store.auditHead().count - Int64(lines))
            repeat {
                for row in try await store.auditEntries(after: after) {
                    print(Audit.describe(row))
                    after = row.seq
                }
                if follow { try await Task.sleep(for: .milliseconds(500)) }
            } while follow
        }
    }

    /// JSON lines of compact JWS (quoted), or bare compact JWS lines.
    static func lines(_ data: Data) throws -> [String] {
        try String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).map { line in
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("\"") {
                guard let value = try JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed) as? String else {
                    throw ValidationError("a line is not a JSON string")
                }
                return value
            }
            return text
        }
    }

    /// `seq  time  event  client  {data}` from the entry's payload (not verified here: use verify).
    static func describe(_ row: SQLiteGateStore.AuditRow) -> String {
        let parts = row.jws.split(separator: ".")
        var payload = ""
        if parts.count == 3 {
            var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
            if let data = Data(base64Encoded: base64),
                let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                let fields = object["data"],
                let json = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])
            {
                payload = String(decoding: json, as: UTF8.self)
            }
        }
        let time = ISO8601DateFormatter().string(from: row.at)
        return "\(row.seq)\t\(time)\t\(row.event)\t\(row.clientID ?? "-")\t\(payload)"
    }
}
