import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ScopeGateAudit
import ScopeGateCore
import ScopeGateStore
import ServiceLifecycle
import Synchronization
import Testing

@testable import ScopeGateServer

/// ScopeGate running on loopback in front of a `RecordingUpstream`, with a plain HTTP client that
/// follows nothing and keeps its own cookie, as a browser would.
struct GateHarness {
    let upstream: RecordingUpstream
    let gate: ScopeGateApplication
    let publicURL: String
    let adminURL: String
    let client: HTTPClient
    let storePath: String
    static let adminToken = "test-admin-token-0123456789"

    static func configYAML(
        upstreamPort: Int, publicPort: Int, adminPort: Int, storePath: String, extra: String, unreachableUpstream: Bool,
        listenExtra: String = "", upstreamExtra: String = ""
    ) -> String {
        let upstream = unreachableUpstream
            ? "url: http://127.0.0.1:\(try! FreePorts.take(1)[0])\n  authorization_endpoint: /o/authorize/\n  token_endpoint: /o/token/"
            : "url: http://127.0.0.1:\(upstreamPort)"
        return """
        public_url: http://127.0.0.1:\(publicPort)
        listen:
          public: 127.0.0.1:\(publicPort)
          admin: 127.0.0.1:\(adminPort)\(listenExtra)
        upstream:
          \(upstream)
          host_header: public\(upstreamExtra)
          response_timeout: 2s
          connect_timeout: 1s
        store:
          path: \(storePath)
        admin:
          token_env: SG_TEST_ADMIN_TOKEN
        approvals:
          timeout: 10m
        scopes:
          - pattern: openid
            auto: approve
            tier: low
            description: Know who you are
          - pattern: "admin:*"
            auto: deny
            tier: critical
          - pattern: "*:read"
            auto: ask
            tier: elevated
            description: Read data
          - pattern: "*:write"
            auto: ask
            tier: critical
            description: Change data
        clients:
          - id: app
            name: Test <App>
            redirect_uris: ["https://app.example/cb"]
        \(extra)
        """
    }

    /// Slack approvals through `slack`: approvals channel for everyone (U0ALICE decides, also by direct
    /// message), critical scopes to the security group's channel.
    static func slackConfig(_ slack: FakeSlack, socketMode: Bool) -> String {
        let interactivity = socketMode
            ? "socket_mode: true\n  app_token_env: SG_TEST_SLACK_APP_TOKEN" : "signing_secret_env: SG_TEST_SLACK_SIGNING_SECRET"
        return """
        slack:
          team_id: \(FakeSlack.teamID)
          bot_token_env: SG_TEST_SLACK_BOT_TOKEN
          \(interactivity)
          api_url: \(slack.apiURL)
        routes:
          - name: critical
            match:
              tiers: [critical]
            channel: C0CRITICAL
            approvers:
              groups: [S0SECURITY]
          - name: everyone
            channel: C0APPROVALS
            dm: true
            approvers:
              users: [U0ALICE]
        default_route: everyone
        """
    }

    /// Where a configuration of a test's own must point: the recording upstream, the harness's ports
    /// and a new store file.
    struct ConfigPlaces: Sendable {
        var upstreamURL: String
        var publicPort: Int
        var adminPort: Int
        var storePath: String
    }

    /// Runs `body` with ScopeGate serving; everything is torn down afterwards.
    static func with(
        extraConfig: String = "", listenExtra: String = "", store: (any GateStore)? = nil, unreachableUpstream: Bool = false,
        slack: FakeSlack? = nil, socketMode: Bool = false, auditSigner: AuditSigner? = nil, discoveryExtra: String = "",
        upstreamExtra: String = "", configuration yaml: (@Sendable (ConfigPlaces) -> String)? = nil,
        discovery: (path: String, document: String)? = nil, environment: [String: String] = [:],
        _ body: @Sendable (GateHarness) async throws -> Void
    ) async throws {
        let extraConfig = slack.map { extraConfig + "\n" + slackConfig($0, socketMode: socketMode) } ?? extraConfig
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let upstream = RecordingUpstream(discoveryExtra: discoveryExtra, discovery: discovery)
        let ports = try FreePorts.take(3)
        let (upstreamPort, publicPort, adminPort) = (ports[0], ports[1], ports[2])
        let publicURL = "http://127.0.0.1:\(publicPort)"
        let storePath = FileManager.default.temporaryDirectory.appendingPathComponent("sg-\(UUID().uuidString)/gate.sqlite").path
        let upstreamApp = Application(
            responder: upstream.responder(issuer: { publicURL }),
            configuration: .init(address: .hostname("127.0.0.1", port: upstreamPort)), logger: logger)
        let places = ConfigPlaces(
            upstreamURL: "http://127.0.0.1:\(upstreamPort)", publicPort: publicPort, adminPort: adminPort, storePath: storePath)
        let configuration = try ScopeGateConfiguration.parse(
            yaml: yaml?(places)
                ?? configYAML(
                    upstreamPort: upstreamPort, publicPort: publicPort, adminPort: adminPort, storePath: storePath,
                    extra: extraConfig, unreachableUpstream: unreachableUpstream, listenExtra: listenExtra,
                    upstreamExtra: upstreamExtra),
            baseDirectory: URL(fileURLWithPath: "/"), environment: [
                "SG_TEST_ADMIN_TOKEN": adminToken, "SG_TEST_SLACK_BOT_TOKEN": FakeSlack.botToken,
                "SG_TEST_SLACK_SIGNING_SECRET": FakeSlack.signingSecret, "SG_TEST_SLACK_APP_TOKEN": FakeSlack.appToken,
            ].merging(environment) { _, given in given })
        let httpClient = ScopeGateApplication.makeHTTPClient(configuration: configuration)
        let testClient = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(2), read: .seconds(30))))
        let upstreamGroup = ServiceGroup(services: [upstreamApp], logger: logger)
        let upstreamTask = Task { try await upstreamGroup.run() }
        try await FreePorts.waitUntilListening(upstreamPort)
        let metadata: UpstreamMetadata
        do {
            metadata = try await UpstreamMetadata.discover(configuration: configuration, client: httpClient)
        } catch {
            // ScopeGate refused to start: tear down what was started, and report why.
            try await testClient.shutdown()
            try await httpClient.shutdown()
            await upstreamGroup.triggerGracefulShutdown()
            _ = await upstreamTask.result
            throw error
        }
        let gate = ScopeGateApplication(
            configuration: configuration, store: try store ?? SQLiteGateStore(path: storePath), httpClient: httpClient,
            metadata: metadata, logger: logger, auditSigner: auditSigner)
        var services: [any Service] = gate.backgroundServices + [try gate.publicListener()]
        services.append(gate.adminApplication())
        let gateGroup = ServiceGroup(services: services, logger: logger)
        let gateTask = Task { try await gateGroup.run() }
        try await FreePorts.waitUntilListening(publicPort)
        try await FreePorts.waitUntilListening(adminPort)
        let harness = GateHarness(
            upstream: upstream, gate: gate, publicURL: publicURL, adminURL: "http://127.0.0.1:\(adminPort)",
            client: testClient, storePath: storePath)
        let outcome: Result<Void, any Error>
        do {
            try await body(harness)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        // Close the connections each side pools before stopping the server it points at, so graceful
        // shutdown has nothing to wait for.
        try await testClient.shutdown()
        await gateGroup.triggerGracefulShutdown()
        _ = await gateTask.result
        try await httpClient.shutdown()
        await upstreamGroup.triggerGracefulShutdown()
        _ = await upstreamTask.result
        try outcome.get()
    }

    /// A response with its body read.
    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: String
        var location: String? { headers.first(name: "Location") }
    }

    /// Sends a request to the public listener (or `base`).
    func send(
        _ method: HTTPMethod = .GET, _ target: String, headers: [(String, String)] = [], body: String? = nil,
        base: String? = nil
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: (base ?? publicURL) + target)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: String(buffer: buffer))
    }

    func admin(_ method: HTTPMethod, _ path: String, body: String? = nil, token: String? = adminToken) async throws -> Reply {
        var headers: [(String, String)] = [("Content-Type", "application/json")]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        return try await send(method, path, headers: headers, body: body, base: adminURL)
    }

    static let authorizePath = "/o/authorize/"

    static func authorizeQuery(scope: String, state: String = "st%2Fate+1", extra: String = "") -> String {
        "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=\(scope)&state=\(state)&code_challenge=abc&code_challenge_method=S256" + extra
    }
}

enum FreePorts {
    /// Every port handed out in this test process. Suites run in parallel, and the kernel may report a
    /// port free again as soon as the probe closes: two harnesses must never get the same one (the
    /// second's server would fail to bind and its requests reach the first's).
    private static let handedOut = Mutex<Set<Int>>([])

    /// Ports free right now, none handed out before in this process. They are chosen below the
    /// kernel's ephemeral range: a port inside it can be taken by any outgoing connection (the suites
    /// make many, in parallel) between this probe and the server's bind.
    static func take(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        var ports: [Int] = []
        defer { sockets.forEach { close($0) } }
        let low = ephemeralRangeStart()
        var attempts = 0
        while ports.count < count {
            attempts += 1
            guard attempts < 10_000 else { throw POSIXError(.EADDRINUSE) }
            let wanted = low > 10_100 ? Int.random(in: 10_000..<low) : 0
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(wanted).bigEndian
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            sockets.append(fd)
            guard bound == 0 else { continue }
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            let port = Int(UInt16(bigEndian: address.sin_port))
            if handedOut.withLock({ $0.insert(port).inserted }) { ports.append(port) }
        }
        return ports
    }

    /// The first port of the kernel's ephemeral range (0 when it cannot be read).
    private static func ephemeralRangeStart() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8) else { return 0 }
        return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 0
    }

    static func waitUntilListening(_ port: Int) async throws {
        for _ in 0..<200 {
            if let fd = connectLoopback(port) {
                close(fd)
                return
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw CancellationError()
    }

    /// A blocking TCP connection to 127.0.0.1:`port`, or `nil` when nothing listens there.
    static func connectLoopback(_ port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result == 0 { return fd }
        close(fd)
        return nil
    }
}

/// A fake service on loopback for the length of a test.
enum LoopbackServer {
    /// Runs `app` (listening on `port`) while `body` runs, then shuts it down, whatever `body` threw.
    static func run(_ app: some Service, port: Int, logger: Logger, _ body: () async throws -> Void) async throws {
        let group = ServiceGroup(services: [app], logger: logger)
        let task = Task { try await group.run() }
        try await FreePorts.waitUntilListening(port)
        let outcome: Result<Void, any Error>
        do {
            try await body()
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        await group.triggerGracefulShutdown()
        _ = await task.result
        try outcome.get()
    }
}
