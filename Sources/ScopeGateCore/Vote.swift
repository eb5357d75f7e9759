import Foundation

/// How many distinct approvers decide a request: `approve` approvals approve it, `deny` denials deny it.
public struct Quorum: Sendable, Equatable {
    public var approve: Int
    public var deny: Int

    public init(approve: Int, deny: Int) {
        self.approve = max(1, approve)
        self.deny = max(1, deny)
    }

    /// One approver decides either way.
    public static let single = Quorum(approve: 1, deny: 1)
}

/// One approver's vote on a request that needs several.
public struct Vote: Sendable, Equatable {
    public enum Choice: String, Sendable {
        case approve
        case approveOnce = "approve_once"
        case deny
    }

    /// Who voted, as decisions name actors (`slack:T/U`, `teams:tenant/oid`, `page:…`, `cli:…`).
    public var voter: String
    public var choice: Choice
    public var at: Date
    public var reason: String?
    /// The scopes an approving vote approves, when only some of those asked for; `nil` for all.
    public var scopes: ScopeSet?
    /// The person behind the voter, when known (their verified email address, lower-cased): one person
    /// counts once, whichever platforms they vote from.
    public var person: String?

    public init(voter: String, choice: Choice, at: Date, reason: String? = nil, scopes: ScopeSet? = nil) {
        self.voter = voter
        self.choice = choice
        self.at = at
        self.reason = reason
        self.scopes = choice == .deny ? nil : scopes
    }

    /// What every approving vote of `votes` approved: the scopes common to the partial ones; `nil` (all
    /// the scopes asked for) when none is partial.
    public static func approvedInCommon(_ votes: [Vote]) -> ScopeSet? {
        var common: ScopeSet?
        for part in votes.lazy.filter(\.approves).compactMap(\.scopes) {
            common = common?.intersection(part) ?? part
        }
        return common
    }

    /// Whether the vote approves (standing or once).
    public var approves: Bool { choice != .deny }
}

/// What a vote did.
public enum VoteResult: Sendable, Equatable {
    /// Counted; the request still waits for more votes.
    case counted(ApprovalRequest, votes: [Vote])
    /// It was the last vote needed: the request is decided.
    case decided(ApprovalRequest)
}

extension Quorum {
    /// The decision `votes` (the newest last) reach, if they reach one: the newest vote decides, in the
    /// name of every voter who made the outcome.
    public func decision(of votes: [Vote]) -> Decision? {
        guard let last = votes.last else { return nil }
        let approving = votes.filter(\.approves)
        let denying = votes.filter { !$0.approves }
        if denying.count >= deny {
            return Decision(
                outcome: .denied, actor: last.voter, at: last.at,
                reason: Self.reason(denying, verb: "denied", needed: deny, given: last.reason))
        }
        if approving.count >= approve {
            let once = approving.contains { $0.choice == .approveOnce }
            let common = Vote.approvedInCommon(approving)
            if let common, common.isEmpty {
                return Decision(
                    outcome: .denied, actor: last.voter, at: last.at,
                    reason: "the approvers approved no scope in common: " + approving.map(\.voter).joined(separator: ", "))
            }
            return Decision(
                outcome: once ? .approvedOnce : .approved, actor: last.voter, at: last.at,
                reason: Self.reason(approving, verb: "approved", needed: approve, given: last.reason), scopes: common)
        }
        return nil
    }

    /// Of the grants an approval would write, those its decision covers.
    public static func covered(_ grants: [Grant], by decision: Decision) -> [Grant] {
        guard decision.outcome == .approved else { return [] }
        guard let part = decision.scopes else { return grants }
        return grants.filter { part.contains($0.scope) }
    }

    private static func reason(_ votes: [Vote], verb: String, needed: Int, given: String?) -> String? {
        guard needed > 1 else { return given }
        let who = "\(verb) by \(votes.count) of \(needed) needed: " + votes.map(\.voter).joined(separator: ", ")
        return given.map { "\(who) (\($0))" } ?? who
    }
}
