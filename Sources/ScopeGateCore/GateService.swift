import Foundation
import Logging

/// The gate's use cases: admit an authorization request, decide an approval request, expire stale
/// ones. Pure domain logic over the `GateStore` port; every store failure becomes
/// `temporarily_unavailable`, so that nothing is forwarded when the gate cannot be sure.
public struct GateService: Sendable {
    /// What to do with an authorization request.
    public enum Admission: Sendable, Equatable {
        /// Forward it to the IdP as parsed.
        case forward
        /// Forward it as a step of an authorization this browser held (`holdID`) and approvers approved
        /// once: these permissions stand for this authorization only (its code's token may carry them, no
        /// other), and the code that completes it spends the release (`SpentReleases`).
        case forwardOnce(ScopeSet, holdID: String)
        /// Refuse it: policy denies these scopes.
        case deny(ScopeSet)
        /// Hold it; the browser waits on the hold.
        case held(Hold, ApprovalRequest)
    }

    /// How long a released hold admits its browser's continuation of the same authorization. The IdP's
    /// own sign-in step replays the authorization request and its consent form posts it back, so a
    /// release must outlive one round trip; it is bound to the browser, to the parameters that identify
    /// the authorization (client, redirect URI, state, nonce, PKCE challenge) and to the permissions that
    /// were approved, so nothing else passes (see `Hold.admits`).
    public static let releaseWindow: Duration = .seconds(600)

    /// The longest justification stored, in characters.
    public static let maximumJustificationLength = 2000

    /// The policy in force, and the routes, replaced whole by a reload.
    public let live: LivePolicy
    /// The policy in force now.
    public var policy: Policy { live.policy }
    /// The store.
    public let store: any GateStore
    /// Told about openings and decisions.
    public let observer: any GateObserver
    /// The current time; injected for tests.
    public let now: @Sendable () -> Date
    /// How many new holds may be opened in a minute.
    public let limits: HoldLimits
    /// Releases approved once whose authorization the IdP has completed.
    public let spentReleases = SpentReleases()
    let logger: Logger

    /// Creates the service.
    /// Names the route a new approval request takes (client, unapproved scopes), for the audit log.
    public let routeName: (@Sendable (String, ScopeSet) -> String?)?

    public init(
        policy: Policy, store: any GateStore, observer: any GateObserver, logger: Logger,
        routeName: (@Sendable (String, ScopeSet) -> String?)? = nil, limits: HoldLimits = HoldLimits(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.init(
            live: LivePolicy(policy: policy), store: store, observer: observer, logger: logger, routeName: routeName, limits: limits,
            now: now)
    }

    /// Creates the service over a policy that can be reloaded.
    public init(
        live: LivePolicy, store: any GateStore, observer: any GateObserver, logger: Logger,
        routeName: (@Sendable (String, ScopeSet) -> String?)? = nil, limits: HoldLimits = HoldLimits(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.limits = limits
        self.routeName = routeName
        self.live = live
        self.store = store
        self.observer = observer
        self.logger = logger
        self.now = now
    }

    /// `scope=origin` of the rule that decides each scope, for the audit log.
    func rules(_ scopes: ScopeSet, clientID: String) -> [String] {
        scopes.tokens.map { "\($0)=\(policy.rule(for: $0, clientID: clientID).origin)" }
    }

    /// Decides what happens to `request` from the browser identified by `binderHash`, which came from
    /// `source` (its address, for the limits on new holds).
    public func admit(_ request: AuthorizationRequest, binderHash: String, source: String? = nil) async throws(GateError)
        -> Admission
    {
        // One policy for the whole decision, even if a reload lands meanwhile.
        let policy = self.policy
        let scopes = try policy.effectiveScopes(of: request)
        let encoded = request.parameters.encoded
        let date = now()
        return try await storeCall {
            let granted = Set(try await store.activeGrants(clientID: request.clientID, among: scopes, at: date).map(\.scope))
            let evaluation = policy.evaluate(scopes: scopes, clientID: request.clientID, granted: granted)
            if try await shadowed(evaluation, clientID: request.clientID, scopes: scopes, channel: "authorization", at: date) {
                return .forward
            }
            switch evaluation {
            case .deny(let denied):
                try await store.recordAudit(
                    AuditEvent(
                        "decision", clientID: request.clientID,
                        [
                            ("outcome", .string("denied")), ("actor", .string("policy")),
                            ("scopes", .strings(denied.tokens)), ("rules", .strings(rules(denied, clientID: request.clientID))),
                        ]), at: date)
                return .deny(denied)
            case .allow:
                return .forward
            case .hold(let unapproved, let alreadyGranted):
                let released = try await store.releasedHolds(
                    binderHash: binderHash, clientID: request.clientID,
                    decidedSince: date.addingTimeInterval(-Self.releaseWindow.seconds))
                // A release admits only what still stands: its approval once covers what is unapproved
                // now. A standing approval's grants revoked (or lapsed) since, or a grant the held
                // request already had revoked since, leave something unapproved that it does not
                // cover, and the request is asked about again.
                for hold in released where !spentReleases.isSpent(hold.id) && hold.admits(request, scopes: scopes, encoded: encoded) {
                    guard let approval = try await store.approvalRequest(id: hold.approvalRequestID),
                        approval.state == .approvedOnce, unapproved.isSubset(of: approval.approvedScopes)
                    else { continue }
                    _ = try await store.markContinued(holdID: hold.id, at: date)
                    return .forwardOnce(approval.approvedScopes, holdID: hold.id)
                }
                let (hold, approval) = try await hold(
                    clientID: request.clientID, binderHash: binderHash, method: request.method, encodedParameters: encoded,
                    scopes: scopes, unapproved: unapproved, alreadyGranted: alreadyGranted, source: source, at: date)
                return .held(hold, approval)
            }
        }
    }

    /// Holds a request, whichever channel it came by: within the limits on new holds (per source, per
    /// client, in all), attached to the pending approval request that asks the same question or to a new
    /// one, which automation may decide at once or the observers announce. The one place a hold opens.
    func hold(
        clientID: String, binderHash: String, method: AuthorizationRequest.Method, encodedParameters: String, scopes: ScopeSet,
        unapproved: ScopeSet, alreadyGranted: ScopeSet, source: String?, at date: Date
    ) async throws -> (Hold, ApprovalRequest) {
        guard try await limits.admit(clientID: clientID, source: source, at: date) else { throw HoldLimits.refusal }
        let draft = HoldDraft(
            clientID: clientID, binderHash: binderHash, method: method, encodedParameters: encodedParameters,
            requestedScopes: scopes, unapproved: unapproved, alreadyGranted: alreadyGranted,
            rules: rules(unapproved, clientID: clientID), route: routeName?(clientID, unapproved))
        let (hold, approval, opened) = try await store.openHold(
            draft, at: date, expiresAt: date.addingTimeInterval(policy.approvalTimeout.seconds))
        return (hold, opened ? try await announce(approval, by: hold) : approval)
    }

    /// In shadow mode, what the policy would have done to a request it did not allow, recorded in the
    /// audit log (`policy.shadow`); true when the request passes regardless.
    func shadowed(_ evaluation: Policy.Evaluation, clientID: String, scopes: ScopeSet, channel: String, at date: Date) async throws
        -> Bool
    {
        guard policy.isShadowed(clientID) else { return false }
        let would: String
        let affected: ScopeSet
        switch evaluation {
        case .allow: return true
        case .deny(let denied): (would, affected) = ("deny", denied)
        case .hold(let unapproved, _): (would, affected) = ("hold", unapproved)
        }
        var data: [(String, AuditEvent.Value)] = [
            ("would", .string(would)), ("channel", .string(channel)), ("scopes", .strings(affected.tokens)),
            ("rules", .strings(rules(affected, clientID: clientID))),
        ]
        if would == "hold", let route = routeName?(clientID, affected) { data.append(("route", .string(route))) }
        try await store.recordAudit(AuditEvent("policy.shadow", clientID: clientID, data), at: date)
        logger.info(
            "shadow mode let a request through",
            metadata: ["sg.client.id": "\(clientID)", "sg.would": "\(would)", "sg.channel": "\(channel)"])
        return true
    }

    /// A request just opened: decided at once by the first automation rule that matches it, or else
    /// announced to the observers (chat platforms, waiting browsers), which ask the approvers.
    func announce(_ approval: ApprovalRequest, by hold: Hold) async throws(GateError) -> ApprovalRequest {
        let standing = try await standing(of: approval.clientID)
        guard let rule = policy.automation(for: approval, holds: [hold], client: standing, at: now()) else {
            await observer.approvalRequestOpened(approval, by: hold)
            return approval
        }
        return try await decide(approval, by: rule)
    }

    /// How a client stands, for approvers to see: its registration, and since when it is known (from the
    /// store where the configuration gives no date; unknown when the store cannot say).
    public func clientStanding(of clientID: String) async -> ClientStanding {
        let policy = self.policy
        var first: Date?
        if policy.clients[clientID]?.registeredAt == nil { first = (try? await store.firstRequestDate(clientID: clientID)) ?? nil }
        return policy.standing(of: clientID, firstRequest: first)
    }

    /// How a client stands for automation; its first approval request is read from the store only
    /// when a rule looks at clients and the configuration gives no registration date.
    func standing(of clientID: String) async throws(GateError) -> ClientStanding? {
        guard policy.automationLooksAtClients else { return nil }
        var firstRequest: Date?
        if policy.clients[clientID]?.registeredAt == nil, policy.automation.contains(where: \.looksAtClientAge) {
            firstRequest = try await storeCall { try await store.firstRequestDate(clientID: clientID) }
        }
        return policy.standing(of: clientID, firstRequest: firstRequest)
    }

    /// Decides `approval` in the name of the automation rule that matched it.
    private func decide(_ approval: ApprovalRequest, by rule: AutomationRule) async throws(GateError) -> ApprovalRequest {
        let date = now()
        let reason = "automation rule \(rule.name) (\(rule.origin))"
        let decided: ApprovalRequest
        do {
            switch rule.outcome {
            case .approve:
                decided = try await record(
                    Decision(outcome: .approved, actor: rule.actor, at: date, reason: reason), on: approval.id,
                    grants: grants(for: approval, actor: rule.actor, at: date))
            case .deny:
                decided = try await record(
                    Decision(outcome: .denied, actor: rule.actor, at: date, reason: reason), on: approval.id, grants: [])
            }
        } catch where error.code == .alreadyDecided {
            return try await existing(approval.id)
        }
        return decided
    }

    /// The standing grants an approval of `request` writes, one for each of `scopes` (all the request
    /// asks for, by default), each lasting its tier's grant lifetime, or `duration` when the approver
    /// chose one (never beyond the tier's lifetime).
    func grants(
        for request: ApprovalRequest, scopes: ScopeSet? = nil, actor: String, at date: Date, duration: Duration? = nil
    ) -> [Grant] {
        (scopes ?? request.scopes).map { scope in
            let lifetime = policy.grantLifetime(for: scope, clientID: request.clientID)
            let chosen = duration.map { chosen in lifetime.map { min($0, chosen) } ?? chosen } ?? lifetime
            return Grant(
                clientID: request.clientID, scope: scope, approvedBy: actor, grantedAt: date,
                expiresAt: chosen.map { date.addingTimeInterval($0.seconds) }, approvalRequestID: request.id)
        }
    }

    /// Approves a pending request. `once` releases the attached holds without a standing grant.
    /// `scopes`, when given, approves only those of the scopes asked for (a partial approval): the held
    /// requests are released without the others. Where the request's tier needs several approvers,
    /// this is one vote: the request stays pending (and is returned so) until the last vote needed,
    /// which decides it, for the scopes every approving vote approved.
    @discardableResult
    public func approve(
        _ requestID: String, actor: String, once: Bool, reason: String? = nil, duration: Duration? = nil,
        scopes: ScopeSet? = nil, identity: ApproverIdentity = .operator
    ) async throws(GateError) -> ApprovalRequest {
        let policy = self.policy
        let date = now()
        let request = try await existing(requestID)
        try await separateDuties(on: request, approver: identity)
        let allowed = policy.allowedApprovals(of: request)
        guard once ? allowed.once : allowed.standing else {
            throw GateError(
                .forbidden,
                once
                    ? "requests of tier \(policy.tier(of: request)) are approved with standing grants only"
                    : "requests of tier \(policy.tier(of: request)) are approved once only, never with standing grants")
        }
        if let duration, !once, !policy.grantDurations(of: request).contains(duration) {
            let offered = policy.grantDurations(of: request).map { "\($0.components.seconds)s" }.joined(separator: ", ")
            throw GateError(
                .invalidRequest,
                offered.isEmpty ? "requests of tier \(policy.tier(of: request)) offer no choice of duration"
                    : "the duration must be one the tier offers (\(offered))")
        }
        let part = try Self.part(scopes, of: request)
        let grants = once ? [] : grants(for: request, scopes: part, actor: actor, at: date, duration: duration)
        let quorum = policy.quorum(of: request)
        guard quorum.approve == 1 else {
            if let part {
                // A vote that leaves nothing in common with the approvals so far could only end in a denial.
                if let common = Vote.approvedInCommon(try await votes(on: requestID)), part.intersection(common).isEmpty {
                    throw GateError(
                        .invalidRequest, "the approvals so far cover only \(common); approve some of those, or deny")
                }
            }
            var vote = Vote(voter: actor, choice: once ? .approveOnce : .approve, at: date, reason: reason, scopes: part)
            vote.person = identity.person
            return try await count(vote, on: request, quorum: quorum, grants: grants)
        }
        let decision = Decision(outcome: once ? .approvedOnce : .approved, actor: actor, at: date, reason: reason, scopes: part)
        return try await record(decision, on: requestID, grants: grants)
    }

    /// Separation of duties: a person never approves a request they asked for themselves (the same
    /// verified email address, or the same subject at the IdP), and where requesters are identified, a
    /// browser's request is approved only once its requester is known, and only by someone ScopeGate can
    /// tell apart from them. Operators (command line, admin API) are not people here.
    private func separateDuties(on request: ApprovalRequest, approver: ApproverIdentity) async throws(GateError) {
        guard case .person(let email, let subject) = approver else { return }
        let holds = try await storeCall { try await store.holds(approvalRequestID: request.id) }
        let requesters = holds.compactMap(\.requester)
        if requesters.contains(where: { $0.isSamePerson(as: approver) }) {
            throw GateError(.forbidden, "you asked for this request yourself; another approver must decide it")
        }
        if !requesters.isEmpty, email == nil, subject == nil {
            throw GateError(
                .forbidden, "ScopeGate cannot tell whether you are the requester (it has no verified email address of yours)")
        }
        if policy.identifyRequesters, holds.contains(where: { $0.isBrowserHold && $0.consumedAt == nil && $0.requester == nil }) {
            throw GateError(
                .forbidden, "the requester has not signed in yet; approvals wait until ScopeGate knows who asks")
        }
    }

    /// Records who asks on a hold, for the browser that owns it, while its request is pending.
    public func identify(holdID: String, binderHash: String, as requester: Requester) async throws(GateError) {
        let (hold, request) = try await status(ofHold: holdID, binderHash: binderHash)
        guard request.state == .pending else {
            throw GateError(.alreadyDecided, "the request was already \(request.state.rawValue)")
        }
        guard try await storeCall({ try await store.setRequester(holdID: hold.id, requester, at: now()) }) else { return }
        logger.info("requester identified", metadata: ["sg.request.id": "\(request.id)", "sg.hold.id": "\(hold.id)"])
        // Now that who asks is known, a rule on requesters' groups may decide.
        let holds = try await storeCall { try await store.holds(approvalRequestID: request.id) }
        let standing = try await standing(of: request.clientID)
        let date = now()
        if let rule = policy.automation.first(where: {
            !$0.requesterGroups.isEmpty && $0.matches(request, policy: policy, holds: holds, client: standing, at: date)
        }) {
            _ = try await decide(request, by: rule)
            return
        }
        await observer.approvalRequestUpdated(request)
    }

    /// The part of `request` that `scopes` approves: `nil` for all of it; refused unless it is some of
    /// the scopes asked for, of a request that can be approved in part.
    static func part(_ scopes: ScopeSet?, of request: ApprovalRequest) throws(GateError) -> ScopeSet? {
        guard let scopes, scopes != request.scopes else { return nil }
        guard request.isNarrowable else {
            throw GateError(
                .invalidRequest,
                "approval request \(request.id) can only be approved as a whole (it asks for \(request.scopes))")
        }
        guard !scopes.isEmpty, scopes.isSubset(of: request.scopes) else {
            throw GateError(
                .invalidRequest, "approve some of the scopes asked for (\(request.scopes)), and nothing else; to refuse them all, deny")
        }
        return scopes
    }

    /// Denies a pending request; where its tier needs several denials, this is one vote.
    @discardableResult
    public func deny(
        _ requestID: String, actor: String, reason: String? = nil, identity: ApproverIdentity = .operator
    ) async throws(GateError) -> ApprovalRequest {
        let request = try await existing(requestID)
        let quorum = policy.quorum(of: request)
        guard quorum.deny == 1 && quorum.approve == 1 else {
            var vote = Vote(voter: actor, choice: .deny, at: now(), reason: reason)
            vote.person = identity.person
            return try await count(vote, on: request, quorum: quorum, grants: [])
        }
        let decision = Decision(outcome: .denied, actor: actor, at: now(), reason: reason)
        return try await record(decision, on: requestID, grants: [])
    }

    /// The votes cast on a request so far, oldest first.
    public func votes(on requestID: String) async throws(GateError) -> [Vote] {
        try await storeCall { try await store.votes(approvalRequestID: requestID) }
    }

    /// Records a vote; the request as it stands afterwards.
    private func count(_ vote: Vote, on request: ApprovalRequest, quorum: Quorum, grants: [Grant]) async throws(GateError)
        -> ApprovalRequest
    {
        let result = try await storeCall { try await store.vote(request.id, vote, quorum: quorum, grants: grants) }
        switch result {
        case .counted(let pending, let votes):
            logger.info(
                "vote counted",
                metadata: [
                    "sg.request.id": "\(request.id)", "sg.actor": "\(vote.voter)", "sg.vote": "\(vote.choice.rawValue)",
                    "sg.approvals": "\(votes.filter(\.approves).count)", "sg.quorum": "\(quorum.approve)",
                ])
            await observer.approvalRequestUpdated(pending)
            return pending
        case .decided(let outcome):
            return await decided(outcome, by: vote.voter)
        }
    }

    /// Expires every pending request whose deadline has passed; returns those it expired.
    @discardableResult
    public func expireDue() async throws(GateError) -> [ApprovalRequest] {
        let date = now()
        let due = try await storeCall { try await store.pendingRequests(expiringBy: date) }
        _ = try await storeCall { try await store.recordLapsedGrants(at: date) }
        var expired: [ApprovalRequest] = []
        for request in due {
            let decision = Decision(outcome: .expired, actor: "policy:expiry", at: date, reason: "nobody decided in time")
            do {
                expired.append(try await record(decision, on: request.id, grants: []))
            } catch where error.code == .alreadyDecided {
                continue
            }
        }
        return expired
    }

    /// The hold and its approval request, for the browser that owns the hold only.
    public func status(ofHold holdID: String, binderHash: String) async throws(GateError) -> (Hold, ApprovalRequest) {
        try await storeCall {
            guard let hold = try await store.hold(id: holdID), hold.binderHash == binderHash,
                let request = try await store.approvalRequest(id: hold.approvalRequestID)
            else {
                throw GateError(.notFound, "no such waiting request in this browser")
            }
            return (hold, request)
        }
    }

    /// Stores the requester's justification on their hold, while its request is pending.
    public func justify(holdID: String, binderHash: String, text: String) async throws(GateError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count <= Self.maximumJustificationLength else {
            throw GateError(.invalidRequest, "the justification is longer than \(Self.maximumJustificationLength) characters")
        }
        let (hold, request) = try await status(ofHold: holdID, binderHash: binderHash)
        guard request.state == .pending else {
            throw GateError(.alreadyDecided, "the request was already \(request.state.rawValue)")
        }
        try await storeCall { try await store.setJustification(holdID: hold.id, trimmed) }
    }

    // MARK: - Helpers

    private func existing(_ requestID: String) async throws(GateError) -> ApprovalRequest {
        let request = try await storeCall { try await store.approvalRequest(id: requestID) }
        guard let request else { throw GateError(.notFound, "no approval request \(requestID)") }
        return request
    }

    private func record(_ decision: Decision, on requestID: String, grants: [Grant]) async throws(GateError)
        -> ApprovalRequest
    {
        let decided = try await storeCall { try await store.decide(requestID, decision, grants: grants) }
        return await self.decided(decided, by: decision.actor)
    }

    /// A request just decided (by `actor`): logged, and the observers told.
    private func decided(_ request: ApprovalRequest, by actor: String) async -> ApprovalRequest {
        logger.info(
            "approval request decided",
            metadata: [
                "sg.request.id": "\(request.id)", "sg.client.id": "\(request.clientID)",
                "sg.decision": "\(request.state.rawValue)", "sg.actor": "\(actor)",
            ])
        await observer.approvalRequestDecided(request)
        return request
    }

    /// Runs a store operation; a `GateError` passes through, anything else means the store failed.
    func storeCall<T>(_ body: () async throws -> T) async throws(GateError) -> T {
        do {
            return try await body()
        } catch let error as GateError where error.code != .storeFailure {
            throw error
        } catch {
            logger.error("store call failed", metadata: ["sg.error": "\(String(describing: type(of: error)))"])
            throw GateError(.temporarilyUnavailable, "the gate cannot reach its store; try again shortly")
        }
    }
}

extension Duration {
    /// The duration in seconds, as a `TimeInterval`.
    public var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
