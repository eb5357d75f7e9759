import Foundation
import Logging
import ScopeGateCore

/// Decides whether a Slack user may decide a request on a route: by user id, or by membership of an
/// approver user group (`usergroups.users.list`, cached for a bounded time). The user's team must be
/// the configured workspace. A group that cannot be read authorizes nobody.
actor SlackApprovers {
    /// Whether the user may decide, and if not, why (shown to the user, ephemeral).
    enum Verdict: Equatable {
        case approver
        case notAnApprover
        case cannotCheck
    }

    let api: SlackAPI
    let teamID: String
    let lifetime: Duration
    let now: @Sendable () -> Date
    private var groups: [String: (members: Set<String>, fetched: Date)] = [:]

    init(api: SlackAPI, teamID: String, lifetime: Duration = .seconds(300), now: @escaping @Sendable () -> Date) {
        self.api = api
        self.teamID = teamID
        self.lifetime = lifetime
        self.now = now
    }

    func verdict(user: String, team: String?, route: Route) async -> Verdict {
        guard team == teamID else { return .notAnApprover }
        if route.approverUsers.contains(user) { return .approver }
        var unreadable = false
        for group in route.approverGroups {
            guard let members = await members(of: group) else {
                unreadable = true
                continue
            }
            if members.contains(user) { return .approver }
        }
        return unreadable ? .cannotCheck : .notAnApprover
    }

    /// A group's members, from the cache while fresh.
    private func members(of group: String) async -> Set<String>? {
        let date = now()
        if let cached = groups[group], date.timeIntervalSince(cached.fetched) < lifetime.seconds {
            return cached.members
        }
        guard let answer = try? await api.call("usergroups.users.list", form: [("usergroup", group)]),
            let users = answer.users
        else { return nil }
        let members = Set(users)
        groups[group] = (members, date)
        return members
    }
}
