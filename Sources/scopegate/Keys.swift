import ArgumentParser
import Foundation
import ScopeGateAudit
import ScopeGateCore
import ScopeGateServer

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the audit log's signing keys.", subcommands: [Generate.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new audit signing key; the previous one stays in the JWKS as retired.",
            discussion: """
                Writes audit-signing-key.jwk (readable by its owner only) and audit-jwks.json into --dir. With
                --config, the rotation is recorded in that ScopeGate's audit log, signed with the new key.
                Restart ScopeGate to sign with the new key.
                """)

        @Option(help: "The folder of the audit keys.") var dir: String = "certs/audit"
        @Option(help: "ES256 (default) or EdDSA.") var alg: String = "ES256"
        @Option(name: .shortAndLong, help: "A configuration whose audit log records the rotation.") var config: String?

        func run() async throws {
            guard let algorithm = AuditAlgorithm(rawValue: alg) else {
                throw ValidationError("--alg must be ES256 or EdDSA")
            }
            let keyring = AuditKeyring(directory: URL(fileURLWithPath: dir))
            let (key, retired) = try keyring.generate(algorithm)
            print("new \(algorithm.rawValue) audit signing key \(key.publicKey.kid) in \(dir)")
            if let retired { print("retired \(retired.kid); it stays in \(AuditKeyring.jwksFile)") }
            guard let config else { return }
            let configuration = try ConfigOption.load(config)
            let store = try await configuration.openStore()
            try await store.recordAudit(
                AuditEvent(
                    "key.rotated",
                    [
                        ("kid", .string(key.publicKey.kid)), ("alg", .string(algorithm.rawValue)),
                        ("retired_kid", retired.map { .string($0.kid) } ?? .null),
                    ]), at: Date())
            print("recorded in the audit log of \(configuration.storeDescription)")
        }
    }
}
