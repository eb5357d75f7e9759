import AsyncHTTPClient
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ScopeGateAudit
import ScopeGateCore
import ScopeGateStore
import ServiceLifecycle

extension ScopeGateConfiguration {
    /// The audit signer, when the audit log is configured; throws when its key cannot be read.
    public func auditSigner() throws -> AuditSigner? {
        guard let audit else { return nil }
        let key = try AuditKeyring(directory: audit.keysDirectory).signingKey()
        return AuditSigner(key: key, issuer: publicURL.absoluteString)
    }

    /// Opens the store (SQLite or PostgreSQL), signing audit entries when the audit log is configured;
    /// `sign: false` opens it for reading the log without the signing key.
    public func openStore(sign: Bool = true) async throws -> any ScopeGateStorage {
        let signer = sign ? try auditSigner() : nil
        if let postgresURL { return try await PostgresGateStore(url: postgresURL, audit: signer) }
        return try SQLiteGateStore(path: storePath, audit: signer)
    }

    /// SHA-256 (hex) of the effective policy: tiers, rules, clients and routes as validated, one
    /// canonical line each, so that the audit log shows which policy decided.
    public var policyDigest: String {
        var lines: [String] = []
        for tier in policy.tiers.values.sorted(by: { $0.name < $1.name }) {
            lines.append("tier \(tier.name) \(tier.grantLifetime.map { "\($0.components.seconds)s" } ?? "-")")
        }
        func rule(_ rule: Policy.ScopeRule) -> String {
            "rule \(rule.origin) \(rule.pattern.source) \(rule.auto.rawValue) \(rule.tier) \(rule.description ?? "")"
        }
        lines += policy.rules.map(rule)
        for client in policy.clients.values.sorted(by: { $0.id < $1.id }) {
            lines.append(
                "client \(client.id) \(client.name) \(client.redirectURIs.joined(separator: " ")) defaults \(client.defaultScopes?.tokens.joined(separator: " ") ?? "-")")
            lines += client.rules.map(rule)
        }
        lines.append("approval_timeout \(policy.approvalTimeout.components.seconds)s default_tier \(policy.defaultTier)")
        for tier in policy.tiers.values.sorted(by: { $0.name < $1.name }) where tier.quorum > 1 || tier.denyQuorum > 1 || tier.escalation != nil || tier.remindAfter != nil
            || !tier.grantDurations.isEmpty || !tier.allowsStanding || !tier.allowsOnce
        {
            lines.append(
                "tier \(tier.name) quorum \(tier.quorum) deny_quorum \(tier.denyQuorum) escalation \(tier.escalation.map { "\($0.after.components.seconds)s \($0.route)" } ?? "-") remind \(tier.remindAfter.map { "\($0.components.seconds)s" } ?? "-") durations \(tier.grantDurations.map { "\($0.components.seconds)s" }.joined(separator: ",")) standing \(tier.allowsStanding) once \(tier.allowsOnce)")
        }
        for tier in policy.tiers.values.sorted(by: { $0.name < $1.name }) {
            guard let stepUp = tier.stepUp else { continue }
            lines.append("tier \(tier.name) step_up \(stepUp.maxAge.components.seconds)s acr \(stepUp.acr.joined(separator: ","))")
        }
        if policy.identifyRequesters { lines.append("identify_requesters") }
        for client in policy.clients.values.sorted(by: { $0.id < $1.id }) where client.registration != nil || client.registeredAt != nil {
            lines.append(
                "client \(client.id) registration \(client.registration ?? "-") registered \(client.registeredAt.map { "\(Int64($0.timeIntervalSince1970))" } ?? "-")")
        }
        for client in policy.clients.values.sorted(by: { $0.id < $1.id }) {
            for platform in client.ownerNotify.keys.sorted() {
                lines.append("client \(client.id) owner_notify \(platform) \(client.ownerNotify[platform]!)")
            }
        }
        if policy.shadowAll || !policy.shadowClients.isEmpty {
            lines.append("shadow \(policy.shadowAll ? "all" : policy.shadowClients.sorted().joined(separator: ","))")
        }
        for rule in policy.automation {
            lines.append(
                "automation \(rule.origin) \(rule.name) \(rule.outcome.rawValue) clients \(rule.clients.sorted().joined(separator: ",")) tiers \(rule.tiers.sorted().joined(separator: ",")) scopes \(rule.scopePatterns.map(\.source).joined(separator: ","))"
                    + (rule.requesterGroups.isEmpty ? "" : " requester_groups \(rule.requesterGroups.sorted().joined(separator: ","))")
                    + (rule.registrations.isEmpty ? "" : " client_registration \(rule.registrations.sorted().joined(separator: ","))")
                    + (rule.minimumClientAge.map { " client_min_age \($0.components.seconds)s" } ?? "")
                    + (rule.maximumClientAge.map { " client_max_age \($0.components.seconds)s" } ?? ""))
        }
        if let revocation = idpRevocation {
            let kind: String
            switch revocation.kind {
            case .keycloak(let realm, let adminRealm, let clientID, _): kind = "keycloak \(realm) \(adminRealm) \(clientID)"
            case .okta: kind = "okta"
            }
            lines.append(
                "idp_revocation \(kind) \(revocation.baseURL.absoluteString) on_expiry \(revocation.onExpiry) app_ids \(revocation.appIDs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))")
        }
        if let routing {
            for route in routing.routes {
                var line = "route \(route.name) scopes \(route.scopePatterns.map(\.source).joined(separator: ",")) tiers \(route.tiers.sorted().joined(separator: ",")) clients \(route.clients.sorted().joined(separator: ","))"
                for platform in route.reaches.keys.sorted() {
                    let reach = route.reaches[platform]!
                    line += " \(platform) channel \(reach.channel) dm \(reach.directMessages) users \(reach.approverUsers.joined(separator: ",")) groups \(reach.approverGroups.joined(separator: ","))"
                }
                lines.append(line)
            }
            lines.append("default_route \(routing.defaultRoute.name) team \(slack?.teamID ?? "-") tenant \(teams?.bot?.tenantID ?? "-") webhooks \(teams?.webhooks.keys.sorted().joined(separator: ",") ?? "-") sign_in \(signIn.map { "\($0.clientID) \($0.scopes.tokens.joined(separator: ","))" } ?? "-")")
        }
        return Digest.sha256Hex(lines.joined(separator: "\n"))
    }
}

/// `GET /_scopegate/audit/jwks.json`: every current and retired audit public key, read from the
/// keyring at each request so that a rotation shows at once.
struct AuditJWKSEndpoint: Sendable {
    static let path = "/_scopegate/audit/jwks.json"
    let keyring: AuditKeyring

    func respond(to request: Request) -> Response {
        guard request.method == .get || request.method == .head else {
            var response = ErrorResponses.plain(.methodNotAllowed, "the JWKS is read with GET")
            response.headers[.allow] = "GET, HEAD"
            return response
        }
        guard let document = try? keyring.jwksDocument() else {
            return ErrorResponses.plain(.serviceUnavailable, "the audit keys cannot be read")
        }
        return Response(
            status: .ok,
            headers: [.contentType: "application/jwk-set+json", .cacheControl: "no-cache", .contentLength: String(document.count)],
            body: .init(byteBuffer: ByteBuffer(bytes: document)))
    }
}

/// Signs a checkpoint of the audit log every `every` entries or every `interval` (also when nothing
/// happened), stores it, and hands it to the configured sinks. A sink that fails is logged; the
/// checkpoint stays in the store and the next one carries the chain on.
struct AuditCheckpointService: Service {
    let store: any AuditLogStore
    let signer: AuditSigner
    let settings: ScopeGateConfiguration.AuditSettings
    let httpClient: HTTPClient
    let slack: SlackAPI?
    let logger: Logger
    var poll: Duration = .seconds(1)

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var lastCount = (try? await store.auditHead().count) ?? 0
            var lastAt = ContinuousClock.now
            _ = try? await checkpoint()
            while !Task.isCancelled {
                try await Task.sleep(for: poll)
                let count = (try? await store.auditHead().count) ?? lastCount
                guard count - lastCount >= Int64(settings.checkpointEvery)
                    || ContinuousClock.now - lastAt >= settings.checkpointInterval
                else { continue }
                if let written = try? await checkpoint() { lastCount = written }
                lastAt = ContinuousClock.now
            }
        }
    }

    /// Writes one checkpoint and sends it to the sinks; returns the entry count it covers.
    @discardableResult
    func checkpoint() async throws -> Int64 {
        let signer = self.signer
        let (jws, count) = try await store.writeAuditCheckpoint(
            sign: { count, head, previous in try signer.checkpoint(count: count, head: head, previous: previous, at: Date()) },
            at: Date())
        if let path = settings.checkpointFile {
            do {
                try Self.append(line: "\"\(jws)\"\n", to: path)
            } catch {
                logger.error("the audit checkpoint file cannot be written", metadata: ["sg.path": "\(path)"])
            }
        }
        if let url = settings.checkpointWebhook {
            var request = HTTPClientRequest(url: url.absoluteString)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: #"{"type":"scopegate.audit.checkpoint","count":\#(count),"checkpoint":"\#(jws)"}"#))
            let status = try? await httpClient.execute(request, timeout: .seconds(10)).status
            if status.map({ !(200..<300).contains($0.code) }) ?? true {
                logger.error("the audit checkpoint webhook failed", metadata: ["sg.status": "\(status.map { "\($0.code)" } ?? "none")"])
            }
        }
        if let channel = settings.checkpointSlackChannel, let slack {
            do {
                _ = try await slack.call(
                    "chat.postMessage",
                    json: ["channel": .string(channel), "text": .string("ScopeGate audit checkpoint, \(count) entries:\n```\(jws)```")])
            } catch {
                logger.error("the audit checkpoint could not be posted to Slack", metadata: ["sg.slack.error": "\(error.name)"])
            }
        }
        return count
    }

    static func append(line: String, to path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            // A failure shows as the open below throwing.
            _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o644])
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(line.utf8))
        try handle.synchronize()
    }
}
