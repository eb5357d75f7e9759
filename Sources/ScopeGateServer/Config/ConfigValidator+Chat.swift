import Foundation
import ScopeGateCore

/// The chat platforms (Slack, Microsoft Teams) and the routes that reach approvers on them.
extension ConfigValidator {
    /// The chat platforms configured, by their names in routes and the outbox.
    var chatPlatforms: [String] {
        (file.slack != nil ? ["slack"] : []) + (file.teams != nil ? ["teams"] : [])
    }

    /// Slack's settings, when the file has a slack section.
    func slack() throws(GateError) -> ScopeGateConfiguration.SlackSettings? {
        guard let slack = file.slack else { return nil }
        guard let team = slack.team_id, Self.isSlackID(team, prefixes: "TE") else {
            throw fail("slack.team_id", "must be the workspace's team id (T…)")
        }
        guard let botToken = try secret(env: slack.bot_token_env, file: slack.bot_token_file, key: "slack.bot_token") else {
            throw fail("slack.bot_token_env", "or slack.bot_token_file is required")
        }
        var signingSecret: String?
        var appToken: String?
        if slack.socket_mode == true {
            guard let token = try secret(env: slack.app_token_env, file: slack.app_token_file, key: "slack.app_token") else {
                throw fail("slack.app_token_env", "or slack.app_token_file is required with socket_mode")
            }
            guard token.hasPrefix("xapp-") else {
                throw fail(slack.app_token_env != nil ? "slack.app_token_env" : "slack.app_token_file", "must give an app-level token (xapp-…)")
            }
            appToken = token
        } else {
            signingSecret = try secret(
                env: slack.signing_secret_env, file: slack.signing_secret_file, key: "slack.signing_secret")
            guard signingSecret != nil else {
                throw fail("slack.signing_secret_env", "or slack.signing_secret_file is required (or socket_mode: true)")
            }
        }
        return .init(
            teamID: team, botToken: botToken, signingSecret: signingSecret, appToken: appToken,
            apiURL: try httpURL(slack.api_url ?? "https://slack.com/api", key: "slack.api_url"),
            groupCacheLifetime: try duration(slack.group_cache ?? "5m", key: "slack.group_cache"))
    }

    /// Microsoft Teams' settings, when the file has a teams section: the bot, when a route posts
    /// through one (or `app_id` is given), and the Workflows webhooks of the routes that use them.
    func teams() throws(GateError) -> ScopeGateConfiguration.TeamsSettings? {
        guard let teams = file.teams else { return nil }
        var webhooks: [String: URL] = [:]
        var botNeeded = teams.app_id != nil
        for (index, route) in (file.routes ?? []).enumerated() {
            guard let reach = route.teams else { continue }
            let key = "routes[\(index)].teams"
            guard let url = try secret(env: reach.webhook_env, file: reach.webhook_file, key: "\(key).webhook") else {
                botNeeded = true
                continue
            }
            if url == Self.missingSecret { webhooks[route.name] = URL(string: "https://invalid.example/")!; continue }
            guard let parsed = URL(string: url), parsed.scheme?.lowercased() == "https" || parsed.host == "127.0.0.1",
                parsed.host != nil
            else {
                throw fail(reach.webhook_env != nil ? "\(key).webhook_env" : "\(key).webhook_file", "must give the Workflows webhook's https URL")
            }
            webhooks[route.name] = parsed
        }
        return .init(bot: botNeeded ? try teamsBot(teams) : nil, webhooks: webhooks)
    }

    private func teamsBot(_ teams: ConfigFile.Teams) throws(GateError) -> ScopeGateConfiguration.TeamsBot {
        guard let appID = teams.app_id, Self.isGUID(appID) else {
            throw fail("teams.app_id", "must be the bot's Microsoft App ID (a GUID)")
        }
        guard let tenant = teams.tenant_id, Self.isGUID(tenant) else {
            throw fail("teams.tenant_id", "must be your organisation's Microsoft Entra tenant id (a GUID): approvers come from it")
        }
        guard let password = try secret(env: teams.app_password_env, file: teams.app_password_file, key: "teams.app_password")
        else {
            throw fail("teams.app_password_env", "or teams.app_password_file is required (the bot's client secret)")
        }
        guard let service = teams.service_url else {
            throw fail("teams.service_url", "is required: the Bot Connector's URL for your cloud (https://smba.trafficmanager.net/teams/)")
        }
        let serviceURL = try httpURL(service, key: "teams.service_url")
        let authority = try httpURL(teams.authority ?? "https://login.microsoftonline.com", key: "teams.authority")
        // A single-tenant bot gets its tokens from its own tenant; a multi-tenant one from Bot
        // Framework's tenant, as Microsoft's Bot Framework documents.
        let tokenTenant = teams.multi_tenant == true ? "botframework.com" : tenant
        let tokenURL = authority.appendingPathComponent(tokenTenant).appendingPathComponent("oauth2/v2.0/token")
        return .init(
            appID: appID, appPassword: password, tenantID: tenant.lowercased(), tokenURL: tokenURL, serviceURL: serviceURL,
            openIDMetadataURL: try httpURL(
                teams.openid_metadata ?? "https://login.botframework.com/v1/.well-known/openidconfiguration",
                key: "teams.openid_metadata"),
            issuer: teams.issuer ?? "https://api.botframework.com")
    }

    /// ScopeGate's registration at the IdP for approvers' sign-in; required when a route has an
    /// approval page. Its scopes must pass the policy without a hold, or no approver could sign in.
    func signIn(policy: Policy) throws(GateError) -> ScopeGateConfiguration.SignInSettings? {
        let pages = (file.routes ?? []).contains { $0.approval_page != nil }
        guard let signIn = file.sign_in else {
            if pages { throw fail("sign_in", "is required: approvers sign in at the IdP to use the approval page") }
            if policy.identifyRequesters {
                throw fail("sign_in", "is required with approvals.identify_requesters: requesters sign in at the IdP through it")
            }
            return nil
        }
        guard let clientID = signIn.client_id, ClientID.isValid(clientID) else {
            throw fail("sign_in.client_id", "must be the client id ScopeGate is registered under at the IdP")
        }
        guard let secret = try secret(env: signIn.client_secret_env, file: signIn.client_secret_file, key: "sign_in.client_secret")
        else {
            throw fail("sign_in.client_secret_env", "or sign_in.client_secret_file is required")
        }
        let scopes: ScopeSet
        do {
            scopes = try ScopeSet(parsing: (signIn.scopes ?? ["openid"]).joined(separator: " "))
        } catch {
            throw fail("sign_in.scopes", "holds a token that is not a valid scope")
        }
        guard scopes.contains("openid") else { throw fail("sign_in.scopes", "must include openid") }
        guard case .allow = policy.evaluate(scopes: scopes, clientID: clientID, granted: []) else {
            throw fail(
                "sign_in.scopes",
                "must be approved by the policy for \(clientID) (auto: approve), or approvers could not sign in to decide")
        }
        let groupsClaim = signIn.groups_claim ?? "groups"
        guard !groupsClaim.isEmpty, groupsClaim.utf8.count <= 256 else { throw fail("sign_in.groups_claim", "must name an ID token claim") }
        if policy.identifyRequesters, !scopes.contains("email"), !scopes.contains("profile") {
            warnings.list.append(
                "sign_in.scopes has no email scope: requesters are named by subject only, and chat approvers (known by email) cannot be told apart from them, so their approvals are refused")
        }
        return .init(clientID: clientID, clientSecret: secret, scopes: scopes, groupsClaim: groupsClaim)
    }

    /// Tiers whose approval asks the approver to confirm (critical, unless the tiers say otherwise).
    func confirmTiers() -> Set<String> {
        Set((file.tiers ?? Self.defaultTiers).filter { $0.confirm_approval ?? ($0.name == "critical") }.map(\.name))
    }

    /// The routes. Every route reaches approvers on at least one configured platform and names at
    /// least one approver there, and a default route is required, so that every scope set reaches
    /// someone who may decide it.
    func routing(policy: Policy) throws(GateError) -> Routing? {
        guard !chatPlatforms.isEmpty else {
            if file.routes != nil || file.default_route != nil {
                throw fail("routes", "need a slack or teams section to deliver to")
            }
            if file.sign_in != nil { throw fail("sign_in", "is used by routes' approval pages, and there are no routes") }
            return nil
        }
        guard let entries = file.routes, !entries.isEmpty else {
            throw fail("routes", "are required with \(chatPlatforms.joined(separator: " and "))")
        }
        var routes: [Route] = []
        for (index, entry) in entries.enumerated() {
            routes.append(try route(entry, key: "routes[\(index)]", policy: policy, known: routes.map(\.name)))
        }
        guard let defaultName = file.default_route else {
            throw fail("default_route", "is required: it receives every request no route matches")
        }
        guard let defaultRoute = routes.first(where: { $0.name == defaultName }) else {
            throw fail("default_route", "names the route '\(defaultName)', which routes does not define")
        }
        // A tier that needs a fresh sign-in is decided on the approval page only: every route its
        // requests can take (matching it, the default, its escalation) must have one.
        for (index, tier) in (file.tiers ?? []).enumerated() where tier.step_up != nil {
            let reachable = routes.filter { $0.tiers.isEmpty || $0.tiers.contains(tier.name) } + [defaultRoute]
                + routes.filter { $0.name == tier.escalate_to }
            if let route = reachable.first(where: { $0.reach(on: ChatReach.approvalPage) == nil }) {
                throw fail(
                    "tiers[\(index)].step_up",
                    "needs an approval_page on every route its requests can take, and route \(route.name) has none: its approvers confirm there with a fresh sign-in")
            }
        }
        // A quorum no route's named approvers can reach leaves its requests to expire: said, not refused,
        // as a group's members are only known at run time.
        let largest = policy.tiers.values.max { $0.quorum < $1.quorum }
        if let largest, largest.quorum > 1 {
            for route in routes {
                let reaches = route.reaches.values
                guard reaches.allSatisfy({ $0.approverGroups.isEmpty }) else { continue }
                let named = Set(reaches.flatMap(\.approverUsers)).count
                if named < largest.quorum {
                    warnings.list.append(
                        "route \(route.name) names \(named) approver(s), fewer than the quorum of \(largest.quorum) that tier \(largest.name) needs: its requests of that tier could only expire")
                }
            }
        }
        return Routing(routes: routes, defaultRoute: defaultRoute)
    }

    func route(_ entry: ConfigFile.Route, key: String, policy: Policy, known: [String]) throws(GateError) -> Route {
        guard !entry.name.isEmpty, !known.contains(entry.name) else {
            throw fail("\(key).name", "is empty or repeats another route's name")
        }
        var reaches: [String: ChatReach] = [:]
        if entry.channel != nil || entry.approvers != nil || entry.dm != nil {
            guard file.slack != nil else {
                throw fail("\(key).channel", "is a Slack channel, but there is no slack section")
            }
            reaches["slack"] = try slackReach(entry, key: key)
        }
        if let teams = entry.teams {
            guard file.teams != nil else { throw fail("\(key).teams", "needs the teams section") }
            reaches["teams"] = try teamsReach(teams, route: entry.name, key: "\(key).teams")
        }
        if let page = entry.approval_page {
            reaches[ChatReach.approvalPage] = try pageReach(page, key: "\(key).approval_page")
        } else if entry.teams.map({ $0.webhook_env != nil || $0.webhook_file != nil }) == true {
            throw fail(
                "\(key).approval_page",
                "is required with a Workflows webhook: its cards link to the approval page, where these approvers decide")
        }
        guard !reaches.isEmpty else {
            throw fail(
                "\(key).channel",
                "is missing: a route reaches approvers in Slack (channel, approvers), in Teams (teams) or on the approval page (approval_page)")
        }
        var patterns: [GlobPattern] = []
        for (index, pattern) in (entry.match?.scopes ?? []).enumerated() {
            guard !pattern.isEmpty,
                pattern.utf8.allSatisfy({ ScopeSet.isScopeTokenByte($0) || $0 == UInt8(ascii: "*") })
            else {
                throw fail("\(key).match.scopes[\(index)]", "must be a scope token, optionally with '*' or '?' wildcards")
            }
            patterns.append(GlobPattern(pattern))
        }
        for (index, tier) in (entry.match?.tiers ?? []).enumerated() where policy.tiers[tier] == nil {
            throw fail("\(key).match.tiers[\(index)]", "names the undefined tier '\(tier)'")
        }
        for (index, client) in (entry.match?.clients ?? []).enumerated() where policy.clients[client] == nil {
            throw fail("\(key).match.clients[\(index)]", "names the unknown client '\(client)'")
        }
        return Route(
            name: entry.name, scopePatterns: patterns, tiers: Set(entry.match?.tiers ?? []),
            clients: Set(entry.match?.clients ?? []), reaches: reaches)
    }

    private func slackReach(_ entry: ConfigFile.Route, key: String) throws(GateError) -> ChatReach {
        guard let channel = entry.channel, Self.isSlackID(channel, prefixes: "CGDU") else {
            throw fail("\(key).channel", "must be a Slack channel id (C…, G…) or a user id for direct messages")
        }
        let users = entry.approvers?.users ?? []
        let groups = entry.approvers?.groups ?? []
        guard !users.isEmpty || !groups.isEmpty else {
            throw fail("\(key).approvers", "must name at least one user or group: nobody could decide this route's requests")
        }
        for (index, user) in users.enumerated() where !Self.isSlackID(user, prefixes: "UW") {
            throw fail("\(key).approvers.users[\(index)]", "must be a Slack user id (U… or W…), not a name")
        }
        for (index, group) in groups.enumerated() where !Self.isSlackID(group, prefixes: "S") {
            throw fail("\(key).approvers.groups[\(index)]", "must be a Slack user-group id (S…)")
        }
        return ChatReach(channel: channel, directMessages: entry.dm ?? false, approverUsers: users, approverGroups: groups)
    }

    private func teamsReach(_ entry: ConfigFile.Route.Teams, route: String, key: String) throws(GateError) -> ChatReach {
        if entry.webhook_env != nil || entry.webhook_file != nil {
            guard entry.channel == nil, entry.approvers == nil else {
                throw fail(
                    "\(key).webhook_env",
                    "and a bot channel exclude each other: with a webhook, approvers decide on the approval page (approval_page.approvers)")
            }
            return ChatReach(channel: ChatReach.workflowPrefix + route, approverUsers: [])
        }
        guard let channel = entry.channel, Self.isTeamsConversation(channel) else {
            throw fail("\(key).channel", "must be a Teams channel id (19:…@thread.tacv2, 19:…@thread.skype) or group chat id (19:…@thread.v2)")
        }
        if entry.approvers?.groups != nil {
            throw fail("\(key).approvers.groups", "is not supported in Teams yet: list the approvers' object ids under users")
        }
        let users = entry.approvers?.users ?? []
        guard !users.isEmpty else {
            throw fail("\(key).approvers.users", "must name at least one approver: nobody could decide this route's requests")
        }
        for (index, user) in users.enumerated() where !Self.isGUID(user) {
            throw fail("\(key).approvers.users[\(index)]", "must be a Microsoft Entra object id (a GUID), not a name or an email")
        }
        return ChatReach(channel: channel, approverUsers: users.map { $0.lowercased() })
    }

    private func pageReach(_ entry: ConfigFile.Route.ApprovalPage, key: String) throws(GateError) -> ChatReach {
        if entry.approvers?.groups != nil {
            throw fail("\(key).approvers.groups", "is not supported: list the approvers under users")
        }
        let users = entry.approvers?.users ?? []
        guard !users.isEmpty else {
            throw fail("\(key).approvers.users", "must name at least one approver: nobody could decide this route's requests")
        }
        for (index, user) in users.enumerated()
        where user.isEmpty || user.count > 256 || !user.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) {
            throw fail("\(key).approvers.users[\(index)]", "must be an email address or the IdP's subject (sub) of an approver")
        }
        return ChatReach(channel: "", approverUsers: users.map { $0.contains("@") ? $0.lowercased() : $0 })
    }

    /// A GUID as Microsoft writes them (`8-4-4-4-12` hexadecimal digits).
    static func isGUID(_ text: String) -> Bool {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        return groups.map(\.count) == [8, 4, 4, 4, 12] && groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }

    /// A Teams channel's conversation id (`19:<id>@thread.tacv2`, older teams `@thread.skype`) or a group
    /// chat's (`19:<id>@thread.v2`).
    static func isTeamsConversation(_ text: String) -> Bool {
        guard text.hasPrefix("19:"), ["@thread.tacv2", "@thread.skype", "@thread.v2"].contains(where: text.hasSuffix), text.count < 200
        else { return false }
        return text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: ";") }
    }
}
