import Foundation
import ScopeGateCore
import Yams

/// Turns the file as written into a `ScopeGateConfiguration`, naming the key of every mistake.
struct ConfigValidator {
    let file: ConfigFile
    let source: String
    let baseDirectory: URL
    let environment: [String: String]
    /// Whether a secret that cannot be read is an error (for `serve`) or a warning (for commands that
    /// do not use it: an auditor exports the log without the operator's tokens).
    var secrets: ScopeGateConfiguration.Secrets = .required
    /// What the check found that does not stop it: secrets deferred and missing.
    let warnings = Warnings()

    final class Warnings: @unchecked Sendable {
        var list: [String] = []
    }

    /// The file as YAML nodes, for the line of each key a message names.
    var root: Node? = nil

    func fail(_ key: String, _ problem: String) -> GateError {
        let line = root.flatMap { Self.line(of: key, in: $0) }.map { ", line \($0)" } ?? ""
        return GateError(.invalidConfiguration, "\(key) \(problem) in \(source)\(line)")
    }

    /// The line of `key` (`scopes[2].tier`, `upstream.url`) in `root`, or of the nearest enclosing key
    /// that is there (a missing key is reported where it belongs).
    static func line(of key: String, in root: Node) -> Int? {
        var node = root
        var line = root.mark?.line
        for part in key.split(separator: ".") {
            var name = Substring(part)
            var indices: [Int] = []
            while let open = name.lastIndex(of: "["), name.last == "]", let index = Int(name[name.index(after: open)..<name.index(before: name.endIndex)]) {
                indices.insert(index, at: 0)
                name = name[..<open]
            }
            guard let mapping = node.mapping, let (keyNode, value) = mapping.first(where: { $0.key.string == String(name) }) else {
                return line
            }
            line = keyNode.mark?.line ?? line
            node = value
            for index in indices {
                guard let sequence = node.sequence, index < sequence.count else { return line }
                node = sequence[index]
                line = node.mark?.line ?? line
            }
        }
        return line
    }

    func validate() throws(GateError) -> ScopeGateConfiguration {
        let policy = try policy()
        guard let upstreamText = file.upstream?.url else { throw fail("upstream.url", "is missing") }
        let upstreamURL = try httpURL(upstreamText, key: "upstream.url")
        guard let publicText = file.public_url else { throw fail("public_url", "is missing") }
        let publicURL = try httpURL(publicText, key: "public_url")
        let publicAddress = try address(file.listen?.public ?? "127.0.0.1:8080", key: "listen.public")
        let adminAddress = try address(file.listen?.admin ?? "127.0.0.1:8081", key: "listen.admin")
        if publicAddress == adminAddress, publicAddress.port != 0 {
            throw fail("listen.admin", "must differ from listen.public")
        }
        let hostHeader: ScopeGateConfiguration.HostHeader
        switch file.upstream?.host_header {
        case nil, "public": hostHeader = .public
        case "upstream": hostHeader = .upstream
        case let value?:
            guard !value.isEmpty, value.allSatisfy({ $0.isLetter || $0.isNumber || "-.:[]".contains($0) }) else {
                throw fail("upstream.host_header", "must be 'public', 'upstream' or a host[:port]")
            }
            hostHeader = .literal(value)
        }
        for (key, value) in [
            ("upstream.discovery_path", file.upstream?.discovery_path),
            ("upstream.authorization_endpoint", file.upstream?.authorization_endpoint),
            ("upstream.token_endpoint", file.upstream?.token_endpoint),
            ("upstream.device_authorization_endpoint", file.upstream?.device_authorization_endpoint),
        ] {
            if let value, !value.hasPrefix("/") { throw fail(key, "must be a path starting with '/'") }
        }
        let postgresURL = try secret(env: file.store?.postgres_url_env, file: file.store?.postgres_url_file, key: "store.postgres_url")
        let storePath = file.store?.path ?? ""
        switch (storePath.isEmpty, postgresURL) {
        case (true, nil): throw fail("store.path", "is missing (or store.postgres_url_env for PostgreSQL)")
        case (false, _?): throw fail("store", "names both a SQLite path and a PostgreSQL URL: choose one")
        default: break
        }
        if let postgresURL, postgresURL != Self.missingSecret, !postgresURL.hasPrefix("postgres://"), !postgresURL.hasPrefix("postgresql://") {
            throw fail(file.store?.postgres_url_env != nil ? "store.postgres_url_env" : "store.postgres_url_file", "must give a postgres:// URL")
        }
        var tls: (String, String)?
        if let files = file.tls {
            for (key, path) in [("tls.certificate", files.certificate), ("tls.key", files.key)]
            where !FileManager.default.isReadableFile(atPath: resolve(path)) {
                throw fail(key, "names a file that cannot be read")
            }
            tls = (resolve(files.certificate), resolve(files.key))
        }
        var configuration = ScopeGateConfiguration(
            publicURL: publicURL, publicAddress: publicAddress, adminAddress: adminAddress,
            idleTimeout: try duration(file.listen?.idle_timeout ?? "75s", key: "listen.idle_timeout"), upstreamURL: upstreamURL,
            hostHeader: hostHeader, discoveryPath: file.upstream?.discovery_path,
            authorizationEndpointPath: file.upstream?.authorization_endpoint,
            tokenEndpointPath: file.upstream?.token_endpoint,
            deviceAuthorizationEndpointPath: file.upstream?.device_authorization_endpoint,
            exposedPaths: try exposedPaths(),
            blockUnhandledEndpoints: file.upstream?.block_unhandled_endpoints ?? false,
            connectTimeout: try duration(file.upstream?.connect_timeout ?? "5s", key: "upstream.connect_timeout"),
            responseTimeout: try duration(file.upstream?.response_timeout ?? "60s", key: "upstream.response_timeout"),
            trustedProxies: Set(file.upstream?.trusted_proxies ?? []),
            tls: tls, storePath: storePath.isEmpty ? "" : resolve(storePath), adminToken: try adminToken(),
            adminTokenName: file.admin?.token_name ?? "admin", policy: policy, slack: try slack(),
            teams: try teams(), signIn: try signIn(policy: policy), routing: try routing(policy: policy),
            confirmTiers: confirmTiers(),
            audit: try audit(), holdRates: try holdRates(), metricsToken: try metricsToken(),
            idpRevocation: try idpRevocation(upstreamURL: upstreamURL))
        configuration.http2 = file.tls?.http2 ?? false
        configuration.postgresURL = postgresURL
        return configuration
    }

    /// The IdP administration API revocations also go to: a kind ScopeGate knows, its credentials, and
    /// an audit log to read revocations from (so none is lost to a restart).
    func idpRevocation(upstreamURL: URL) throws(GateError) -> ScopeGateConfiguration.IdPRevocationSettings? {
        guard let entry = file.idp_revocation else { return nil }
        let key = "idp_revocation"
        guard file.audit != nil else {
            throw fail(key, "needs an audit section: revocations reach the IdP from the audit log, which keeps them through restarts")
        }
        let baseURL = try entry.url.map { (text) throws(GateError) in try httpURL(text, key: "\(key).url") } ?? upstreamURL
        var appIDs: [String: String] = [:]
        for (index, client) in (file.clients ?? []).enumerated() {
            guard let appID = client.idp_app_id else { continue }
            guard !appID.isEmpty, appID.utf8.count <= 255, appID.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
                throw fail("clients[\(index)].idp_app_id", "must be the application's id at the IdP (printable, no spaces)")
            }
            appIDs[client.id] = appID
        }
        let kind: ScopeGateConfiguration.IdPRevocationSettings.Kind
        switch entry.kind {
        case "keycloak":
            guard let realm = entry.realm, !realm.isEmpty else { throw fail("\(key).realm", "is required: the realm the clients are in") }
            guard let clientID = entry.client_id, ClientID.isValid(clientID) else {
                throw fail("\(key).client_id", "is required: the Keycloak client whose service account may manage clients")
            }
            guard let secret = try secret(env: entry.client_secret_env, file: entry.client_secret_file, key: "\(key).client_secret") else {
                throw fail("\(key).client_secret_env", "or \(key).client_secret_file is required")
            }
            kind = .keycloak(realm: realm, adminRealm: entry.admin_realm ?? realm, clientID: clientID, clientSecret: secret)
        case "okta":
            guard entry.url != nil else { throw fail("\(key).url", "is required: the Okta org's URL (https://{org}.okta.com)") }
            guard let token = try secret(env: entry.api_token_env, file: entry.api_token_file, key: "\(key).api_token") else {
                throw fail("\(key).api_token_env", "or \(key).api_token_file is required")
            }
            kind = .okta(apiToken: token)
        default:
            throw fail("\(key).kind", "must be keycloak or okta")
        }
        return .init(kind: kind, baseURL: baseURL, onExpiry: entry.on_expiry ?? false, appIDs: appIDs)
    }

    /// A client's registration date: a calendar date (midnight UTC) or an RFC 3339 date and time.
    static func registrationDate(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: .iso8601) { return date }
        guard text.utf8.count == 10 else { return nil }
        return try? Date(text + "T00:00:00Z", strategy: .iso8601)
    }

    func metricsToken() throws(GateError) -> String? {
        guard let token = try secret(env: file.metrics?.token_env, file: file.metrics?.token_file, key: "metrics.token") else {
            return nil
        }
        let key = file.metrics?.token_env != nil ? "metrics.token_env" : "metrics.token_file"
        let checkedToken = try checked(token, key: key)
        if let admin = try adminToken(), admin == checkedToken {
            throw fail(key, "gives the admin token: a scraper's token must not be able to decide requests")
        }
        return checkedToken
    }

    func holdRates() throws(GateError) -> HoldLimits.Rates {
        let given = file.approvals?.new_holds_per_minute
        let standard = HoldLimits.Rates.standard
        let rates = HoldLimits.Rates(
            perSource: given?.per_source ?? standard.perSource, perClient: given?.per_client ?? standard.perClient,
            total: given?.total ?? standard.total)
        for (value, key) in [(rates.perSource, "per_source"), (rates.perClient, "per_client"), (rates.total, "total")] where value < 1 {
            throw fail("approvals.new_holds_per_minute.\(key)", "must be at least 1")
        }
        return rates
    }

    func audit() throws(GateError) -> ScopeGateConfiguration.AuditSettings? {
        guard let audit = file.audit else { return nil }
        guard let keys = audit.keys, !keys.isEmpty else { throw fail("audit.keys", "is missing: the folder of the audit keys") }
        let directory = URL(fileURLWithPath: resolve(keys))
        guard FileManager.default.isReadableFile(atPath: directory.appendingPathComponent("audit-signing-key.jwk").path) else {
            throw fail("audit.keys", "holds no readable audit-signing-key.jwk; create one with `scopegate keys generate --dir \(directory.path)`")
        }
        let every = audit.checkpoint_every ?? 1000
        guard every > 0 else { throw fail("audit.checkpoint_every", "must be a positive number of entries") }
        if audit.checkpoint_slack_channel != nil, file.slack == nil {
            throw fail("audit.checkpoint_slack_channel", "needs the slack section")
        }
        if let channel = audit.checkpoint_slack_channel, !Self.isSlackID(channel, prefixes: "CG") {
            throw fail("audit.checkpoint_slack_channel", "must be a Slack channel id (C…, G…)")
        }
        return .init(
            keysDirectory: directory, checkpointEvery: every,
            checkpointInterval: try duration(audit.checkpoint_interval ?? "1m", key: "audit.checkpoint_interval"),
            checkpointFile: audit.checkpoint_file.map(resolve),
            checkpointWebhook: try audit.checkpoint_webhook.map { (text) throws(GateError) in
                try httpURL(text, key: "audit.checkpoint_webhook")
            },
            checkpointSlackChannel: audit.checkpoint_slack_channel)
    }

    static func isSlackID(_ text: String, prefixes: String) -> Bool {
        guard let first = text.first, prefixes.contains(first), text.count >= 3, text.count <= 32 else { return false }
        return text.utf8.allSatisfy { (48...57).contains($0) || (65...90).contains($0) }
    }

    /// A secret from an environment variable or a file (trimmed); `nil` when neither is configured.
    /// One that cannot be read is an error, or, with secrets deferred, a warning and a stand-in that
    /// authenticates nothing.
    func secret(env: String?, file path: String?, key: String) throws(GateError) -> String? {
        func missing(_ error: GateError) throws(GateError) -> String {
            guard secrets == .deferred else { throw error }
            warnings.list.append(error.message + " (needed to serve)")
            return Self.missingSecret
        }
        if let name = env {
            guard let value = environment[name], !value.isEmpty else {
                return try missing(fail("\(key)_env", "names the environment variable \(name), which is not set"))
            }
            return value
        }
        if let path {
            guard let value = try? String(contentsOfFile: resolve(path), encoding: .utf8),
                !value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            else {
                return try missing(fail("\(key)_file", "names a file that cannot be read or is empty"))
            }
            return value.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return nil
    }

    /// The automation rules, each checked against the clients, tiers and scope syntax it names.
    func automation(_ policy: Policy) throws(GateError) -> [AutomationRule] {
        var rules: [AutomationRule] = []
        for (index, entry) in (file.automation ?? []).enumerated() {
            let key = "automation[\(index)]"
            guard !entry.name.isEmpty, !rules.contains(where: { $0.name == entry.name }),
                entry.name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "/") })
            else { throw fail("\(key).name", "is empty, repeats another rule's name, or holds spaces or '/'") }
            guard let outcome = AutomationRule.Outcome(rawValue: entry.decide) else {
                throw fail("\(key).decide", "must be approve or deny")
            }
            for (i, client) in (entry.clients ?? []).enumerated() where policy.clients[client] == nil {
                throw fail("\(key).clients[\(i)]", "names the unknown client '\(client)'")
            }
            for (i, tier) in (entry.tiers ?? []).enumerated() where policy.tiers[tier] == nil {
                throw fail("\(key).tiers[\(i)]", "names the undefined tier '\(tier)'")
            }
            var patterns: [GlobPattern] = []
            for (i, pattern) in (entry.scopes ?? []).enumerated() {
                guard !pattern.isEmpty, pattern.utf8.allSatisfy({ ScopeSet.isScopeTokenByte($0) || $0 == UInt8(ascii: "*") }) else {
                    throw fail("\(key).scopes[\(i)]", "must be a scope token, optionally with '*' or '?' wildcards")
                }
                patterns.append(GlobPattern(pattern))
            }
            guard entry.clients != nil || entry.tiers != nil || entry.scopes != nil || entry.client_registration != nil
                || entry.client_min_age != nil || entry.client_max_age != nil
            else {
                throw fail(
                    "\(key)",
                    "must say what it applies to (clients, tiers, scopes, client_registration or a client age): a rule for everything replaces the approvers")
            }
            var rule = AutomationRule(
                name: entry.name, outcome: outcome, clients: Set(entry.clients ?? []), tiers: Set(entry.tiers ?? []),
                scopePatterns: patterns, origin: key)
            if let registrations = entry.client_registration {
                let known = Set(policy.clients.values.compactMap(\.registration)).union([ClientStanding.listed, ClientStanding.unlisted])
                guard !registrations.isEmpty else { throw fail("\(key).client_registration", "must list at least one registration") }
                for (i, registration) in registrations.enumerated() where !known.contains(registration) {
                    throw fail(
                        "\(key).client_registration[\(i)]",
                        "names '\(registration)', which no client's registration is (nor listed or unlisted)")
                }
                rule.registrations = Set(registrations)
            }
            if let text = entry.client_min_age { rule.minimumClientAge = try duration(text, key: "\(key).client_min_age") }
            if let text = entry.client_max_age { rule.maximumClientAge = try duration(text, key: "\(key).client_max_age") }
            if let minimum = rule.minimumClientAge, let maximum = rule.maximumClientAge, minimum >= maximum {
                throw fail("\(key).client_max_age", "must be longer than client_min_age, or the rule never applies")
            }
            if let groups = entry.requester_groups {
                guard !groups.isEmpty, groups.allSatisfy({ !$0.isEmpty }) else {
                    throw fail("\(key).requester_groups", "must list at least one group name")
                }
                guard policy.identifyRequesters else {
                    throw fail("\(key).requester_groups", "needs approvals.identify_requesters: true, or nobody's groups are known")
                }
                rule.requesterGroups = Set(groups)
            }
            if outcome == .approve {
                for tier in (entry.tiers ?? policy.tiers.keys.sorted()) where (policy.tiers[tier]?.quorum ?? 1) > 1 {
                    warnings.list.append("\(key) (\(entry.name)) approves requests of tier \(tier) without its quorum of \(policy.tiers[tier]!.quorum)")
                }
            }
            rules.append(rule)
        }
        return rules
    }

    /// Where a client's owner is told of grants and revocations: each platform configured, each id
    /// well-formed, and an audit log to read the changes from.
    func ownerNotify(_ entry: ConfigFile.OwnerNotify?, key: String) throws(GateError) -> [String: String] {
        guard let entry else { return [:] }
        guard file.audit != nil else {
            throw fail(key, "needs an audit section: owners are told of the grants and revocations the audit log records")
        }
        var channels: [String: String] = [:]
        if let slack = entry.slack {
            guard file.slack != nil else { throw fail("\(key).slack", "needs a slack section") }
            guard Self.isSlackID(slack, prefixes: "CGDU") else {
                throw fail("\(key).slack", "must be a Slack channel id (C…, G…) or a user id for a direct message")
            }
            channels["slack"] = slack
        }
        if let teams = entry.teams {
            guard file.teams?.app_id != nil else { throw fail("\(key).teams", "needs the Teams bot (teams.app_id)") }
            guard Self.isTeamsConversation(teams) else {
                throw fail("\(key).teams", "must be a Teams channel id (19:…@thread.tacv2) or group chat id (19:…@thread.v2)")
            }
            channels["teams"] = teams
        }
        guard !channels.isEmpty else { throw fail(key, "must name a slack or teams destination") }
        return channels
    }

    func exposedPaths() throws(GateError) -> [String]? {
        guard let prefixes = file.upstream?.expose else { return nil }
        guard !prefixes.isEmpty else { throw fail("upstream.expose", "is empty: list the path prefixes to expose, or leave it out") }
        for (index, prefix) in prefixes.enumerated() where !prefix.hasPrefix("/") || prefix.contains("..") || prefix.contains("%") {
            throw fail("upstream.expose[\(index)]", "must be a plain path prefix starting with '/'")
        }
        return prefixes
    }

    func policy() throws(GateError) -> Policy {
        var tiers: [Policy.Tier] = []
        for (index, tier) in (file.tiers ?? Self.defaultTiers).enumerated() {
            let lifetime = try tier.grant_lifetime.map { (text) throws(GateError) in
                try duration(text, key: "tiers[\(index)].grant_lifetime")
            }
            for (key, value) in [("quorum", tier.quorum), ("deny_quorum", tier.deny_quorum)] {
                if let value, !(1...10).contains(value) {
                    throw fail("tiers[\(index)].\(key)", "must be between 1 and 10 distinct approvers")
                }
            }
            var escalation: (after: Duration, route: String)?
            switch (tier.escalate_after, tier.escalate_to) {
            case (nil, nil): break
            case (let after?, let route?):
                guard (file.routes ?? []).contains(where: { $0.name == route }) else {
                    throw fail("tiers[\(index)].escalate_to", "names the route '\(route)', which routes does not define")
                }
                escalation = (try duration(after, key: "tiers[\(index)].escalate_after"), route)
            case (nil, _?): throw fail("tiers[\(index)].escalate_after", "is required with escalate_to")
            case (_?, nil): throw fail("tiers[\(index)].escalate_to", "is required with escalate_after: the route that is asked next")
            }
            var defined = Policy.Tier(
                name: tier.name, grantLifetime: lifetime, quorum: tier.quorum ?? 1, denyQuorum: tier.deny_quorum ?? 1,
                escalation: escalation)
            var durations: [Duration] = []
            for (i, text) in (tier.grant_durations ?? []).enumerated() {
                let chosen = try duration(text, key: "tiers[\(index)].grant_durations[\(i)]")
                if let lifetime, chosen > lifetime {
                    throw fail("tiers[\(index)].grant_durations[\(i)]", "is longer than the tier's grant_lifetime")
                }
                durations.append(chosen)
            }
            defined.grantDurations = Array(Set(durations)).sorted()
            if let text = tier.remind_after {
                let remind = try duration(text, key: "tiers[\(index)].remind_after")
                if let escalation, remind >= escalation.after {
                    throw fail("tiers[\(index)].remind_after", "must be shorter than escalate_after: reminders come first")
                }
                defined.remindAfter = remind
            }
            if let stepUp = tier.step_up {
                let maxAge = try duration(stepUp.max_age ?? "5m", key: "tiers[\(index)].step_up.max_age")
                guard maxAge <= .seconds(86400) else {
                    throw fail("tiers[\(index)].step_up.max_age", "must be at most 24h: a step-up asks for a recent sign-in")
                }
                let acr = stepUp.acr_values ?? []
                for (i, value) in acr.enumerated() where value.isEmpty || !value.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) {
                    throw fail("tiers[\(index)].step_up.acr_values[\(i)]", "must be an authentication context class reference without spaces")
                }
                defined.stepUp = StepUp(maxAge: maxAge, acr: acr)
            }
            if let kinds = tier.approvals {
                guard !kinds.isEmpty, kinds.allSatisfy({ ["approve", "approve_once"].contains($0) }) else {
                    throw fail("tiers[\(index)].approvals", "must list approve, approve_once or both")
                }
                defined.allowsStanding = kinds.contains("approve")
                defined.allowsOnce = kinds.contains("approve_once")
            }
            tiers.append(defined)
        }
        let tierNames = Set(tiers.map(\.name))
        let defaultTier = file.approvals?.default_tier ?? (tierNames.contains("elevated") ? "elevated" : tiers.first?.name ?? "")
        guard tierNames.contains(defaultTier) else {
            throw fail("approvals.default_tier", "names the tier '\(defaultTier)', which tiers does not define")
        }
        let globalRules = try rules(file.scopes ?? [], key: "scopes", tiers: tierNames, defaultTier: defaultTier)
        var clients: [Policy.Client] = []
        var seen = Set<String>()
        for (index, client) in (file.clients ?? []).enumerated() {
            let key = "clients[\(index)]"
            guard ClientID.isValid(client.id) else {
                throw fail("\(key).id", "must be printable ASCII (RFC 6749, appendix A.1)")
            }
            guard seen.insert(client.id).inserted else {
                throw fail("\(key).id", "is empty or repeats another client's id")
            }
            for (uriIndex, uri) in (client.redirect_uris ?? []).enumerated() {
                guard let url = URL(string: uri), url.scheme != nil, url.fragment == nil else {
                    throw fail("\(key).redirect_uris[\(uriIndex)]", "must be an absolute URI without a fragment")
                }
            }
            var defaults: ScopeSet?
            if let scopes = client.default_scopes {
                do {
                    defaults = try ScopeSet(parsing: scopes.joined(separator: " "))
                } catch {
                    throw fail("\(key).default_scopes", "holds a token that is not a valid scope")
                }
            }
            var defined = Policy.Client(
                id: client.id, name: client.name ?? client.id, owner: client.owner,
                redirectURIs: client.redirect_uris ?? [],
                rules: try rules(client.scopes ?? [], key: "\(key).scopes", tiers: tierNames, defaultTier: defaultTier),
                defaultScopes: defaults)
            defined.ownerNotify = try ownerNotify(client.owner_notify, key: "\(key).owner_notify")
            if let registration = client.registration {
                guard !registration.isEmpty, registration.utf8.count <= 64,
                    registration.utf8.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }),
                    registration != ClientStanding.unlisted
                else {
                    throw fail("\(key).registration", "must be a lower-case label (a-z, 0-9, '_', '-'), and not 'unlisted'")
                }
                defined.registration = registration
            }
            if let text = client.registered {
                guard let date = Self.registrationDate(text) else {
                    throw fail("\(key).registered", "must be a date (2025-03-01) or an RFC 3339 date and time")
                }
                defined.registeredAt = date
            }
            clients.append(defined)
        }
        let timeout = try duration(file.approvals?.timeout ?? "1h", key: "approvals.timeout")
        for (index, tier) in tiers.enumerated() {
            if let remind = tier.remindAfter, remind >= timeout {
                throw fail("tiers[\(index)].remind_after", "must be shorter than approvals.timeout: the request would expire first")
            }
            if let escalation = tier.escalation, escalation.after >= timeout {
                throw fail(
                    "tiers[\(index)].escalate_after",
                    "must be shorter than approvals.timeout (\(file.approvals?.timeout ?? "1h")): the request would expire first")
            }
        }
        var policy = Policy(rules: globalRules, clients: clients, tiers: tiers, defaultTier: defaultTier, approvalTimeout: timeout)
        policy.identifyRequesters = file.approvals?.identify_requesters ?? false
        policy.automation = try automation(policy)
        if let shadow = file.shadow {
            for (index, client) in (shadow.clients ?? []).enumerated() where policy.clients[client] == nil {
                throw fail("shadow.clients[\(index)]", "names the unknown client '\(client)'")
            }
            policy.shadowAll = shadow.all ?? false
            policy.shadowClients = Set(shadow.clients ?? [])
            if policy.shadowAll {
                warnings.list.append("shadow mode is on for every client: the policy is recorded, nothing is held or refused by it")
            } else if !policy.shadowClients.isEmpty {
                warnings.list.append(
                    "shadow mode is on for \(policy.shadowClients.sorted().joined(separator: ", ")): the policy is recorded, nothing of theirs is held or refused by it")
            }
        }
        return policy
    }

    func rules(_ rules: [ConfigFile.Rule], key: String, tiers: Set<String>, defaultTier: String) throws(GateError)
        -> [Policy.ScopeRule]
    {
        var result: [Policy.ScopeRule] = []
        for (index, rule) in rules.enumerated() {
            let origin = "\(key)[\(index)]"
            guard !rule.pattern.isEmpty,
                rule.pattern.utf8.allSatisfy({ ScopeSet.isScopeTokenByte($0) || $0 == UInt8(ascii: "*") })
            else {
                throw fail("\(origin).pattern", "must be a scope token, optionally with '*' or '?' wildcards")
            }
            guard let kind = PermissionKind(rawValue: rule.kind ?? "scope") else {
                throw fail("\(origin).kind", "must be scope, resource, audience, authorization_details or claim")
            }
            if kind == .scope, PermissionKind.isReserved(scopeToken: Substring(rule.pattern)) {
                throw fail("\(origin).pattern", "names another kind of permission: write its value alone and set kind")
            }
            guard let auto = Policy.Auto(rawValue: rule.auto ?? "ask") else {
                throw fail("\(origin).auto", "must be approve, deny or ask")
            }
            let tier = rule.tier ?? defaultTier
            guard tiers.contains(tier) else { throw fail("\(origin).tier", "names the undefined tier '\(tier)'") }
            result.append(
                Policy.ScopeRule(
                    pattern: GlobPattern(kind.name(rule.pattern)), kind: kind, auto: auto, tier: tier,
                    description: rule.description,
                    origin: origin))
        }
        return result
    }

    func adminToken() throws(GateError) -> String? {
        guard let token = try secret(env: file.admin?.token_env, file: file.admin?.token_file, key: "admin.token") else {
            return nil
        }
        return try checked(token, key: file.admin?.token_env != nil ? "admin.token_env" : "admin.token_file")
    }

    /// What a deferred secret reads as: shaped as the checks want (an app-level token prefix, 16 characters or more), never valid.
    static let missingSecret = "xapp-deferred-secret-not-read"

    func checked(_ token: String, key: String) throws(GateError) -> String {
        guard token.utf8.count >= 16 else { throw fail(key, "gives a token shorter than 16 characters") }
        return token
    }

    func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : baseDirectory.appendingPathComponent(path).standardizedFileURL.path
    }

    func httpURL(_ text: String, key: String) throws(GateError) -> URL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            url.host != nil, url.query == nil, url.fragment == nil
        else {
            throw fail(key, "must be an http or https URL without query or fragment")
        }
        return url
    }

    func address(_ text: String, key: String) throws(GateError) -> ScopeGateConfiguration.Address {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port), colon != text.startIndex
        else {
            throw fail(key, "must be host:port, for example 127.0.0.1:8080")
        }
        let host = text[..<colon].trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return .init(host: host, port: port)
    }

    func duration(_ text: String, key: String) throws(GateError) -> Duration {
        guard let duration = ScopeGateConfiguration.duration(text) else {
            throw fail(key, "must be a positive duration such as 90s, 15m, 1h or 30d")
        }
        return duration
    }

    static let defaultTiers: [ConfigFile.Tier] = [
        .init(name: "low", grant_lifetime: nil),
        .init(name: "elevated", grant_lifetime: "30d"),
        .init(name: "critical", grant_lifetime: "1d"),
    ]
}
