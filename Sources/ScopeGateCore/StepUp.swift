import Foundation

/// A tier's step-up: an approver decides only through a sign-in at the IdP at most `maxAge` old (the
/// ID token's `auth_time`), and, when `acr` lists any, at one of those authentication context classes.
public struct StepUp: Sendable, Equatable {
    public var maxAge: Duration
    public var acr: [String]

    public init(maxAge: Duration, acr: [String] = []) {
        self.maxAge = maxAge
        self.acr = acr
    }

    /// How much older than `maxAge` a sign-in may look, for clocks that differ.
    public static let skew: TimeInterval = 30

    /// Whether a sign-in authenticated at `authTime` with `acr` is fresh and strong enough at `date`.
    public func admits(authTime: Date?, acr claimed: String?, at date: Date) -> Bool {
        guard let authTime, date.timeIntervalSince(authTime) <= maxAge.seconds + Self.skew,
            authTime.timeIntervalSince(date) <= Self.skew
        else { return false }
        return acr.isEmpty || claimed.map(acr.contains) == true
    }
}
