import Foundation

/// How many new holds (and so approval requests and chat messages) may be opened in a minute: per
/// source address, per client, and in all.
///
/// Opening an approval request takes no authentication: anyone who knows a `client_id` can ask. The
/// limits keep a flood of requests from burying approvers and growing the store without bound, while
/// identical asks already collapse into one approval request. A request over a limit is refused
/// (`slow_down`) before anything is stored; nothing is forwarded either way.
public final class HoldLimits: @unchecked Sendable {
    /// Where replicas count together (PostgreSQL); `nil` counts in this process.
    public let shared: (any HoldLimitStore)?

    /// The limits, each a count of new holds per minute.
    public struct Rates: Sendable, Equatable {
        public var perSource: Int
        public var perClient: Int
        public var total: Int

        public init(perSource: Int, perClient: Int, total: Int) {
            self.perSource = perSource
            self.perClient = perClient
            self.total = total
        }

        /// Generous for people signing in, tight for a script.
        public static let standard = Rates(perSource: 30, perClient: 120, total: 600)
    }

    public let rates: Rates
    private let lock = NSLock()
    private var windows: [String: (start: Date, count: Int)] = [:]

    public init(_ rates: Rates = .standard, shared: (any HoldLimitStore)? = nil) {
        self.rates = rates
        self.shared = shared
    }

    /// Counts one new hold for `clientID` from `source` at `date`, in this process or, with replicas,
    /// in the shared store (per calendar minute); returns whether it may be opened. Throws when the
    /// shared count cannot be read: the hold is then not opened.
    public func admit(clientID: String, source: String?, at date: Date) async throws -> Bool {
        guard let shared else { return take(clientID: clientID, source: source, at: date) }
        var keys = [(key: "*", limit: rates.total), (key: "client " + clientID, limit: rates.perClient)]
        if let source { keys.append((key: "source " + source, limit: rates.perSource)) }
        let minute = Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60)
        return try await shared.countHold(under: keys, window: minute)
    }

    /// Counts one new hold for `clientID` from `source` at `date`, when no limit is reached; returns
    /// whether it may be opened.
    public func take(clientID: String, source: String?, at date: Date) -> Bool {
        var keys = [("*", rates.total), ("client " + clientID, rates.perClient)]
        if let source { keys.append(("source " + source, rates.perSource)) }
        lock.lock()
        defer { lock.unlock() }
        if windows.count > 10_000 { windows = windows.filter { date.timeIntervalSince($0.value.start) < 60 } }
        func current(_ key: String) -> (start: Date, count: Int) {
            guard let window = windows[key], date.timeIntervalSince(window.start) < 60 else { return (date, 0) }
            return window
        }
        guard keys.allSatisfy({ current($0.0).count < $0.1 }) else { return false }
        for (key, _) in keys {
            let window = current(key)
            windows[key] = (window.start, window.count + 1)
        }
        return true
    }

    /// The error for a request over a limit.
    static let refusal = GateError(
        .slowDown, "too many requests are waiting for approval (from this address, for this client, or in all); try again in a minute")
}

/// Counts of new holds that replicas share, per calendar minute.
public protocol HoldLimitStore: Sendable {
    /// Counts one new hold under every key for the minute starting at `window`, unless one of them has
    /// reached its limit already (then nothing is counted); returns whether it was counted.
    func countHold(under keys: [(key: String, limit: Int)], window: Date) async throws -> Bool
}
