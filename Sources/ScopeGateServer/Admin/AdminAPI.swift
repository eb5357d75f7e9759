import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ScopeGateCore

/// The admin listener (loopback by default): health for load balancers, metrics for scrapers, and
/// the admin API behind its bearer token.
///
///     GET    /healthz                       the process is alive (no credential)
///     GET    /readyz                        it can gate: store writable, IdP reachable, audit key loaded (no credential)
///     GET    /metrics                       Prometheus text format (the metrics token, when one is configured)
///     GET    /v1/requests?state=pending     approval requests, newest first
///     GET    /v1/requests/{id}              one, with its holds and justifications
///     POST   /v1/requests/{id}/approve      {"once": false, "reason": "…", "as": "alice"}
///     POST   /v1/requests/{id}/deny         {"reason": "…", "as": "alice"}
///     GET    /v1/grants                     grants in force
///     DELETE /v1/grants/{client}/{scope}    revoke one
///
/// The admin token opens `/v1` only; `/metrics` takes its own, read-only token, so that the credential
/// a scraper holds can never decide a request.
struct AdminAPI: Sendable {
    let service: GateService
    let metrics: GateMetrics
    /// The admin token's digest; without one the `/v1` API is off.
    let tokenDigest: SHA256.Digest?
    /// The metrics token's digest; without one `/metrics` is open to whoever reaches the listener.
    let metricsTokenDigest: SHA256.Digest?
    let tokenName: String
    let readiness: Readiness?
    /// Told when a grant is revoked here, so that nothing cached outlives it.
    let grantsChanged: @Sendable () -> Void

    init(
        service: GateService, metrics: GateMetrics, token: String?, tokenName: String, metricsToken: String? = nil,
        readiness: Readiness? = nil, grantsChanged: @escaping @Sendable () -> Void = {}
    ) {
        self.service = service
        self.metrics = metrics
        self.tokenDigest = token.map { SHA256.hash(data: Data($0.utf8)) }
        self.metricsTokenDigest = metricsToken.map { SHA256.hash(data: Data($0.utf8)) }
        self.tokenName = tokenName
        self.readiness = readiness
        self.grantsChanged = grantsChanged
    }

    struct DecisionBody: Decodable {
        var once: Bool?
        var reason: String?
        /// Who, behind the token, decides (`scopegate requests approve --server`): recorded as
        /// `admin:{token name}/{as}`.
        var `as`: String?
        /// How long the standing grants last, among the durations the tier offers (`30d`).
        var `for`: String?

        /// For a partial approval, the scopes approved (space-separated); all of them when absent.
        var scopes: String?

        /// The scopes approved, if only some.
        func approvedScopes() throws -> ScopeSet? {
            try scopes.map { try ScopeSet(parsing: $0) }
        }

        /// The chosen duration, if any.
        func duration() throws -> Duration? {
            guard let text = `for` else { return nil }
            guard let duration = ScopeGateConfiguration.duration(text) else {
                throw GateError(.invalidRequest, "for must be a duration such as 1d or 30d")
            }
            return duration
        }

        /// The actor recorded for a decision under the token named `tokenName`.
        func actor(tokenName: String) throws -> String {
            guard let name = `as` else { return "admin:\(tokenName)" }
            guard (1...64).contains(name.utf8.count),
                name.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || "._@-".utf8.contains($0) })
            else { throw GateError(.invalidRequest, "as must be 1 to 64 letters, digits, '.', '_', '@' or '-'") }
            return "admin:\(tokenName)/\(name)"
        }
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("/healthz") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/readyz") { _, _ in
            guard let readiness else { return Response(status: .ok) }
            let (ready, checks) = await readiness.check()
            let object = ["status": ready ? "ready" : "not ready", "checks": Dictionary(uniqueKeysWithValues: checks)] as [String: Any]
            let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return Response(
                status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        let scrape = metricsTokenDigest.map { router.group("/metrics").add(middleware: BearerTokenMiddleware(tokenDigest: $0, realm: "scopegate-metrics")) }
        (scrape ?? router.group("/metrics")).get { _, _ in
            await metrics.refresh(from: service.store)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.text)))
        }
        guard let tokenDigest else { return router }
        let api = router.group("/v1").add(middleware: BearerTokenMiddleware(tokenDigest: tokenDigest, realm: "scopegate-admin"))
        api.get("/requests") { request, _ in
            let filter = request.uri.queryParameters["state"].map(String.init)
            var states: Set<ApprovalRequest.State>?
            if let filter {
                guard let state = ApprovalRequest.State(rawValue: filter) else {
                    return ErrorResponses.json(GateError(.invalidRequest, "state must be one of \(ApprovalRequest.State.allCases.map(\.rawValue).joined(separator: ", "))"))
                }
                states = [state]
            }
            return await run {
                var reports: [RequestReport] = []
                for request in try await service.store.approvalRequests(states: states) {
                    reports.append(RequestReport(request, holds: try await service.store.holds(approvalRequestID: request.id), policy: service.policy))
                }
                return try json(reports)
            }
        }
        api.get("/requests/{id}") { _, context in
            let id = try context.parameters.require("id")
            return await run { try json(try await report(id)) }
        }
        api.post("/requests/{id}/approve") { request, context in
            let id = try context.parameters.require("id")
            let body = try await decision(request, context: context)
            return await run {
                try await service.approve(
                    id, actor: try body.actor(tokenName: tokenName), once: body.once ?? false, reason: body.reason,
                    duration: try body.duration(), scopes: try body.approvedScopes())
                return try json(try await report(id))
            }
        }
        api.post("/requests/{id}/deny") { request, context in
            let id = try context.parameters.require("id")
            let body = try await decision(request, context: context)
            return await run {
                try await service.deny(id, actor: try body.actor(tokenName: tokenName), reason: body.reason)
                return try json(try await report(id))
            }
        }
        api.get("/grants") { _, _ in
            await run { try json(try await service.store.allActiveGrants(at: service.now()).map(GrantReport.init)) }
        }
        api.delete("/grants/{client}/{scope}") { _, context in
            let client = try context.parameters.require("client")
            let scope = try context.parameters.require("scope")
            return await run {
                guard try await service.revokeGrant(clientID: client, scope: scope, actor: "admin:\(tokenName)") else {
                    throw GateError(.notFound, "client \(client) holds no grant for \(scope)")
                }
                grantsChanged()
                return Response(status: .noContent)
            }
        }
        return router
    }

    private func decision(_ request: Request, context: BasicRequestContext) async throws -> DecisionBody {
        var copy = request
        let body = try await copy.collectBody(upTo: 16 * 1024)
        if body.readableBytes == 0 { return DecisionBody() }
        return try JSONDecoder().decode(DecisionBody.self, from: Data(buffer: body))
    }

    private func report(_ id: String) async throws -> RequestReport {
        guard let request = try await service.store.approvalRequest(id: id) else {
            throw GateError(.notFound, "no approval request \(id)")
        }
        let notifications = try await (service.store as? any ChatOutboxStore)?.chatMessages(approvalRequestID: id) ?? []
        return RequestReport(
            request, holds: try await service.store.holds(approvalRequestID: id), policy: service.policy,
            notifications: notifications, votes: try await service.store.votes(approvalRequestID: id))
    }

    private func run(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as GateError {
            return ErrorResponses.json(error)
        } catch {
            return ErrorResponses.json(GateError(.temporarilyUnavailable, "the store failed; try again shortly"))
        }
    }

    private func json(_ value: some Encodable) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try RequestReport.encoder.encode(value))))
    }
}

/// A grant as operators see it.
public struct GrantReport: Codable, Sendable {
    enum CodingKeys: String, CodingKey {
        case scope
        case clientID = "client_id", approvedBy = "approved_by", grantedAt = "granted_at", expiresAt = "expires_at"
        case approvalRequestID = "approval_request_id"
    }

    public var clientID: String
    public var scope: String
    public var approvedBy: String
    public var grantedAt: Date
    public var expiresAt: Date?
    public var approvalRequestID: String?

    public init(_ grant: Grant) {
        clientID = grant.clientID
        scope = grant.scope
        approvedBy = grant.approvedBy
        grantedAt = grant.grantedAt
        expiresAt = grant.expiresAt
        approvalRequestID = grant.approvalRequestID
    }
}

/// Refuses every admin request without the configured bearer token (compared as SHA-256 digests, in
/// constant time).
struct BearerTokenMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let tokenDigest: SHA256.Digest
    let realm: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
            SHA256.hash(data: Data(header.dropFirst(7).utf8)) == tokenDigest
        else {
            var response = ErrorResponses.json(GateError(.forbidden, "a valid bearer token is required"))
            response.status = .unauthorized
            response.headers[.wwwAuthenticate] = "Bearer realm=\"\(realm)\""
            return response
        }
        return try await next(request, context)
    }
}
