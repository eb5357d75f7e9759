import Foundation
import Logging
import ScopeGateCore

/// Decides whether a Slack user may decide a request on a route: by user id, or by membership of an
/// approver user group (`usergroups.users.list`), and only while the account is active and a full
/// member of the configured workspace (`users.info`: not deactivated, not a guest, not a bot). Both
/// lookups are cached for a bounded time. What cannot be read authorizes nobody.
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
    private var accounts: [String: (active: Bool, email: String?, fetched: Date)] = [:]

    init(api: SlackAPI, teamID: String, lifetime: Duration = .seconds(300), now: @escaping @Sendable () -> Date) {
        self.api = api
        self.teamID = teamID
        self.lifetime = lifetime
        self.now = now
    }

    /// The verdict on `user` of `team` for any of several routes' Slack reaches (a request's own route
    /// and the one it was escalated to): an approver of one is an approver.
    func verdict(user: String, team: String?, reaches: [ChatReach?]) async -> Verdict {
        var verdicts: [Verdict] = []
        for reach in reaches {
            let verdict = await verdict(user: user, team: team, reach: reach)
            if verdict == .approver { return .approver }
            verdicts.append(verdict)
        }
        return verdicts.contains(.cannotCheck) ? .cannotCheck : .notAnApprover
    }

    /// The verdict on `user` of `team` for a route's Slack reach; a route that does not reach Slack
    /// has no Slack approvers.
    func verdict(user: String, team: String?, reach: ChatReach?) async -> Verdict {
        guard team == teamID, let reach else { return .notAnApprover }
        var named = reach.approverUsers.contains(user)
        var unreadable = false
        for group in reach.approverGroups where !named {
            guard let members = await members(of: group) else {
                unreadable = true
                continue
            }
            named = members.contains(user)
        }
        guard named else { return unreadable ? .cannotCheck : .notAnApprover }
        switch await isActiveMember(user) {
        case true?: return .approver
        case false?: return .notAnApprover
        case nil: return .cannotCheck
        }
    }

    /// Whether the account is an active, full member of the workspace; `nil` when Slack cannot tell.
    private func isActiveMember(_ user: String) async -> Bool? {
        let date = now()
        if let cached = accounts[user], date.timeIntervalSince(cached.fetched) < lifetime.seconds { return cached.active }
        guard let answer = try? await api.call("users.info", form: [("user", user)]), let account = answer.user else {
            return nil
        }
        let active = account.id == user && account.team_id == teamID && account.deleted != true && account.is_bot != true
            && account.is_restricted != true && account.is_ultra_restricted != true
        let email = account.is_email_confirmed == false ? nil : account.profile?.email.flatMap { $0.contains("@") ? $0.lowercased() : nil }
        accounts[user] = (active, email, date)
        return active
    }

    /// The confirmed email address of a user found active (`users.info`, with `users:read.email`), for
    /// separation of duties; `nil` when Slack does not say.
    func verifiedEmail(of user: String) async -> String? {
        guard await isActiveMember(user) == true else { return nil }
        return accounts[user]?.email
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
