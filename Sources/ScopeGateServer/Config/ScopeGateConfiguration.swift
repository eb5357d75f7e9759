import Foundation
import ScopeGateCore
import Yams

/// ScopeGate's validated configuration. Built from `proxy-config/scopegate.yaml`; every mistake is
/// reported with the key it concerns, and nothing that would weaken the gate is ever defaulted
/// silently.
public struct ScopeGateConfiguration: Sendable {
    /// A host and port to listen on.
    public struct Address: Sendable, Equatable {
        /// The host (an IP address or name).
        public var host: String
        /// The port; 0 picks a free one.
        public var port: Int

        /// Creates an address.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// What `Host` header the upstream receives.
    public enum HostHeader: Sendable, Equatable {
        /// The public URL's host: ScopeGate has taken over the IdP's hostname.
        case `public`
        /// The upstream URL's host.
        case upstream
        /// A fixed value.
        case literal(String)
    }

    /// The URL clients use to reach ScopeGate; every link, redirect and rewritten endpoint uses it.
    public var publicURL: URL
    /// Where the public listener binds.
    public var publicAddress: Address
    /// Where the admin API binds (loopback unless configured otherwise).
    public var adminAddress: Address
    /// How long a client connection may sit with no request in progress before it is closed.
    public var idleTimeout: Duration
    /// The IdP.
    public var upstreamURL: URL
    /// The `Host` sent upstream.
    public var hostHeader: HostHeader
    /// Where the discovery document is fetched from, if not the standard locations.
    public var discoveryPath: String?
    /// The authorization endpoint's path, when set explicitly rather than discovered.
    public var authorizationEndpointPath: String?
    /// The token endpoint's path, when set explicitly rather than discovered.
    public var tokenEndpointPath: String?
    /// The device authorization endpoint's path (RFC 8628), when set explicitly rather than discovered.
    public var deviceAuthorizationEndpointPath: String?
    /// Path prefixes of the IdP reachable through ScopeGate; `nil` exposes every path.
    public var exposedPaths: [String]?
    /// Whether endpoints the IdP advertises that carry permissions and that ScopeGate does not gate
    /// (PAR, device authorization, CIBA, registration) are refused; without it ScopeGate does not start
    /// when discovery advertises one.
    public var blockUnhandledEndpoints: Bool
    /// How long connecting to the upstream may take before the client gets 502.
    public var connectTimeout: Duration
    /// How long the upstream may take to answer before the client gets 504.
    public var responseTimeout: Duration
    /// Peers whose `X-Forwarded-*` / `Forwarded` headers are kept (exact IP addresses).
    public var trustedProxies: Set<String>
    /// PEM files for TLS on the public listener; `nil` serves plain HTTP (behind a terminating proxy).
    public var tls: TLSFiles?
    /// The TLS certificate chain and private key, as PEM files.
    public typealias TLSFiles = (certificatePath: String, keyPath: String)
    /// Whether the public listener offers HTTP/2 (by ALPN, over TLS only) beside HTTP/1.1.
    public var http2 = false
    /// The SQLite file (empty with PostgreSQL).
    public var storePath: String
    /// The PostgreSQL database (`postgres://…`, a secret: it holds the password), instead of SQLite.
    public var postgresURL: String?
    /// The store as people read it: the SQLite file, or PostgreSQL's host and database (no password).
    public var storeDescription: String {
        guard let postgresURL, var url = URLComponents(string: postgresURL) else { return storePath }
        url.password = nil
        url.user = nil
        url.query = nil
        return url.string ?? "PostgreSQL"
    }
    /// The admin API's bearer token; `nil` disables the admin API.
    public var adminToken: String?
    /// The name recorded as the actor of admin API decisions.
    public var adminTokenName: String
    /// The policy.
    public var policy: Policy
    /// Slack approvals, when configured.
    public var slack: SlackSettings?
    /// Microsoft Teams approvals, when configured.
    public var teams: TeamsSettings?
    /// ScopeGate as an OpenID Connect client of the upstream IdP, for approvers who decide on its
    /// approval page; `nil` when no route has one.
    public var signIn: SignInSettings?
    /// Where approval requests go and who decides them, on every configured chat platform; `nil`
    /// when no chat platform is configured.
    public var routing: Routing?
    /// Tiers whose approval asks the approver to confirm.
    public var confirmTiers: Set<String> = []
    /// The signed audit log, when configured.
    public var audit: AuditSettings?
    /// How many new holds may be opened in a minute, per source address, per client and in all.
    public var holdRates: HoldLimits.Rates = .standard
    /// What the check found that does not stop it (secrets deferred and missing).
    public var warnings: [String] = []
    /// The read-only bearer token for `/metrics` on the admin listener, when configured (never the
    /// admin token, which can decide requests).
    public var metricsToken: String?
    /// Where revoked grants also revoke the client's tokens at the IdP, when configured.
    public var idpRevocation: IdPRevocationSettings?
    /// The file it was read from, for a reload.
    public var sourcePath: String?
    /// Everything in the file that a reload cannot change (listeners, upstream, store, secrets,
    /// platforms, audit, sign-in, requester identification, IdP revocation), in one comparable string:
    /// a reload that changes any of it is refused, as only a restart applies it.
    public var restartSignature = ""

    /// Whether the secrets the configuration names must be readable now.
    public enum Secrets: Sendable, Equatable {
        /// Every secret is read, or the configuration is refused: for `serve`.
        case required
        /// A secret that cannot be read is a warning: for commands that use none.
        case deferred
    }

    /// The IdP administration API through which a revocation also revokes the client's tokens there.
    public struct IdPRevocationSettings: Sendable {
        public enum Kind: Sendable {
            /// Keycloak's admin REST API: the client's `notBefore` set to now, as a service account of
            /// `adminRealm` (client credentials) with `manage-clients` in `realm`.
            case keycloak(realm: String, adminRealm: String, clientID: String, clientSecret: String)
            /// Okta's management API (`DELETE /api/v1/apps/{appId}/tokens`) with an API token.
            case okta(apiToken: String)
        }

        public var kind: Kind
        /// The IdP's base URL for its administration API.
        public var baseURL: URL
        /// Whether grants that lapse (grant lifetimes, chosen durations) revoke too, not only revocations.
        public var onExpiry: Bool
        /// The IdP's name of each client whose name there is not its client id (Okta app ids).
        public var appIDs: [String: String]
    }

    /// Where the audit keys are and where checkpoints go.
    public struct AuditSettings: Sendable {
        /// The folder with `audit-signing-key.jwk` and `audit-jwks.json`.
        public var keysDirectory: URL
        /// A checkpoint after this many new entries…
        public var checkpointEvery: Int
        /// …or after this long, whichever comes first (also when nothing happened).
        public var checkpointInterval: Duration
        /// Sinks for checkpoints: a file (JSON lines), a webhook (POSTed JSON), a Slack channel.
        public var checkpointFile: String?
        public var checkpointWebhook: URL?
        public var checkpointSlackChannel: String?
    }

    /// How ScopeGate reaches Slack and where it sends each approval request.
    public struct SlackSettings: Sendable {
        /// The workspace (team) whose users may approve.
        public var teamID: String
        /// The bot token (`xoxb-…`) for the Web API.
        public var botToken: String
        /// The signing secret that authenticates interaction requests (HTTP interactivity).
        public var signingSecret: String?
        /// The app-level token (`xapp-…`, scope `connections:write`) that opens Socket Mode
        /// connections; when set, clicks arrive over Socket Mode and the interaction endpoint is off.
        public var appToken: String?
        /// The Web API's base URL (`https://slack.com/api`; another for GovSlack or tests).
        public var apiURL: URL
        /// How long approver user-group memberships are cached.
        public var groupCacheLifetime: Duration
    }

    /// Microsoft Teams: ScopeGate as a bot (Bot Framework), and the Workflows webhooks of routes that
    /// post without one.
    public struct TeamsSettings: Sendable {
        /// The bot, when a route posts through one.
        public var bot: TeamsBot?
        /// The Workflows (incoming webhook) URL of each route that posts through one, by route name.
        /// Secrets: they never reach the store, logs or messages.
        public var webhooks: [String: URL]
    }

    /// How ScopeGate acts as a Microsoft Teams bot: where it gets its tokens, where it posts, and how it
    /// checks the activities the Bot Connector sends it.
    public struct TeamsBot: Sendable {
        /// The bot's Microsoft App ID: the client id of its token requests and the audience of the
        /// Bot Connector's tokens.
        public var appID: String
        /// The bot's client secret.
        public var appPassword: String
        /// The organisation's tenant: approvers must belong to it.
        public var tenantID: String
        /// The token endpoint of the client credentials grant
        /// (`{authority}/{tenant or botframework.com}/oauth2/v2.0/token`).
        public var tokenURL: URL
        /// The Bot Connector's base URL for proactive messages (`https://smba.trafficmanager.net/teams/`).
        public var serviceURL: URL
        /// The OpenID metadata document whose `jwks_uri` holds the keys the Bot Connector signs with.
        public var openIDMetadataURL: URL
        /// The issuer of the Bot Connector's tokens (`https://api.botframework.com`).
        public var issuer: String
    }

    /// ScopeGate's own registration at the upstream IdP, through which approvers sign in.
    public struct SignInSettings: Sendable {
        /// The client id ScopeGate is registered under (a confidential client whose redirect URI is
        /// `{public_url}/_scopegate/sign-in/callback`).
        public var clientID: String
        /// Its client secret.
        public var clientSecret: String
        /// The scopes it asks for (`openid`, and `email` to name approvers by verified email).
        public var scopes: ScopeSet
        /// The ID token claim listing the signed-in person's groups (shown to approvers for requesters).
        public var groupsClaim: String = "groups"
    }

    /// A duration as configuration files and commands write them: a positive whole number followed by
    /// `s`, `m`, `h` or `d` (`90s`, `15m`, `4h`, `30d`).
    public static func duration(_ text: String) -> Duration? {
        guard let unit = text.last, let value = Int(text.dropLast()), value > 0, value < 100_000_000 else { return nil }
        switch unit {
        case "s": return .seconds(value)
        case "m": return .seconds(value * 60)
        case "h": return .seconds(value * 3600)
        case "d": return .seconds(value * 86400)
        default: return nil
        }
    }

    /// A duration as people read it: the largest unit that divides it (`30d`, `4h`, `90s`).
    public static func text(_ duration: Duration) -> String {
        let seconds = duration.components.seconds
        for (unit, size) in [("d", Int64(86400)), ("h", 3600), ("m", 60)] where seconds % size == 0 && seconds >= size {
            return "\(seconds / size)\(unit)"
        }
        return "\(seconds)s"
    }

    /// Reads and validates the file at `path`.
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment, secrets: Secrets = .required
    ) throws(GateError) -> ScopeGateConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw GateError(.invalidConfiguration, "cannot read the configuration file \(path)")
        }
        let baseDirectory = URL(fileURLWithPath: path).deletingLastPathComponent()
        var configuration = try parse(yaml: text, source: path, baseDirectory: baseDirectory, environment: environment, secrets: secrets)
        configuration.sourcePath = path
        return configuration
    }

    /// Validates configuration text. Relative file paths are resolved against `baseDirectory`.
    public static func parse(
        yaml text: String, source: String = "the configuration", baseDirectory: URL,
        environment: [String: String], secrets: Secrets = .required
    ) throws(GateError) -> ScopeGateConfiguration {
        let file: ConfigFile
        do {
            file = try YAMLDecoder().decode(ConfigFile.self, from: text)
        } catch let DecodingError.keyNotFound(key, context) {
            throw GateError(.invalidConfiguration, "\(source): \(path(context.codingPath + [key])) is missing")
        } catch let DecodingError.typeMismatch(_, context) {
            throw GateError(.invalidConfiguration, "\(source): \(path(context.codingPath)) has the wrong type")
        } catch {
            throw GateError(.invalidConfiguration, "\(source) is not valid YAML: \(error)")
        }
        // A misspelt key would otherwise be ignored in silence, and its setting left at its default:
        // whatever the file says that ScopeGate did not read is refused.
        if let given = try? Yams.compose(yaml: text), let read = try? Yams.compose(yaml: YAMLEncoder().encode(file)),
            let unread = unreadKey(given, read, at: "")
        {
            throw GateError(
                .invalidConfiguration,
                "\(source): \(unread) is not a ScopeGate setting, or has no value (see proxy-config/README.md)")
        }
        let validator = ConfigValidator(
            file: file, source: source, baseDirectory: baseDirectory, environment: environment, secrets: secrets,
            root: try? Yams.compose(yaml: text))
        var configuration = try validator.validate()
        configuration.warnings = validator.warnings.list
        configuration.restartSignature = restartSignature(of: file)
        return configuration
    }

    /// The file with what a reload may change left out (the policy: tiers, scope rules, clients but for
    /// their ids at the IdP, automation, shadow mode, routes, the approval timeout and default tier),
    /// as canonical JSON.
    static func restartSignature(of file: ConfigFile) -> String {
        var fixed = file
        fixed.tiers = nil
        fixed.scopes = nil
        fixed.automation = nil
        fixed.shadow = nil
        fixed.routes = nil
        fixed.default_route = nil
        fixed.approvals?.timeout = nil
        fixed.approvals?.default_tier = nil
        // An `approvals` section that held only policy settings is no section at all.
        if let approvals = fixed.approvals, (try? JSONEncoder().encode(approvals)) == Data("{}".utf8) { fixed.approvals = nil }
        fixed.clients = file.clients?.compactMap { client in
            client.idp_app_id.map { ConfigFile.Client(id: client.id, idp_app_id: $0) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(fixed)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// The first key path in `given` that is not in `read` (the file as ScopeGate decoded it, encoded
    /// again), or `nil` when everything written was read.
    static func unreadKey(_ given: Node, _ read: Node?, at path: String) -> String? {
        if let mapping = given.mapping {
            for (key, value) in mapping {
                let name = key.string ?? "?"
                let child = path.isEmpty ? name : path + "." + name
                guard let known = read?[name] else { return child }
                if let found = unreadKey(value, known, at: child) { return found }
            }
        } else if let sequence = given.sequence {
            let known = read?.sequence
            for (index, element) in sequence.enumerated() {
                let element = unreadKey(element, known.flatMap { index < $0.count ? $0[index] : nil }, at: path + "[\(index)]")
                if let element { return element }
            }
        }
        return nil
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop { $0 == "." }.description
    }
}
