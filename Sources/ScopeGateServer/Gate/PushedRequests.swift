import Foundation
import Logging
import ScopeGateCore
import ScopeGateStore
import Synchronization

/// The `request_uri` values the IdP issued for pushed requests that passed the gate, bound to their
/// client, until they expire (at most ten minutes). Kept in memory, and with replicas in the shared
/// store (by SHA-256), so that the authorization endpoint of any replica admits them; on one process,
/// after a restart, a pending `request_uri` is refused (fail closed) and the client pushes again.
final class PushedRequests: Sendable {
    private let issued = Mutex<[String: (clientID: String, parameters: FormParameters, expires: ContinuousClock.Instant)]>([:])
    let shared: (any SharedStateStore)?
    let logger: Logger?

    init(shared: (any SharedStateStore)? = nil, logger: Logger? = nil) {
        self.shared = shared
        self.logger = logger
    }

    private struct Shared: Codable {
        var clientID: String
        var parameters: String
    }

    /// Records `uri`, issued by the IdP for the pushed request `parameters` of `clientID`; with
    /// replicas, in the shared store before the IdP's answer goes back to the client.
    func record(_ uri: String, clientID: String, parameters: FormParameters, lifetime: Duration) async {
        let now = ContinuousClock.now
        let kept = min(lifetime, .seconds(600))
        issued.withLock { issued in
            issued = issued.filter { $0.value.expires > now }
            issued[uri] = (clientID, parameters, now + kept)
        }
        guard let shared, let json = try? JSONEncoder().encode(Shared(clientID: clientID, parameters: parameters.encoded)) else { return }
        do {
            try await shared.putShared(
                kind: "par", keyHash: Self.hash(uri), value: String(decoding: json, as: UTF8.self),
                expiresAt: Date().addingTimeInterval(Double(kept.components.seconds)))
        } catch {
            logger?.error("a pushed request could not be shared with the other replicas", metadata: ["sg.error": "\(type(of: error))"])
        }
    }

    /// `admitted`, also for a `uri` another replica recorded.
    func sharedAdmitted(_ uri: String, clientID: String, outer: [FormParameters.Pair] = []) async -> FormParameters? {
        if let local = admitted(uri, clientID: clientID, outer: outer) { return local }
        guard let shared, let json = try? await shared.shared(kind: "par", keyHash: Self.hash(uri), at: Date()),
            let entry = try? JSONDecoder().decode(Shared.self, from: Data(json.utf8)), entry.clientID == clientID,
            let parameters = try? FormParameters(parsing: Substring(entry.parameters))
        else { return nil }
        return Self.copies(outer, of: parameters) ? parameters : nil
    }

    private static func hash(_ uri: String) -> String {
        Digest.sha256Hex(uri)
    }

    /// Whether every parameter sent with the reference repeats the pushed request's value.
    private static func copies(_ outer: [FormParameters.Pair], of parameters: FormParameters) -> Bool {
        outer.allSatisfy { pair in
            let pushed = parameters.values(pair.name)
            return pair.name == "client_id" || (!pushed.isEmpty && pushed.allSatisfy { $0 == pair.value })
        }
    }

    /// The pushed request behind `uri`, when `uri` was issued through ScopeGate for `clientID`, has not
    /// expired, and every other parameter sent with it (`outer`, without `request_uri`) repeats the
    /// pushed request's value. RFC 9126 needs only `client_id`, but some IdPs (idpyoidc) want
    /// `response_type` and the rest again: a copy of what was gated reads the same whichever of the two
    /// the IdP takes.
    func admitted(_ uri: String, clientID: String, outer: [FormParameters.Pair] = []) -> FormParameters? {
        issued.withLock { issued in
            guard let entry = issued[uri], entry.clientID == clientID, entry.expires > .now else { return nil }
            return Self.copies(outer, of: entry.parameters) ? entry.parameters : nil
        }
    }
}
