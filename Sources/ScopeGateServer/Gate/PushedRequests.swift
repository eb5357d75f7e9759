import Foundation
import ScopeGateCore
import Synchronization

/// The `request_uri` values the IdP issued for pushed requests that passed the gate, bound to their
/// client, until they expire (at most ten minutes). Kept in memory: after a restart, a pending
/// `request_uri` is refused (fail closed) and the client pushes again.
final class PushedRequests: Sendable {
    private let issued = Mutex<[String: (clientID: String, parameters: FormParameters, expires: ContinuousClock.Instant)]>([:])

    /// Records `uri`, issued by the IdP for the pushed request `parameters` of `clientID`.
    func record(_ uri: String, clientID: String, parameters: FormParameters, lifetime: Duration) {
        let now = ContinuousClock.now
        issued.withLock { issued in
            issued = issued.filter { $0.value.expires > now }
            issued[uri] = (clientID, parameters, now + min(lifetime, .seconds(600)))
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
            let copies = outer.allSatisfy { pair in
                let pushed = entry.parameters.values(pair.name)
                return pair.name == "client_id" || (!pushed.isEmpty && pushed.allSatisfy { $0 == pair.value })
            }
            return copies ? entry.parameters : nil
        }
    }
}
