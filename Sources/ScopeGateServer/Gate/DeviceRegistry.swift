import Foundation
import NIOConcurrencyHelpers
import ScopeGateCore
import Synchronization

/// What ScopeGate remembers of held devices between polls, in memory: when each last polled and at what
/// interval, and the IdP's device flow once a request is released. Lost on restart, which costs at most
/// a second device authorization at the IdP (the next poll releases again) and a reset interval.
final class DeviceRegistry: Sendable {
    struct Upstream: Sendable {
        var deviceCode: String
        var userCode: String
        var verificationURI: String
        var verificationURIComplete: String?
        var expires: ContinuousClock.Instant
    }

    private struct State {
        var polls: [String: (last: ContinuousClock.Instant, interval: Int)] = [:]
        var upstream: [String: Upstream] = [:]
        var failedLookups: [String: (count: Int, since: ContinuousClock.Instant)] = [:]
        var lastSweep: ContinuousClock.Instant?
    }

    /// The most addresses whose failed lookups are counted at once. Past it (thousands of addresses
    /// failing within a minute: a distributed guess), addresses not yet counted are barred until
    /// the counts lapse, rather than the counts being forgotten.
    static let maximumCountedAddresses = 10_000

    private let state = Mutex(State())

    /// Records a poll; whether it came sooner than the interval (RFC 8628 §3.5), which then grows by five seconds.
    func pollTooSoon(_ deviceCode: String, interval: Int, now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in
            if state.polls.count > 10_000 { state.polls = state.polls.filter { now - $0.value.last < .seconds(3600) } }
            guard let previous = state.polls[deviceCode] else {
                state.polls[deviceCode] = (now, interval)
                return false
            }
            if now - previous.last < .seconds(previous.interval) {
                state.polls[deviceCode] = (now, previous.interval + 5)
                return true
            }
            state.polls[deviceCode] = (now, previous.interval)
            return false
        }
    }

    func setUpstream(_ upstream: Upstream, for deviceCode: String) {
        state.withLock { state in
            let now = ContinuousClock.now
            state.upstream = state.upstream.filter { $0.value.expires > now }
            state.upstream[deviceCode] = upstream
        }
    }

    /// The IdP's device flow for a released hold, while it lasts.
    func upstream(of deviceCode: String, at now: ContinuousClock.Instant) -> Upstream? {
        state.withLock { state in state.upstream[deviceCode].flatMap { $0.expires > now ? $0 : nil } }
    }

    /// Counts a failed user-code lookup from `address`; whether it has failed too often (20 a minute).
    func lookupFailed(from address: String, now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in
            if state.failedLookups[address] == nil, !Self.makeRoom(&state, now: now) { return true }
            var entry = state.failedLookups[address] ?? (0, now)
            if now - entry.since > .seconds(60) { entry = (0, now) }
            entry.count += 1
            state.failedLookups[address] = entry
            return entry.count > 20
        }
    }

    /// Whether `address` is currently barred from looking up user codes.
    func lookupsBarred(for address: String, now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in
            guard let entry = state.failedLookups[address] else { return !Self.makeRoom(&state, now: now) }
            return entry.count > 20 && now - entry.since <= .seconds(60)
        }
    }

    /// Whether another address can be counted: lapsed counts are swept when the table is full (at
    /// most once a second, so a flood cannot make every lookup walk the table).
    private static func makeRoom(_ state: inout State, now: ContinuousClock.Instant) -> Bool {
        guard state.failedLookups.count >= maximumCountedAddresses else { return true }
        if state.lastSweep.map({ now - $0 >= .seconds(1) }) ?? true {
            state.lastSweep = now
            state.failedLookups = state.failedLookups.filter { now - $0.value.since <= .seconds(60) }
        }
        return state.failedLookups.count < maximumCountedAddresses
    }
}
