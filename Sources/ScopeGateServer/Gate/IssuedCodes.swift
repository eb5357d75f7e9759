import Foundation
import Logging
import ScopeGateCore
import ScopeGateStore
import Synchronization

/// Authorization codes the IdP issued in answer to authorization requests ScopeGate admitted, each
/// with what its request asked for.
///
/// A token response may omit `scope` when it grants what was requested (RFC 6749 §5.1); for the
/// authorization code grant that is the scope of the authorization request, which the client's token
/// request does not show and could misstate. ScopeGate relays the IdP's redirect that carries the
/// code, so it notes the code (as a SHA-256, never the code itself) with the permissions the gate
/// admitted; the second gate reads them from here, and withholds a token whose code it never saw.
final class IssuedCodes: Sendable {
    /// What an admitted authorization request asked for.
    struct Authorization: Sendable, Equatable, Codable {
        var clientID: String
        /// What the request asked for, as the gate admitted it.
        var permissions: ScopeSet
        /// What approvers approved once for this very authorization: its code's token may carry it.
        var approvedOnce = ScopeSet([String]())
        /// The held request approved once that this authorization continues: its code spends the release.
        var onceHoldID: String?
        /// The request's `redirect_uri`, when it named one: only a redirect there carries its code.
        var redirectURI: String?

        init(
            clientID: String, permissions: ScopeSet, approvedOnce: ScopeSet = ScopeSet([String]()), onceHoldID: String? = nil,
            redirectURI: String? = nil
        ) {
            self.clientID = clientID
            self.permissions = permissions
            self.approvedOnce = approvedOnce
            self.onceHoldID = onceHoldID
            self.redirectURI = redirectURI
        }

        private enum CodingKeys: String, CodingKey {
            case clientID = "client_id", permissions, approvedOnce = "approved_once", onceHoldID = "once_hold_id"
            case redirectURI = "redirect_uri"
        }

        /// Whether `location`, an answer to the request, is a redirect to the client that may carry its code.
        func isRedirectToClient(_ location: String) -> Bool {
            guard let redirectURI else { return true }
            guard location.hasPrefix(redirectURI) else { return false }
            let rest = location.dropFirst(redirectURI.count)
            return rest.isEmpty || rest.first == "?" || rest.first == "#" || redirectURI.contains("?") && rest.first == "&"
        }
    }

    /// How long a code is remembered: longer than any IdP lets a code live.
    static let lifetime: Duration = .seconds(600)
    /// The most codes remembered; past that the oldest are dropped (a dropped code's token is withheld).
    static let capacity = 100_000

    private let codes = Mutex<[String: (authorization: Authorization, expires: ContinuousClock.Instant)]>([:])
    /// Where replicas share the codes they relayed (PostgreSQL), so that a code relayed by one is known
    /// at the token endpoint of every other; `nil` for one process.
    let shared: (any SharedStateStore)?
    let logger: Logger?

    init(shared: (any SharedStateStore)? = nil, logger: Logger? = nil) {
        self.shared = shared
        self.logger = logger
    }

    /// Notes that `code` answered a request that asked for `authorization`.
    func record(_ code: Substring, _ authorization: Authorization, now: ContinuousClock.Instant = .now) {
        let key = Self.key(code)
        codes.withLock { codes in
            if codes.count >= Self.capacity {
                codes = codes.filter { $0.value.expires > now }
                if codes.count >= Self.capacity {
                    let oldest = codes.sorted { $0.value.expires < $1.value.expires }.prefix(Self.capacity / 10).map(\.key)
                    for key in oldest { codes[key] = nil }
                }
            }
            codes[key] = (authorization, now + Self.lifetime)
        }
        guard let shared, let json = try? JSONEncoder().encode(authorization) else { return }
        // The event loop relaying the IdP's redirect does not wait for the database; the token
        // endpoint of another replica waits for it a little (`sharedAuthorization`).
        let expires = Date().addingTimeInterval(Double(Self.lifetime.components.seconds))
        let logger = self.logger
        Task {
            do {
                try await shared.putShared(kind: "code", keyHash: key, value: String(decoding: json, as: UTF8.self), expiresAt: expires)
            } catch {
                logger?.error("a relayed code could not be shared with the other replicas", metadata: ["sg.error": "\(type(of: error))"])
            }
        }
    }

    /// How long the token endpoint waits for a code another replica relayed a moment ago to reach the
    /// shared store.
    static let sharingDelay: Duration = .seconds(2)

    /// What the request that `code` answered asked for: from this process, or, with replicas, from the
    /// shared store (waiting up to `sharingDelay` for a code relayed just now). `nil` withholds the token.
    func sharedAuthorization(of code: String) async -> Authorization? {
        if let known = authorization(of: code) { return known }
        guard let shared else { return nil }
        let key = Self.key(Substring(code))
        // A few reads with growing pauses, not a busy poll: a code nobody relayed (a guess, a
        // replay) costs the store six reads, not forty.
        let deadline = ContinuousClock.now + Self.sharingDelay
        var pause = Duration.milliseconds(50)
        while true {
            if let json = try? await shared.shared(kind: "code", keyHash: key, at: Date()),
                let found = try? JSONDecoder().decode(Authorization.self, from: Data(json.utf8))
            {
                return found
            }
            guard ContinuousClock.now + pause < deadline else { return nil }
            try? await Task.sleep(for: pause)
            pause *= 2
        }
    }

    /// What the request that `code` answered asked for, when ScopeGate relayed that answer recently.
    func authorization(of code: String, now: ContinuousClock.Instant = .now) -> Authorization? {
        let key = Self.key(Substring(code))
        return codes.withLock { codes in
            guard let entry = codes[key], entry.expires > now else { return nil }
            return entry.authorization
        }
    }

    /// The `code` of an authorization response redirect (in the query or the fragment), decoded as the
    /// client's form reader decodes it, if any.
    static func code(inLocation location: String) -> Substring? {
        guard let start = location.firstIndex(where: { $0 == "?" || $0 == "#" }) else { return nil }
        for part in location[location.index(after: start)...].split(whereSeparator: { $0 == "&" || $0 == "#" || $0 == "?" }) {
            guard part.hasPrefix("code="), part.count > 5 else { continue }
            let value = part.dropFirst(5).replacingOccurrences(of: "+", with: " ")
            return value.removingPercentEncoding.map { Substring($0) }
        }
        return nil
    }

    private static func key(_ code: Substring) -> String { Digest.sha256Hex(code) }
}

/// An admitted authorization request, noted with the code the IdP answers (see `IssuedCodes`). A class:
/// an exchange is moved through the state machine on every event, and most carry none.
///
/// A request admitted on the fast path keeps its query, read in place: its client id and scope
/// become `String`s only if the IdP answers with a code (most answers to a gated request are the
/// IdP's sign-in page).
final class AdmittedAuthorization: Sendable {
    private enum Source {
        case built(IssuedCodes.Authorization)
        case plain(PlainAuthorizationQuery)
    }
    private let source: Source

    init(_ value: IssuedCodes.Authorization) { self.source = .built(value) }
    init(plain query: PlainAuthorizationQuery) { self.source = .plain(query) }

    var value: IssuedCodes.Authorization {
        switch source {
        case .built(let value): value
        case .plain(let query): .init(clientID: query.clientID, permissions: ScopeSet(query.scope.split(separator: " ").map(String.init)))
        }
    }
}
