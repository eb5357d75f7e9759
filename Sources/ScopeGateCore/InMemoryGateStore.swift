import Foundation

/// A `GateStore` in memory, for tests and examples. It keeps the same atomicity promises as the
/// SQLite store, and can be told to fail so that fail-closed paths can be tested.
public actor InMemoryGateStore: GateStore {
    private var grants: [Grant] = []
    private var holdsByID: [String: Hold] = [:]
    private var requestsByID: [String: ApprovalRequest] = [:]
    private var votesByRequest: [String: [Vote]] = [:]
    private var decisionLog: [DecisionEvent] = []
    /// When true, every call throws, as a broken database would.
    public var failing = false

    /// Creates an empty store.
    public init() {}

    /// Makes every later call fail (or succeed again).
    public func setFailing(_ failing: Bool) { self.failing = failing }

    private func check() throws {
        if failing { throw GateError(.storeFailure, "the in-memory store was told to fail") }
    }

    public func activeGrants(clientID: String, among scopes: ScopeSet, at date: Date) throws -> [Grant] {
        try check()
        return grants.filter { $0.clientID == clientID && scopes.contains($0.scope) && $0.isActive(at: date) }
    }

    public func allActiveGrants(at date: Date) throws -> [Grant] {
        try check()
        return grants.filter { $0.isActive(at: date) }
    }

    private var grantChanges: Int64 = 0

    public func grantsVersion() throws -> Int64 {
        try check()
        return grantChanges
    }

    public func revokeGrant(clientID: String, scope: String, actor: String, at date: Date) throws -> Bool {
        try check()
        grantChanges += 1
        let before = grants.count
        grants.removeAll { $0.clientID == clientID && $0.scope == scope }
        return grants.count != before
    }

    public func openHold(_ draft: HoldDraft, at date: Date, expiresAt: Date) throws -> (
        hold: Hold, request: ApprovalRequest, opened: Bool
    ) {
        try check()
        var opened = false
        let request: ApprovalRequest
        if let existing = requestsByID.values.first(where: {
            $0.state == .pending && $0.clientID == draft.clientID && $0.scopes == draft.unapproved
        }) {
            request = existing
        } else {
            request = ApprovalRequest(
                id: RandomID.make(prefix: "ar_", bytes: 8), clientID: draft.clientID, scopes: draft.unapproved,
                alreadyGranted: draft.alreadyGranted, createdAt: date, expiresAt: expiresAt)
            requestsByID[request.id] = request
            opened = true
        }
        let hold = Hold(
            id: RandomID.make(bytes: 16), approvalRequestID: request.id, clientID: draft.clientID,
            binderHash: draft.binderHash, method: draft.method, encodedParameters: draft.encodedParameters,
            requestedScopes: draft.requestedScopes, createdAt: date)
        holdsByID[hold.id] = hold
        return (hold, request, opened)
    }

    public func hold(id: String) throws -> Hold? {
        try check()
        return holdsByID[id]
    }

    public func holds(binderPrefix prefix: String) throws -> [Hold] {
        try check()
        return holdsByID.values.filter { $0.binderHash.hasPrefix(prefix) }.sorted { $0.createdAt < $1.createdAt }
    }

    public func holds(approvalRequestID: String) throws -> [Hold] {
        try check()
        return holdsByID.values.filter { $0.approvalRequestID == approvalRequestID }.sorted { $0.createdAt < $1.createdAt }
    }

    public func approvalRequest(id: String) throws -> ApprovalRequest? {
        try check()
        return requestsByID[id]
    }

    public func approvalRequests(states: Set<ApprovalRequest.State>?) throws -> [ApprovalRequest] {
        try check()
        return requestsByID.values.filter { states?.contains($0.state) ?? true }.sorted { $0.createdAt > $1.createdAt }
    }

    public func decide(_ requestID: String, _ decision: Decision, grants newGrants: [Grant]) throws -> ApprovalRequest {
        try check()
        guard let request = requestsByID[requestID] else {
            throw GateError(.notFound, "no approval request \(requestID)")
        }
        let decided = try request.applying(decision)
        requestsByID[requestID] = decided
        for grant in newGrants {
            grants.removeAll { $0.clientID == grant.clientID && $0.scope == grant.scope }
            grants.append(grant)
            grantChanges += 1
        }
        decisionLog.append(DecisionEvent(cursor: Int64(decisionLog.count + 1), approvalRequestID: requestID))
        return decided
    }

    public func vote(_ requestID: String, _ vote: Vote, quorum: Quorum, grants newGrants: [Grant]) throws -> VoteResult {
        try check()
        guard let request = requestsByID[requestID] else { throw GateError(.notFound, "no approval request \(requestID)") }
        guard request.state == .pending else { throw GateError(.alreadyDecided, "approval request \(requestID) was already decided") }
        var votes = votesByRequest[requestID] ?? []
        guard !votes.contains(where: { $0.voter == vote.voter || (vote.person != nil && $0.person == vote.person) }) else {
            throw GateError(.alreadyVoted, "\(vote.voter) already voted on approval request \(requestID)")
        }
        votes.append(vote)
        votesByRequest[requestID] = votes
        guard let decision = quorum.decision(of: votes) else { return .counted(request, votes: votes) }
        return .decided(try decide(requestID, decision, grants: Quorum.covered(newGrants, by: decision)))
    }

    public func escalate(_ requestID: String, to route: String, channels: [String: [String]], at date: Date) throws -> Bool {
        try check()
        guard var request = requestsByID[requestID], request.state == .pending, request.escalatedTo == nil else { return false }
        request.escalation = (route, date)
        requestsByID[requestID] = request
        return true
    }

    public func markReminded(_ requestID: String, at date: Date) throws -> Bool {
        try check()
        guard var request = requestsByID[requestID], request.state == .pending, request.remindedAt == nil else { return false }
        request.remindedAt = date
        requestsByID[requestID] = request
        return true
    }

    public func votes(approvalRequestID: String) throws -> [Vote] {
        try check()
        return votesByRequest[approvalRequestID] ?? []
    }

    public func setJustification(holdID: String, _ text: String) throws {
        try check()
        holdsByID[holdID]?.justification = text
    }

    public func setRequester(holdID: String, _ requester: Requester, at date: Date) throws -> Bool {
        try check()
        guard holdsByID[holdID] != nil, holdsByID[holdID]?.requester == nil else { return false }
        holdsByID[holdID]?.requester = requester
        return true
    }

    public func checkWritable() throws {
        try check()
    }

    public func releasedHolds(binderHash: String, clientID: String, decidedSince: Date) throws -> [Hold] {
        try check()
        return holdsByID.values.filter { hold in
            guard hold.binderHash == binderHash, hold.clientID == clientID,
                let request = requestsByID[hold.approvalRequestID], request.state.releases,
                let decidedAt = request.decision?.at
            else { return false }
            return decidedAt >= decidedSince
        }.sorted { $0.createdAt < $1.createdAt }
    }

    public func markContinued(holdID id: String, at date: Date) throws -> Bool {
        try check()
        guard let hold = holdsByID[id], hold.consumedAt == nil else { return false }
        holdsByID[id]?.consumedAt = date
        return true
    }

    public func recordLapsedGrants(at date: Date) throws -> Int {
        try check()
        return 0
    }

    public func markRejected(holdID id: String, at date: Date) throws -> Bool {
        try markContinued(holdID: id, at: date)
    }

    /// Events recorded with `recordAudit`, for tests; this store signs nothing.
    public private(set) var auditEvents: [AuditEvent] = []

    public func recordAudit(_ event: AuditEvent, at date: Date) throws {
        try check()
        auditEvents.append(event)
    }

    public func pendingRequests(expiringBy date: Date) throws -> [ApprovalRequest] {
        try check()
        return requestsByID.values.filter { $0.state == .pending && $0.expiresAt <= date }
    }

    public func decisionEvents(after cursor: Int64) throws -> [DecisionEvent] {
        try check()
        return decisionLog.filter { $0.cursor > cursor }
    }

    public func firstRequestDate(clientID: String) throws -> Date? {
        try check()
        return requestsByID.values.filter { $0.clientID == clientID }.map(\.createdAt).min()
    }

    public func latestDecisionCursor() throws -> Int64 {
        try check()
        return decisionLog.last?.cursor ?? 0
    }
}
