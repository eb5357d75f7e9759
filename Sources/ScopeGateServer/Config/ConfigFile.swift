/// The YAML configuration file as the operator writes it (snake_case keys, documented one by one in
/// `proxy-config/README.md`). `ScopeGateConfiguration` is the validated form the server uses.
struct ConfigFile: Codable {
    struct Listen: Codable {
        var `public`: String?
        var admin: String?
        var idle_timeout: String?
    }

    struct Upstream: Codable {
        var url: String?
        var host_header: String?
        var discovery_path: String?
        var authorization_endpoint: String?
        var token_endpoint: String?
        var device_authorization_endpoint: String?
        var expose: [String]?
        var block_unhandled_endpoints: Bool?
        var connect_timeout: String?
        var response_timeout: String?
        var trusted_proxies: [String]?
    }

    struct TLS: Codable {
        var certificate: String
        var key: String
        var http2: Bool?
    }

    struct Store: Codable {
        var path: String?
        var postgres_url_env: String?
        var postgres_url_file: String?
    }

    struct Admin: Codable {
        var token_env: String?
        var token_file: String?
        var token_name: String?
    }

    struct Metrics: Codable {
        var token_env: String?
        var token_file: String?
    }

    struct Approvals: Codable {
        var timeout: String?
        var default_tier: String?
        var new_holds_per_minute: HoldRates?
        var identify_requesters: Bool?
    }

    struct HoldRates: Codable {
        var per_source: Int?
        var per_client: Int?
        var total: Int?
    }

    struct Tier: Codable {
        var name: String
        var grant_lifetime: String?
        var confirm_approval: Bool?
        var quorum: Int?
        var deny_quorum: Int?
        var escalate_after: String?
        var escalate_to: String?
        var approvals: [String]?
        var grant_durations: [String]?
        var remind_after: String?
        var step_up: StepUp?

        struct StepUp: Codable {
            var max_age: String?
            var acr_values: [String]?
        }
    }

    struct Slack: Codable {
        var team_id: String?
        var bot_token_env: String?
        var bot_token_file: String?
        var signing_secret_env: String?
        var signing_secret_file: String?
        var api_url: String?
        var group_cache: String?
        var socket_mode: Bool?
        var app_token_env: String?
        var app_token_file: String?
    }

    struct Route: Codable {
        struct Match: Codable {
            var scopes: [String]?
            var tiers: [String]?
            var clients: [String]?
        }

        struct Approvers: Codable {
            var users: [String]?
            var groups: [String]?
        }

        /// A route's reach in Microsoft Teams: a channel the bot posts to, or a Workflows webhook.
        struct Teams: Codable {
            var channel: String?
            var approvers: Approvers?
            var webhook_env: String?
            var webhook_file: String?
        }

        /// Who may decide the route's requests on ScopeGate's approval page, signed in at the IdP.
        struct ApprovalPage: Codable {
            var approvers: Approvers?
        }

        var name: String
        var match: Match?
        /// The route's Slack reach: channel, direct messages and approvers.
        var channel: String?
        var dm: Bool?
        var approvers: Approvers?
        var teams: Teams?
        var approval_page: ApprovalPage?
    }

    struct Automation: Codable {
        var name: String
        var decide: String
        var clients: [String]?
        var tiers: [String]?
        var scopes: [String]?
        var requester_groups: [String]?
        var client_registration: [String]?
        var client_min_age: String?
        var client_max_age: String?
    }

    struct Shadow: Codable {
        var all: Bool?
        var clients: [String]?
    }

    struct SignIn: Codable {
        var client_id: String?
        var client_secret_env: String?
        var client_secret_file: String?
        var scopes: [String]?
        var groups_claim: String?
    }

    struct Teams: Codable {
        var app_id: String?
        var app_password_env: String?
        var app_password_file: String?
        var tenant_id: String?
        var multi_tenant: Bool?
        var service_url: String?
        var authority: String?
        var openid_metadata: String?
        var issuer: String?
    }

    struct Rule: Codable {
        var pattern: String
        var kind: String?
        var auto: String?
        var tier: String?
        var description: String?
    }

    struct OwnerNotify: Codable {
        var slack: String?
        var teams: String?
    }

    struct Client: Codable {
        var id: String
        var name: String?
        var owner: String?
        var owner_notify: OwnerNotify?
        var redirect_uris: [String]?
        var default_scopes: [String]?
        var scopes: [Rule]?
        var idp_app_id: String?
        var registration: String?
        var registered: String?
    }

    /// Where a revocation also revokes the client's tokens at the IdP.
    struct IdPRevocation: Codable {
        var kind: String
        var url: String?
        var realm: String?
        var admin_realm: String?
        var client_id: String?
        var client_secret_env: String?
        var client_secret_file: String?
        var api_token_env: String?
        var api_token_file: String?
        var on_expiry: Bool?
    }

    var public_url: String?
    var listen: Listen?
    var upstream: Upstream?
    var tls: TLS?
    var store: Store?
    var admin: Admin?
    var metrics: Metrics?
    var approvals: Approvals?
    var tiers: [Tier]?
    var scopes: [Rule]?
    var clients: [Client]?
    struct Audit: Codable {
        var keys: String?
        var checkpoint_every: Int?
        var checkpoint_interval: String?
        var checkpoint_file: String?
        var checkpoint_webhook: String?
        var checkpoint_slack_channel: String?
    }

    var audit: Audit?
    var idp_revocation: IdPRevocation?
    var slack: Slack?
    var teams: Teams?
    var sign_in: SignIn?
    var automation: [Automation]?
    var shadow: Shadow?
    var routes: [Route]?
    var default_route: String?
}
