import Foundation
import NIOCore
import ScopeGateCore
import Synchronization

/// Revokes a client's tokens at Keycloak through its admin REST API, as the admin console's
/// *Revocation → Set to now* does: the client's `notBefore` becomes the current time
/// (`PUT /admin/realms/{realm}/clients/{id}` with `{"notBefore": …}`), after which Keycloak refuses
/// every refresh token, offline token and introspection of a token issued to the client before then.
///
/// ScopeGate authenticates as a confidential client with a service account (client credentials
/// grant at `{url}/realms/{admin_realm}/protocol/openid-connect/token`) whose service account has
/// the `realm-management` role `manage-clients`. The admin token is kept until shortly before it
/// expires; the client's internal id is looked up by its client id (`GET …/clients?clientId=`) once.
final class KeycloakRevocation: IdPTokenRevoker {
    let kind = "keycloak"
    let http: IdPAdminHTTP
    let baseURL: String
    let realm: String
    let adminRealm: String
    let clientID: String
    let clientSecret: String
    let now: @Sendable () -> Date
    private let token = Mutex<(value: String, expires: Date)?>(nil)
    private let internalIDs = Mutex<[String: String]>([:])

    init(
        http: IdPAdminHTTP, baseURL: URL, realm: String, adminRealm: String, clientID: String, clientSecret: String,
        now: @escaping @Sendable () -> Date
    ) {
        self.http = http
        var base = baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.realm = realm
        self.adminRealm = adminRealm
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.now = now
    }

    func revokeTokens(of clientID: String, appID: String) async throws(IdPRevocationFailure) {
        let bearer = try await adminToken()
        let id = try await internalID(of: appID, bearer: bearer)
        let notBefore = Int64(now().timeIntervalSince1970)
        let answer = try await http.send(
            .PUT, "\(baseURL)/admin/realms/\(FormParameters.encode(realm))/clients/\(FormParameters.encode(id))",
            headers: [("Authorization", "Bearer \(bearer)"), ("Content-Type", "application/json")],
            body: ByteBuffer(string: #"{"notBefore":\#(notBefore)}"#))
        switch answer.status.code {
        case 200, 204:
            return
        case 401:
            token.withLock { $0 = nil }
        case 404:
            // Deleted and perhaps created again under a new internal id: look it up next time.
            _ = internalIDs.withLock { $0.removeValue(forKey: appID) }
        default:
            break
        }
        throw IdPAdminHTTP.failure(of: answer, now: now())
    }

    /// The admin API's bearer token, from the cache or a client credentials grant.
    private func adminToken() async throws(IdPRevocationFailure) -> String {
        if let cached = token.withLock({ $0 }), cached.expires > now() { return cached.value }
        let credentials = Data("\(FormParameters.encode(clientID)):\(FormParameters.encode(clientSecret))".utf8).base64EncodedString()
        let answer = try await http.send(
            .POST, "\(baseURL)/realms/\(FormParameters.encode(adminRealm))/protocol/openid-connect/token",
            headers: [
                ("Authorization", "Basic \(credentials)"), ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
            ],
            body: ByteBuffer(string: "grant_type=client_credentials"))
        guard answer.status.code == 200 else {
            // 400/401 here is invalid_client or unauthorized_client: credentials an operator fixes.
            if answer.status.code == 400 || answer.status.code == 401 { throw .transient("admin_token_refused") }
            throw IdPAdminHTTP.failure(of: answer, now: now())
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: answer.body)) as? [String: Any],
            let value = object["access_token"] as? String, !value.isEmpty
        else { throw .transient("admin_token_unreadable") }
        let lifetime = (object["expires_in"] as? NSNumber)?.doubleValue ?? 60
        token.withLock { $0 = (value, now().addingTimeInterval(max(0, lifetime - 10))) }
        return value
    }

    /// The client's internal id (a UUID) in the realm.
    private func internalID(of clientID: String, bearer: String) async throws(IdPRevocationFailure) -> String {
        if let known = internalIDs.withLock({ $0[clientID] }) { return known }
        let answer = try await http.send(
            .GET, "\(baseURL)/admin/realms/\(FormParameters.encode(realm))/clients?clientId=\(FormParameters.encode(clientID))",
            headers: [("Authorization", "Bearer \(bearer)"), ("Accept", "application/json")])
        guard answer.status.code == 200 else {
            if answer.status.code == 401 { token.withLock { $0 = nil } }
            throw IdPAdminHTTP.failure(of: answer, now: now())
        }
        guard let list = try? JSONSerialization.jsonObject(with: Data(buffer: answer.body)) as? [[String: Any]] else {
            throw .transient("client_list_unreadable")
        }
        // The search is exact by default; a match is checked all the same.
        guard let id = list.first(where: { $0["clientId"] as? String == clientID })?["id"] as? String, !id.isEmpty else {
            throw .permanent("client_not_found")
        }
        internalIDs.withLock { $0[clientID] = id }
        return id
    }
}

/// Revokes a client's tokens at Okta through its management API: `DELETE /api/v1/apps/{appId}/tokens`
/// revokes every OAuth 2.0 refresh token issued to the application, with an API token
/// (`Authorization: SSWS …`). Okta names applications by an app id, which for OIDC apps is usually
/// the client id (`clients[].idp_app_id` where it differs). Rate limits answer 429 with
/// `X-Rate-Limit-Reset`, the epoch second when calls may resume.
struct OktaRevocation: IdPTokenRevoker {
    let kind = "okta"
    let http: IdPAdminHTTP
    let baseURL: String
    let apiToken: String
    let now: @Sendable () -> Date

    init(http: IdPAdminHTTP, baseURL: URL, apiToken: String, now: @escaping @Sendable () -> Date) {
        self.http = http
        var base = baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.apiToken = apiToken
        self.now = now
    }

    func revokeTokens(of clientID: String, appID: String) async throws(IdPRevocationFailure) {
        let answer = try await http.send(
            .DELETE, "\(baseURL)/api/v1/apps/\(FormParameters.encode(appID))/tokens",
            headers: [("Authorization", "SSWS \(apiToken)"), ("Accept", "application/json")])
        switch answer.status.code {
        case 200, 204: return
        case 404: throw .permanent("app_not_found")
        default: throw IdPAdminHTTP.failure(of: answer, now: now())
        }
    }
}
