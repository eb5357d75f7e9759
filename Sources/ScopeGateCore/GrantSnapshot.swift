import Foundation
import Synchronization

/// The grants in force, in memory, so that a request whose scopes are all granted can be admitted on
/// the event loop without a store round trip: the `GrantSnapshotPort` the proxy's fast path asks the
/// gate service through.
///
/// Its owner refreshes it from the store (the server every half second and after every decision the
/// process makes). It answers only while fresh: when no refresh has succeeded for `maximumAge`,
/// `grants(of:now:)` returns `nil` and the caller asks the store, which fails closed. A revocation
/// made elsewhere therefore takes effect within one refresh interval.
///
/// It also remembers the gate service's answers (`remember`) per client and scope value, for as long
/// as the grants and the policy they were evaluated under stay the same: a refresh that changes any
/// grant, an invalidation and a policy reload all forget them, and an admission is not remembered past
/// the earliest expiry among the client's grants.
public final class GrantSnapshot: GrantSnapshotPort {
    private struct State {
        var clients: [String: Client] = [:]
        var refreshedAt: ContinuousClock.Instant?
        var invalidatedAt: ContinuousClock.Instant?
        /// Counts the changes of `clients` (and invalidations): answers and grants read before a change
        /// are not remembered after it.
        var epoch: UInt64 = 0
        var answers = Answers()
    }

    /// One client's grants: each scope's expiry, if it has one, and the earliest of them.
    private struct Client {
        var scopes: [String: Date?] = [:]
        var earliestExpiry: Date?
    }

    /// The answers remembered under one policy generation (held, so that its identity is not reused).
    private struct Answers {
        var generation: LivePolicy.Generation?
        var remembered: RememberedAnswers

        init(generation: LivePolicy.Generation? = nil) {
            self.generation = generation
            self.remembered = RememberedAnswers(capacity: GrantSnapshot.maximumAnswers, seed: .random(in: .min ... .max))
        }
    }

    /// How many answers are remembered at most between two changes (distinct scope values are few per
    /// application; past the limit, requests are evaluated as if nothing were remembered).
    public static let maximumAnswers = 4096
    /// The longest client id and scope value, together in bytes, whose answer is remembered: a request
    /// target may be 8 KiB, and 4,096 answers to long made-up values would hold tens of megabytes
    /// until the next change. Longer ones are evaluated every time.
    public static let maximumRememberedLength = 512

    private let state = Mutex(State())
    /// How long a snapshot may be used after its last successful refresh.
    public let maximumAge: Duration

    public init(maximumAge: Duration = .seconds(2)) { self.maximumAge = maximumAge }

    /// The grants `clientID` holds, or `nil` when the snapshot is not fresh. `now` is the wall clock
    /// that grant expiry is checked against, read only when a grant has an expiry.
    public func grants(of clientID: String, now: @escaping @Sendable () -> Date) -> ClientGrants? {
        // Both event loops take this lock for every gated request: keep the clock read outside it.
        let instant = ContinuousClock.now
        return state.withLock { state in
            guard isFresh(state, at: instant) else { return nil }
            let client = state.clients[clientID]
            return ClientGrants(
                scopes: client?.scopes ?? [:], earliestExpiry: client?.earliestExpiry, epoch: state.epoch, now: now)
        }
    }

    public func rememberedAnswer(to request: PlainAuthorizationQuery, under generation: LivePolicy.Generation, now: () -> Date) -> Bool? {
        let instant = ContinuousClock.now
        let answer = request.withValues { clientID, scope in
            state.withLock { state -> RememberedAnswers.Answer? in
                guard isFresh(state, at: instant), state.answers.generation === generation else { return nil }
                return state.answers.remembered.answer(clientID: clientID, scope: scope)
            }
        }
        guard let answer else { return nil }
        if let until = answer.until, now() >= until { return nil }
        return answer.admitted
    }

    public func remember(_ admitted: Bool, to request: PlainAuthorizationQuery, under generation: LivePolicy.Generation, from grants: ClientGrants) {
        request.withValues { clientID, scope in
            guard clientID.count + scope.count <= Self.maximumRememberedLength else { return }
            let answer = RememberedAnswers.Answer(admitted: admitted, until: admitted ? grants.earliestExpiry : nil)
            state.withLock { state in
                guard state.epoch == grants.epoch else { return }
                if state.answers.generation !== generation { state.answers = Answers(generation: generation) }
                state.answers.remembered.remember(answer, clientID: clientID, scope: scope)
            }
        }
    }

    /// How many answers are remembered now.
    var rememberedAnswerCount: Int { state.withLock { $0.answers.remembered.count } }

    private func isFresh(_ state: State, at instant: ContinuousClock.Instant) -> Bool {
        guard let refreshedAt = state.refreshedAt else { return false }
        return instant - refreshedAt <= maximumAge
    }

    /// One client's grants, from a fresh snapshot.
    public struct ClientGrants: GrantedScopes {
        /// Each granted scope's expiry, if it has one.
        public let scopes: [String: Date?]
        /// The earliest expiry among them, when one has one.
        public let earliestExpiry: Date?
        /// The snapshot's state these were read from.
        fileprivate let epoch: UInt64
        let now: @Sendable () -> Date

        /// Whether `scope` is granted and not expired.
        public func contains(_ scope: String) -> Bool {
            guard let entry = scopes[scope] else { return false }
            guard let expiry = entry else { return true }
            return now() < expiry
        }
    }

    /// Replaces the snapshot with `grants`, read from the store at `readStartedAt`.
    public func replace(with grants: [Grant], readStartedAt: ContinuousClock.Instant) {
        var clients: [String: Client] = [:]
        for grant in grants {
            clients[grant.clientID, default: Client()].scopes[grant.scope] = grant.expiresAt
            if let expiry = grant.expiresAt {
                clients[grant.clientID]!.earliestExpiry = min(clients[grant.clientID]!.earliestExpiry ?? expiry, expiry)
            }
        }
        state.withLock { state in
            // A slower, older read must not overwrite a newer one, nor restore what an invalidation
            // (a revocation) removed.
            if let current = state.refreshedAt, current > readStartedAt { return }
            if let invalidated = state.invalidatedAt, readStartedAt < invalidated { return }
            state.clients = clients
            state.refreshedAt = readStartedAt
            state.epoch &+= 1
            state.answers = Answers()
        }
    }

    /// Marks the snapshot current as of `readStartedAt` without reloading it (the store reported no
    /// change); false when it is not usable and must be reloaded.
    public func confirm(readStartedAt: ContinuousClock.Instant) -> Bool {
        state.withLock { state in
            guard let current = state.refreshedAt else { return false }
            if let invalidated = state.invalidatedAt, readStartedAt < invalidated { return false }
            if readStartedAt > current { state.refreshedAt = readStartedAt }
            return true
        }
    }

    /// Marks the snapshot unusable until the next successful refresh.
    public func invalidate() {
        state.withLock {
            $0.refreshedAt = nil
            $0.invalidatedAt = .now
            $0.epoch &+= 1
            $0.answers = Answers()
        }
    }
}
