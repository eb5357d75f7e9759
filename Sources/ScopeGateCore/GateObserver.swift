/// Told about approval requests as they open and end: the port through which waiting browsers are
/// woken and chat platforms are notified. Observers must not throw or block; the state change has
/// already been stored when they are called.
public protocol GateObserver: Sendable {
    /// A new approval request was opened by `hold`.
    func approvalRequestOpened(_ request: ApprovalRequest, by hold: Hold) async
    /// An approval request was decided (approved, denied or expired).
    func approvalRequestDecided(_ request: ApprovalRequest) async
    /// A pending request changed without being decided: a vote was counted on a request that needs
    /// several, or a requester signed in and is now known.
    func approvalRequestUpdated(_ request: ApprovalRequest) async
}

extension GateObserver {
    public func approvalRequestOpened(_ request: ApprovalRequest, by hold: Hold) async {}
    public func approvalRequestDecided(_ request: ApprovalRequest) async {}
    public func approvalRequestUpdated(_ request: ApprovalRequest) async {}
}

/// Several observers told in turn.
public struct GateObservers: GateObserver {
    /// The observers, in the order they are told.
    public let observers: [any GateObserver]

    /// Creates the list.
    public init(_ observers: [any GateObserver]) { self.observers = observers }

    public func approvalRequestOpened(_ request: ApprovalRequest, by hold: Hold) async {
        for observer in observers { await observer.approvalRequestOpened(request, by: hold) }
    }

    public func approvalRequestDecided(_ request: ApprovalRequest) async {
        for observer in observers { await observer.approvalRequestDecided(request) }
    }

    public func approvalRequestUpdated(_ request: ApprovalRequest) async {
        for observer in observers { await observer.approvalRequestUpdated(request) }
    }
}
