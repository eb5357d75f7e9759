import Foundation

/// Holds approved once whose authorization the IdP has completed (it issued a code for it): spent, so
/// the release admits nothing more of that browser's, even within the release window.
///
/// Approve once is one authorization. Its release has to admit the IdP's own steps of it (a sign-in
/// page that replays the request, a consent form that posts it back), which may come several times;
/// the code that ends it is the sign that the authorization happened. Kept in this process's memory:
/// after a restart the release window alone bounds a release.
public final class SpentReleases: @unchecked Sendable {
    private let lock = NSLock()
    private var spent: [String: Date] = [:]

    public init() {}

    /// Marks the hold `id` spent at `date`.
    public func spend(_ id: String, at date: Date) {
        lock.lock()
        defer { lock.unlock() }
        if spent.count > 10_000 {
            spent = spent.filter { date.timeIntervalSince($0.value) < GateService.releaseWindow.seconds }
        }
        spent[id] = date
    }

    /// Whether the hold `id` is spent.
    public func isSpent(_ id: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return spent[id] != nil
    }
}
