/// The YAML configuration file as the operator writes it (snake_case keys, documented one by one in
/// `proxy-config/README.md`). `ScopeGateConfiguration` is the validated form the server uses.
struct ConfigFile: Decodable {
    struct Listen: Decodable {
        var `public`: String?
        var admin: String?
        var idle_timeout: String?
    }

    struct Upstream: Decodable {
        var url: String?
        var host_header: String?
        var discovery_path: String?
        var authorization_endpoint: String?
        var connect_timeout: String?
        var response_timeout: String?
        var trusted_proxies: [String]?
    }

    struct TLS: Decodable {
        var certificate: String
        var key: String
    }

    struct Store: Decodable {
        var path: String?
    }

    struct Admin: Decodable {
        var token_env: String?
        var token_file: String?
        var token_name: String?
    }

    struct Approvals: Decodable {
        var timeout: String?
        var default_tier: String?
    }

    struct Tier: Decodable {
        var name: String
        var grant_lifetime: String?
    }

    struct Rule: Decodable {
        var pattern: String
        var auto: String?
        var tier: String?
        var description: String?
    }

    struct Client: Decodable {
        var id: String
        var name: String?
        var owner: String?
        var redirect_uris: [String]?
        var default_scopes: [String]?
        var scopes: [Rule]?
    }

    var public_url: String?
    var listen: Listen?
    var upstream: Upstream?
    var tls: TLS?
    var store: Store?
    var admin: Admin?
    var approvals: Approvals?
    var tiers: [Tier]?
    var scopes: [Rule]?
    var clients: [Client]?
}
