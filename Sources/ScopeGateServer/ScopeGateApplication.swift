import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOPosix
import NIOSSL
import NIOCore
import ScopeGateAudit
import ScopeGateCore
import ScopeGateStore
import ServiceLifecycle

/// ScopeGate assembled: the gate service over a store, the public listener's responder, the admin
/// API and the background services. `run(configuration:logger:)` is what `scopegate serve` calls;
/// tests build the same parts with their own store, upstream and clock.
public struct ScopeGateApplication: Sendable {
    /// The configuration in force.
    public let configuration: ScopeGateConfiguration
    /// The domain service.
    public let service: GateService
    /// The policy and routes in force; `reloadPolicy` replaces them.
    let live: LivePolicy
    let hub: DecisionHub
    let snapshot: GrantSnapshot
    let refresher: GrantSnapshotRefresher
    let metadata: UpstreamMetadata
    let proxy: UpstreamProxy
    let logger: Logger
    /// One outbox worker per configured chat platform (Slack, Teams).
    let chatNotifiers: [ChatNotifier]
    /// Counters and gauges for the admin API's `/metrics`.
    public let metrics: GateMetrics
    let slackInteractions: SlackInteractions?
    /// The Bot Connector's messaging endpoint, when Teams approvals are configured.
    let teamsActivities: TeamsActivities?
    /// Sessions of approvers who signed in at the IdP for the approval page.
    let approverSessions = ApproverSessions()
    /// The audit log's signer, when the audit log is configured.
    let auditSigner: AuditSigner?
    /// `request_uri` values of pushed requests that passed the gate.
    let pushedRequests: PushedRequests
    let deviceRegistry: DeviceRegistry
    /// Records malformed requests in the audit log, within a budget shared by every endpoint.
    let refusals: RefusalAudit
    /// The authorization codes ScopeGate relayed, with what their requests asked for.
    let issuedCodes: IssuedCodes

    init(
        configuration: ScopeGateConfiguration, store: any GateStore, httpClient: HTTPClient,
        metadata: UpstreamMetadata, logger: Logger, extraObservers: [any GateObserver] = [],
        auditSigner: AuditSigner? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.auditSigner = auditSigner
        self.issuedCodes = IssuedCodes(shared: store as? any SharedStateStore, logger: logger)
        self.pushedRequests = PushedRequests(shared: store as? any SharedStateStore, logger: logger)
        self.deviceRegistry = DeviceRegistry(shared: store as? any SharedStateStore, logger: logger)
        let hub = DecisionHub()
        let snapshot = GrantSnapshot()
        let refresher = GrantSnapshotRefresher(snapshot: snapshot, store: store, interval: .milliseconds(500), logger: logger)
        self.configuration = configuration
        self.hub = hub
        self.snapshot = snapshot
        self.refresher = refresher
        self.metadata = metadata
        self.logger = logger
        let live = LivePolicy(
            .init(
                policy: configuration.policy, routing: configuration.routing, confirmTiers: configuration.confirmTiers,
                digest: configuration.policyDigest))
        self.live = live
        let metrics = GateMetrics(live: live)
        self.metrics = metrics
        self.proxy = UpstreamProxy(client: httpClient, configuration: configuration, latency: metrics.upstreamLatency, logger: logger)
        if auditSigner != nil, let audited = store as? any AuditLogStore {
            audited.observeDurableWrites { metrics.auditAppend.record($0) }
        }
        var observers: [any GateObserver] = [hub, refresher, metrics] + extraObservers
        var slackAPI: SlackAPI?
        var teamsConnector: BotConnector?
        var notifiers: [ChatNotifier] = []
        let outbox = store as? any ChatOutboxStore
        if let routing = configuration.routing {
            guard let outbox else { preconditionFailure("chat approvals need a store with a chat outbox") }
            var platforms: [any ChatPlatform] = []
            if let slack = configuration.slack {
                let api = SlackAPI(client: httpClient, baseURL: slack.apiURL, token: slack.botToken, metrics: metrics)
                slackAPI = api
                platforms.append(SlackPlatform(api: api))
            }
            if let teams = configuration.teams {
                let connector = teams.bot.map { bot in
                    BotConnector(
                        client: httpClient, serviceURL: bot.serviceURL,
                        token: BotConnectorToken(
                            client: httpClient, tokenURL: bot.tokenURL, appID: bot.appID, appPassword: bot.appPassword, now: now),
                        metrics: metrics)
                }
                teamsConnector = connector
                platforms.append(
                    TeamsPlatform(
                        connector: connector, tenantID: teams.bot?.tenantID, webhooks: teams.webhooks,
                        publicURL: configuration.publicURL, client: httpClient, metrics: metrics))
            }
            for platform in platforms {
                notifiers.append(
                    ChatNotifier(
                        outbox: outbox, store: store, platform: platform, live: live, publicURL: configuration.publicURL,
                        chatNotices: (store as? any GateStore & AuditLogStore).flatMap { audited in
                            ChatNotices.wanted(by: configuration.policy, on: platform)
                                ? ChatNotices(store: audited, live: live, logger: logger, now: now) : nil
                        },
                        metrics: metrics,
                        logger: logger, now: now))
            }
        }
        self.chatNotifiers = notifiers
        observers += notifiers as [any GateObserver]
        var routeName: (@Sendable (String, ScopeSet) -> String?)?
        if configuration.routing != nil {
            routeName = { client, scopes in
                let generation = live.generation
                guard let routing = generation.routing else { return nil }
                let question = ApprovalRequest(
                    id: "", clientID: client, scopes: scopes, alreadyGranted: ScopeSet([String]()), createdAt: Date(),
                    expiresAt: Date())
                return routing.route(for: question, policy: generation.policy).name
            }
        }
        let service = GateService(
            live: live, store: store, observer: GateObservers(observers), logger: logger,
            routeName: routeName, limits: HoldLimits(configuration.holdRates, shared: store as? any HoldLimitStore), now: now)
        self.service = service
        self.refusals = RefusalAudit(service: service)
        if let slack = configuration.slack, let slackAPI, configuration.routing != nil, let outbox {
            self.slackInteractions = SlackInteractions(
                signature: slack.signingSecret.map(SlackSignature.init(signingSecret:)), service: service, outbox: outbox,
                approvers: SlackApprovers(
                    api: slackAPI, teamID: slack.teamID, lifetime: slack.groupCacheLifetime, now: now),
                api: slackAPI, metrics: metrics, logger: logger, now: now, publicURL: configuration.publicURL)
        } else {
            self.slackInteractions = nil
        }
        if let bot = configuration.teams?.bot, configuration.routing != nil, let outbox {
            self.teamsActivities = TeamsActivities(
                validator: BotConnectorTokenValidator(
                    keys: BotConnectorKeys(client: httpClient, metadataURL: bot.openIDMetadataURL, now: now),
                    appID: bot.appID, issuer: bot.issuer),
                tenantID: bot.tenantID, service: service, outbox: outbox, metrics: metrics, logger: logger, now: now,
                publicURL: configuration.publicURL, connector: teamsConnector)
        } else {
            self.teamsActivities = nil
        }
    }

    var publicOrigin: String {
        DiscoveryRewriter.origin(of: configuration.publicURL) ?? configuration.publicURL.absoluteString
    }

    /// The approval page and the approvers' sign-in, when a route has an approval page.
    func approvalPage() -> ApprovalPage? {
        guard let settings = configuration.signIn, configuration.routing != nil else { return nil }
        let signIn = ApproverSignIn(
            settings: settings, publicURL: configuration.publicURL, authorizationPath: metadata.authorizationPath,
            tokenPath: metadata.tokenPath, issuer: metadata.issuer, proxy: proxy, sessions: approverSessions, logger: logger,
            binding: BrowserBinding(publicURL: configuration.publicURL), service: service)
        return ApprovalPage(service: service, signIn: signIn, publicOrigin: publicOrigin, logger: logger)
    }

    func responder() -> ScopeGateResponder {
        let binding = BrowserBinding(publicURL: configuration.publicURL)
        let redirect = ClientRedirect(
            live: live, issuer: metadata.issParameterSupported ? metadata.issuer : nil)
        var gated: [String: GatedEndpoint] = [metadata.authorizationPath: .authorization]
        gated[metadata.tokenPath] = .token
        if let pushedPath = metadata.pushedAuthorizationPath { gated[pushedPath] = .pushedAuthorization }
        if let devicePath = metadata.deviceAuthorizationPath { gated[devicePath] = .deviceAuthorization }
        for path in metadata.blockedPaths.keys where gated[path] == nil { gated[path] = .blocked }
        for path in metadata.discoveryPaths { gated[path] = .discovery }
        let device = metadata.deviceAuthorizationPath.map {
            DeviceAuthorizationEndpoint(
                service: service, proxy: proxy, path: $0, publicURL: configuration.publicURL, registry: deviceRegistry,
                refusals: refusals, codes: issuedCodes, logger: logger)
        }
        return ScopeGateResponder(
            pathGuard: PathGuard(gated),
            authorization: AuthorizationEndpoint(
                service: service, snapshot: snapshot, binding: binding, redirect: redirect, path: metadata.authorizationPath,
                pushed: pushedRequests, refusals: refusals, trustedProxies: configuration.trustedProxies, logger: logger),
            holds: HoldEndpoints(
                service: service, hub: hub, binding: binding, redirect: redirect,
                authorizationPath: metadata.authorizationPath, publicOrigin: publicOrigin),
            discovery: DiscoveryEndpoint(proxy: proxy),
            pushed: metadata.pushedAuthorizationPath.map {
                PushedAuthorizationEndpoint(
                    service: service, proxy: proxy, path: $0, issued: pushedRequests, refusals: refusals, logger: logger)
            },
            token: TokenEndpoint(
                service: service, proxy: proxy, path: metadata.tokenPath, revocationPath: metadata.revocationPath,
                introspectionPath: metadata.introspectionPath,
                device: device, refusals: refusals, codes: issuedCodes, logger: logger),
            device: device,
            slack: slackInteractions, teams: teamsActivities, approvals: approvalPage(),
            auditJWKS: configuration.audit.map { AuditJWKSEndpoint(keyring: AuditKeyring(directory: $0.keysDirectory)) })
    }

    /// The public listener, with TLS when the configuration names a certificate and key. `onListening`
    /// is told the bound port.
    public func publicListener(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some Service {
        try publicListener(tls: configuration.tls.map { try TLSCertificates($0, http2: configuration.http2) }, onListening: onListening)
    }

    func publicListener(tls: TLSCertificates?, onListening: @escaping @Sendable (Int) async -> Void = { _ in }) throws
        -> some Service
    {
        let group = MultiThreadedEventLoopGroup.singleton
        let shared = ProxyShared(
            responder: responder(), pools: UpstreamPools(group: group, target: try UpstreamTarget(configuration: configuration)),
            codes: issuedCodes, configuration: configuration, requests: metrics.requests,
            upstreamLatency: metrics.upstreamLatency, logger: logger)
        return PublicListener(
            shared: shared, address: configuration.publicAddress, tls: tls, group: group, onListening: onListening)
    }

    /// The admin listener: health and readiness always, metrics, and the admin API when an admin token
    /// is configured.
    public func adminApplication() -> some ApplicationProtocol {
        let discovery = metadata.discoveryPaths.first ?? metadata.authorizationPath
        let readiness = Readiness(
            store: service.store, client: proxy.client,
            upstreamURL: DiscoveryRewriter.join(configuration.upstreamURL, discovery),
            auditKey: configuration.audit.map { ($0.keysDirectory.appendingPathComponent("audit-signing-key.jwk"), auditSigner != nil) })
        let api = AdminAPI(
            service: service, metrics: metrics, token: configuration.adminToken, tokenName: configuration.adminTokenName,
            metricsToken: configuration.metricsToken, readiness: readiness, grantsChanged: { [snapshot] in snapshot.invalidate() })
        return Application(
            router: api.router(),
            configuration: .init(
                address: .hostname(configuration.adminAddress.host, port: configuration.adminAddress.port),
                serverName: nil),
            logger: logger)
    }

    /// Expiry, cross-process decision following, the grant snapshot and the chat outboxes.
    public var backgroundServices: [any Service] {
        var services: [any Service] = [
            refresher,
            ExpiryService(service: service, interval: .seconds(1), logger: logger),
            DecisionFollower(store: service.store, hub: hub, interval: .milliseconds(200), logger: logger),
        ]
        services += chatNotifiers as [any Service]
        if configuration.routing != nil {
            services.append(EscalationService(service: service, notifiers: chatNotifiers, interval: .milliseconds(500), logger: logger))
        }
        if let settings = configuration.audit, let auditSigner, let store = service.store as? any AuditLogStore {
            services.append(
                AuditCheckpointService(
                    store: store, signer: auditSigner, settings: settings, httpClient: proxy.client,
                    slack: slackInteractions?.api, logger: logger))
        }
        if let settings = configuration.idpRevocation, let store = service.store as? any GateStore & AuditLogStore {
            services.append(
                IdPRevocationService(
                    store: store, revoker: Self.revoker(settings, client: proxy.client, now: service.now), settings: settings,
                    logger: logger, now: service.now))
        }
        if let slack = configuration.slack, let appToken = slack.appToken, let slackInteractions {
            services.append(
                SlackSocketMode(
                    connections: SlackAPI(
                        client: slackInteractions.api.client, baseURL: slack.apiURL, token: appToken, metrics: metrics),
                    interactions: slackInteractions, logger: logger))
        }
        return services
    }

    /// The IdP administration API client of `settings`.
    static func revoker(
        _ settings: ScopeGateConfiguration.IdPRevocationSettings, client: HTTPClient, now: @escaping @Sendable () -> Date
    ) -> any IdPTokenRevoker {
        let http = IdPAdminHTTP(client: client, timeout: .seconds(10))
        switch settings.kind {
        case .keycloak(let realm, let adminRealm, let clientID, let clientSecret):
            return KeycloakRevocation(
                http: http, baseURL: settings.baseURL, realm: realm, adminRealm: adminRealm, clientID: clientID,
                clientSecret: clientSecret, now: now)
        case .okta(let apiToken):
            return OktaRevocation(http: http, baseURL: settings.baseURL, apiToken: apiToken, now: now)
        }
    }

    /// The HTTP client ScopeGate uses toward the IdP: pooled, never following redirects (the browser
    /// must see them), never decompressing (bodies pass through as they are).
    public static func makeHTTPClient(configuration: ScopeGateConfiguration) -> HTTPClient {
        var clientConfiguration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .init(configuration.connectTimeout), read: .init(configuration.responseTimeout)),
            connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256),
            decompression: .disabled)
        clientConfiguration.httpVersion = .http1Only
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
    }

    /// Opens the store, reads the IdP's metadata (refusing to start when the gated endpoints cannot be
    /// known) and returns the application with every service it needs, listeners last.
    public static func prepare(configuration: ScopeGateConfiguration, logger: Logger) async throws -> (
        app: ScopeGateApplication, services: [any Service]
    ) {
        let auditSigner = try configuration.auditSigner()
        let store = try await configuration.openStore()
        if auditSigner != nil {
            // The first entry of every run says which policy decides; a store that cannot take it
            // would not take decisions either, so ScopeGate does not start.
            try await store.recordAudit(
                AuditEvent(
                    "config.loaded",
                    [
                        ("policy_sha256", .string(configuration.policyDigest)),
                        ("signing_kid", .string(auditSigner?.key.publicKey.kid ?? "")),
                    ]), at: Date())
        } else {
            logger.warning("the audit log is off: decisions are not signed (configure audit.keys)")
        }
        let httpClient = makeHTTPClient(configuration: configuration)
        let metadata: UpstreamMetadata
        do {
            metadata = try await UpstreamMetadata.discover(configuration: configuration, client: httpClient)
        } catch {
            try await httpClient.shutdown()
            throw error
        }
        logger.info("ScopeGate \(ScopeGateVersion.current) starting", metadata: ["sg.version": "\(ScopeGateVersion.current)"])
        logger.info(
            "gating the authorization endpoint",
            metadata: ["sg.path": "\(metadata.authorizationPath)", "sg.upstream": "\(configuration.upstreamURL)"])
        logger.info("gating the token endpoint", metadata: ["sg.path": "\(metadata.tokenPath)"])
        if configuration.policy.shadowAll || !configuration.policy.shadowClients.isEmpty {
            logger.warning(
                "shadow mode: the policy is evaluated and recorded (policy.shadow in the audit log), but holds and refuses nothing",
                metadata: ["sg.shadow": "\(configuration.policy.shadowAll ? "all" : configuration.policy.shadowClients.sorted().joined(separator: ","))"])
        }
        for warning in configuration.policy.shadowedDenials() {
            logger.warning("a deny rule is shadowed", metadata: ["sg.config.warning": "\(warning)"])
        }
        for line in metadata.report(configuration: configuration) {
            logger.info("upstream endpoint", metadata: ["sg.endpoint": "\(line)"])
        }
        let app = ScopeGateApplication(
            configuration: configuration, store: store, httpClient: httpClient, metadata: metadata, logger: logger,
            auditSigner: auditSigner)
        var services: [any Service] = [HTTPClientService(client: httpClient)]
        services.append(contentsOf: app.backgroundServices)
        services.append(app.adminApplication())
        let certificates = try configuration.tls.map { try TLSCertificates($0, http2: configuration.http2) }
        services.append(try app.publicListener(tls: certificates))
        var reload: (@Sendable () async -> Void)?
        if let path = configuration.sourcePath {
            reload = { _ = await app.reloadPolicy(path: path) }
        }
        services.append(ReloadOnHangup(certificates: certificates, reloadPolicy: reload, logger: logger))
        services.append(WaitingBrowsersRelease(hub: app.hub))
        return (app, services)
    }

    /// Runs ScopeGate until SIGINT or SIGTERM.
    public static func run(configuration: ScopeGateConfiguration, logger: Logger) async throws {
        let (_, services) = try await prepare(configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// An HTTP client as a service, shut down after the listeners stop.
public struct HTTPClientService: Service {
    let client: HTTPClient

    /// Wraps `client`.
    public init(client: HTTPClient) { self.client = client }

    public func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}
