import Foundation
import Logging
import NIOConcurrencyHelpers
import ScopeGateCore
import ScopeGateStore
import Synchronization

/// What ScopeGate remembers of held devices between polls, in memory: when each last polled and at what
/// interval, and the IdP's device flow once a request is released. With replicas the IdP's device flow
/// is also in the shared store, so a device polling, or a person opening the verification page at,
/// another replica continues the same flow; poll intervals and failed user-code lookups stay per
/// replica. On one process, a restart costs at most a second device authorization at the IdP (the next
/// poll releases again) and a reset interval.
final class DeviceRegistry: Sendable {
    let shared: (any SharedStateStore)?
    let logger: Logger?

    init(shared: (any SharedStateStore)? = nil, logger: Logger? = nil) {
        self.shared = shared
        self.logger = logger
    }

    struct Upstream: Sendable, Codable {
        var deviceCode: String
        var userCode: String
        var verificationURI: String
        var verificationURIComplete: String?
        var expires: ContinuousClock.Instant

        private enum CodingKeys: String, CodingKey {
            case deviceCode = "device_code", userCode = "user_code", verificationURI = "verification_uri"
            case verificationURIComplete = "verification_uri_complete", expiresIn = "expires_in"
        }

        init(deviceCode: String, userCode: String, verificationURI: String, verificationURIComplete: String?, expires: ContinuousClock.Instant) {
            self.deviceCode = deviceCode
            self.userCode = userCode
            self.verificationURI = verificationURI
            self.verificationURIComplete = verificationURIComplete
            self.expires = expires
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            deviceCode = try container.decode(String.self, forKey: .deviceCode)
            userCode = try container.decode(String.self, forKey: .userCode)
            verificationURI = try container.decode(String.self, forKey: .verificationURI)
            verificationURIComplete = try container.decodeIfPresent(String.self, forKey: .verificationURIComplete)
            expires = .now + .seconds(try container.decode(Int.self, forKey: .expiresIn))
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(deviceCode, forKey: .deviceCode)
            try container.encode(userCode, forKey: .userCode)
            try container.encode(verificationURI, forKey: .verificationURI)
            try container.encodeIfPresent(verificationURIComplete, forKey: .verificationURIComplete)
            try container.encode(max(0, (expires - .now).components.seconds), forKey: .expiresIn)
        }
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

    func setUpstream(_ upstream: Upstream, for deviceCode: String) async {
        state.withLock { state in
            let now = ContinuousClock.now
            state.upstream = state.upstream.filter { $0.value.expires > now }
            state.upstream[deviceCode] = upstream
        }
        guard let shared, let json = try? JSONEncoder().encode(upstream) else { return }
        do {
            try await shared.putShared(
                kind: "device", keyHash: Self.hash(deviceCode), value: String(decoding: json, as: UTF8.self),
                expiresAt: Date().addingTimeInterval(Double((upstream.expires - .now).components.seconds)))
        } catch {
            logger?.error("a released device flow could not be shared with the other replicas", metadata: ["sg.error": "\(type(of: error))"])
        }
    }

    /// The IdP's device flow for a released hold: from this process, or from the shared store.
    func sharedUpstream(of deviceCode: String) async -> Upstream? {
        if let local = upstream(of: deviceCode, at: .now) { return local }
        guard let shared, let json = try? await shared.shared(kind: "device", keyHash: Self.hash(deviceCode), at: Date()),
            let found = try? JSONDecoder().decode(Upstream.self, from: Data(json.utf8))
        else { return nil }
        return found
    }

    private static func hash(_ key: String) -> String {
        Digest.sha256Hex(key)
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
