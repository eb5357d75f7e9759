import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import ScopeGateCore
import _CryptoExtras

/// A key the Bot Connector signs with, and the channels it is endorsed for.
struct BotSigningKey: Sendable {
    let publicKey: _RSA.Signing.PublicKey
    /// The channels (`msteams`, …) the key may sign for; `nil` when the key names none.
    let endorsements: [String]?
}

/// Where the validator finds a key by its `kid`.
protocol BotSigningKeySource: Sendable {
    func key(id: String) async -> BotSigningKey?
}

/// The Bot Connector's signing keys, from the `jwks_uri` of its OpenID metadata document: cached for a
/// day, fetched again when a token names a key not in the cache (at most once every ten seconds, so
/// that forged `kid`s cannot turn ScopeGate into a load on Microsoft's endpoints). What cannot be
/// fetched authenticates nothing.
actor BotConnectorKeys: BotSigningKeySource {
    let client: HTTPClient
    let metadataURL: URL
    let now: @Sendable () -> Date
    private var keys: [String: BotSigningKey] = [:]
    private var fetchedAt = Date.distantPast
    private var lastAttempt = Date.distantPast

    init(client: HTTPClient, metadataURL: URL, now: @escaping @Sendable () -> Date = { Date() }) {
        self.client = client
        self.metadataURL = metadataURL
        self.now = now
    }

    func key(id: String) async -> BotSigningKey? {
        let date = now()
        let stale = date.timeIntervalSince(fetchedAt) > 86_400
        if (stale || keys[id] == nil), date.timeIntervalSince(lastAttempt) >= 10 {
            lastAttempt = date
            if let fetched = await fetch() {
                keys = fetched
                fetchedAt = date
            }
        }
        return keys[id]
    }

    private struct Metadata: Decodable { var jwks_uri: String }
    private struct KeySet: Decodable {
        struct Key: Decodable {
            var kty: String
            var kid: String?
            var use: String?
            var n: String?
            var e: String?
            var endorsements: [String]?
        }
        var keys: [Key]
    }

    private func fetch() async -> [String: BotSigningKey]? {
        guard let metadata = await get(metadataURL.absoluteString, as: Metadata.self),
            let jwksURL = URL(string: metadata.jwks_uri), jwksURL.scheme == "https" || jwksURL.scheme == "http",
            let set = await get(jwksURL.absoluteString, as: KeySet.self)
        else { return nil }
        var keys: [String: BotSigningKey] = [:]
        for key in set.keys where key.kty == "RSA" && (key.use == nil || key.use == "sig") {
            guard let kid = key.kid, let n = key.n.flatMap(Base64URL.decode), let e = key.e.flatMap(Base64URL.decode),
                let publicKey = try? _RSA.Signing.PublicKey(n: n, e: e)
            else { continue }
            keys[kid] = BotSigningKey(publicKey: publicKey, endorsements: key.endorsements)
        }
        return keys
    }

    private func get<T: Decodable>(_ url: String, as type: T.Type) async -> T? {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        guard let response = try? await client.execute(request, timeout: .seconds(10)), response.status == .ok,
            let body = try? await response.body.collect(upTo: 1 << 20)
        else { return nil }
        return try? JSONDecoder().decode(T.self, from: Data(buffer: body))
    }
}

/// Checks the bearer token the Bot Connector sends with every activity, as the Bot Framework's
/// "Authentication with the Bot Connector API" specifies: a JWT signed with RS256 by a key from the
/// OpenID metadata's JWKS (endorsed for the activity's channel), issued by `https://api.botframework.com`
/// for the bot's app id, within its lifetime (five minutes of clock skew), and whose `serviceurl`
/// claim is the activity's `serviceUrl`. Anything else is refused, and says why only in the log.
struct BotConnectorTokenValidator: Sendable {
    /// Why a token was refused.
    enum Refusal: Error, Equatable {
        case missingHeader
        case malformed
        case algorithm(String)
        case unknownKey
        case notEndorsed
        case badSignature
        case issuer
        case audience
        case expired
        case notYetValid
        case serviceURL
    }

    let keys: any BotSigningKeySource
    let appID: String
    let issuer: String
    let skew: TimeInterval = 300

    private struct Header: Decodable {
        var alg: String
        var kid: String?
    }

    private struct Claims: Decodable {
        var iss: String?
        var aud: JWTAudience?
        var exp: Double?
        var nbf: Double?
        var serviceurl: String?
    }

    /// Checks `authorization` (the whole header value) for an activity from `serviceURL` on `channelID`.
    func validate(authorization: String?, serviceURL: String?, channelID: String?, now: Date) async throws(Refusal) {
        guard let authorization, authorization.hasPrefix("Bearer "), authorization.count > 7 else { throw .missingHeader }
        guard let token = JWTParts(authorization.dropFirst(7)),
            let header = try? JSONDecoder().decode(Header.self, from: token.header),
            let claims = try? JSONDecoder().decode(Claims.self, from: token.claims)
        else { throw .malformed }
        // RS256 only: `none`, HS256 keyed with the public key and every other algorithm are refused
        // before any key is looked at.
        guard header.alg == "RS256" else { throw .algorithm(header.alg) }
        guard let kid = header.kid, let key = await keys.key(id: kid) else { throw .unknownKey }
        if let endorsements = key.endorsements {
            guard let channelID, endorsements.contains(channelID) else { throw .notEndorsed }
        }
        guard key.publicKey.isValidSignature(
            _RSA.Signing.RSASignature(rawRepresentation: token.signature), for: token.signingInput, padding: .insecurePKCS1v1_5)
        else { throw .badSignature }
        guard claims.iss == issuer else { throw .issuer }
        guard let audience = claims.aud?.values, audience.contains(appID) else { throw .audience }
        let seconds = now.timeIntervalSince1970
        guard let exp = claims.exp, seconds < exp + skew else { throw .expired }
        if let nbf = claims.nbf, seconds + skew < nbf { throw .notYetValid }
        guard let claimed = claims.serviceurl, let serviceURL, Self.sameServiceURL(claimed, serviceURL) else {
            throw .serviceURL
        }
    }

    /// Service URLs compared as the Bot Framework SDKs do: exactly, but for one trailing slash.
    static func sameServiceURL(_ a: String, _ b: String) -> Bool {
        func trimmed(_ text: String) -> Substring { text.hasSuffix("/") ? text.dropLast() : Substring(text) }
        return trimmed(a) == trimmed(b)
    }
}
