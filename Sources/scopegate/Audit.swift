import ArgumentParser
import Foundation
import ScopeGateAudit
import ScopeGateCore
import ScopeGateServer
import ScopeGateStore

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export, verify and follow the signed audit log.", subcommands: [Export.self, Verify.self, Tail.self, Benchmark.self])

    static func store(_ options: ConfigOption) async throws -> (ScopeGateConfiguration, any ScopeGateStorage) {
        let configuration = try options.load()
        guard configuration.audit != nil else { throw ValidationError("the configuration has no audit section") }
        // Reading needs no signing key: open without one.
        return (configuration, try await configuration.openStore(sign: false))
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
            let (_, store) = try await Audit.store(options)
            let (since, until) = (try Audit.date(since, "since"), try Audit.date(until, "until"))
            var after: Int64 = 0
            while true {
                let rows = try await store.auditEntries(after: after, limit: 10_000, since: since, until: until, clientID: client, event: event)
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
            let (configuration, store) = try await Audit.store(options)
            let entries: [String]
            if let input {
                let data = input == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: input))
                entries = try Audit.lines(data)
            } else {
                var all: [String] = []
                var after: Int64 = 0
                while true {
                    let rows = try await store.auditEntries(after: after, limit: 10_000)
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
        @Option(name: [.customShort("n"), .long], help: "How many of the newest entries.") var lines: Int = 20
        @Flag(name: .shortAndLong, help: "Keep printing new entries.") var follow = false

        func run() async throws {
            let (_, store) = try await Audit.store(options)
            var after = max(0, try await store.auditHead().count - Int64(lines))
            repeat {
                for row in try await store.auditEntries(after: after, limit: 10_000) {
                    print(Audit.describe(row))
                    after = row.seq
                }
                if follow { try await Task.sleep(for: .milliseconds(500)) }
            } while follow
        }
    }

    struct Benchmark: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure this machine: the raw signing rate, and durable audit appends from concurrent writers.",
            discussion: """
                Appends --entries events to the store the configuration names (they stay in its audit log, as any
                entry would), from --writers concurrent tasks, and prints both rates and their ratio as JSON.
                """)
        @OptionGroup var options: ConfigOption
        @Option(help: "How many entries to append.") var entries: Int = 100_000
        @Option(help: "How many concurrent writers.") var writers: Int = 64

        func run() async throws {
            let configuration = try options.load()
            guard let signer = try configuration.auditSigner() else {
                throw ValidationError("the configuration has no audit section")
            }
            let store = try await configuration.openStore()
            // The raw signing rate of the algorithm, one core, nothing else.
            let samples = 20_000
            var previous: String?
            let event = AuditEvent("benchmark", clientID: "bench", [("n", .int(0)), ("note", .string("raw signing"))])
            let signStart = ContinuousClock.now
            for seq in 1...samples {
                previous = try signer.seal(event, seq: Int64(seq), previous: previous, at: Date())
            }
            let signSeconds = Self.seconds(ContinuousClock.now - signStart)
            let before = try await store.auditHead().count
            let total = entries
            let perWriter = (total + writers - 1) / writers
            let appendStart = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        for index in 0..<perWriter where writer * perWriter + index < total {
                            try await store.recordAudit(
                                AuditEvent("benchmark", clientID: "bench", [("writer", .int(Int64(writer))), ("n", .int(Int64(index)))]),
                                at: Date())
                        }
                    }
                }
                try await group.waitForAll()
            }
            let appendSeconds = Self.seconds(ContinuousClock.now - appendStart)
            let appended = try await store.auditHead().count - before
            let signing = Double(samples) / signSeconds
            let durable = Double(appended) / appendSeconds
            print(
                #"{"algorithm":"\#(signer.key.publicKey.algorithm.rawValue)","signing_per_second":\#(Int(signing)),"entries":\#(appended),"writers":\#(writers),"durable_entries_per_second":\#(Int(durable)),"ratio_to_signing":\#(String(format: "%.2f", durable / signing))}"#
            )
        }

        static func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
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
    static func describe(_ row: AuditLogRow) -> String {
        let parts = row.jws.split(separator: ".")
        var payload = ""
        if parts.count == 3 {
            if let data = Base64URL.decode(parts[1]),
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
