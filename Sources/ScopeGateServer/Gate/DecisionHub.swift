import ScopeGateCore

/// Wakes waiting browsers when their approval request is decided, by this process or another.
///
/// Each request id has a version that grows with every publication. A waiter reads the version,
/// then the store, then waits for the version to move, so a decision that lands between the read and
/// the wait is never missed.
actor DecisionHub: GateObserver {
    private var versions: [String: Int] = [:]
    private var waiters: [String: [Int: CheckedContinuation<Void, Never>]] = [:]
    private var nextWaiter = 0
    private var closed = false

    /// The current version of `requestID`.
    func version(of requestID: String) -> Int { versions[requestID] ?? 0 }

    /// Returns when `requestID` moves past `version`, or after `timeout`.
    func waitForChange(of requestID: String, after version: Int, timeout: Duration) async {
        if closed || (versions[requestID] ?? 0) != version { return }
        nextWaiter += 1
        let waiter = nextWaiter
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            waiters[requestID, default: [:]][waiter] = continuation
            Task {
                try? await Task.sleep(for: timeout)
                self.resume(requestID, waiter)
            }
        }
    }

    /// Announces a decision on `requestID`.
    func publish(_ requestID: String) {
        if versions.count > 50_000 { versions = versions.filter { waiters[$0.key] != nil } }
        versions[requestID, default: 0] += 1
        for continuation in (waiters.removeValue(forKey: requestID) ?? [:]).values { continuation.resume() }
    }

    /// Answers every waiting browser now and every later one at once: the server is shutting down, and
    /// a long-poll must not hold it up. The browsers poll again and find the server back or gone.
    func close() {
        closed = true
        for continuation in waiters.values.flatMap(\.values) { continuation.resume() }
        waiters.removeAll()
    }

    private func resume(_ requestID: String, _ waiter: Int) {
        guard let continuation = waiters[requestID]?.removeValue(forKey: waiter) else { return }
        if waiters[requestID]?.isEmpty == true { waiters[requestID] = nil }
        continuation.resume()
    }

    nonisolated func approvalRequestDecided(_ request: ApprovalRequest) async {
        await publish(request.id)
    }
}
