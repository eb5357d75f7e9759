import Foundation
import ScopeGateCore
import Synchronization

/// Records refusals of malformed requests (`request.refused`) in the audit log, at most `limit` a
/// minute: each entry is a signed, durable write, and a flood of malformed requests must not grow the
/// log, or the disk work, without bound. Refusals over the limit are counted, and the next entry
/// recorded says how many went unrecorded before it (`unrecorded_before`). Every refusal is still
/// refused and logged; only its audit entry is skipped.
final class RefusalAudit: Sendable {
    let service: GateService
    let limit: Int

    private struct Window {
        var start: ContinuousClock.Instant
        var recorded = 0
        var skipped = 0
    }

    private let window: Mutex<Window>

    init(service: GateService, limit: Int = 100) {
        self.service = service
        self.limit = limit
        self.window = Mutex(Window(start: .now))
    }

    /// Whether a refusal at `now` is recorded, and how many went unrecorded before it.
    func admit(at now: ContinuousClock.Instant = .now) -> (record: Bool, skippedBefore: Int) {
        window.withLock { window in
            if now - window.start >= .seconds(60) {
                window.start = now
                window.recorded = 0
            }
            guard window.recorded < limit else {
                window.skipped += 1
                return (false, 0)
            }
            window.recorded += 1
            let skipped = window.skipped
            window.skipped = 0
            return (true, skipped)
        }
    }

    /// Records a refusal at `endpoint` with its OAuth error code and reason, within the limit. If even
    /// the record fails, the request is refused all the same.
    func record(endpoint: String, code: String, reason: String) async {
        let (record, skipped) = admit()
        guard record else { return }
        var fields: [(String, AuditEvent.Value)] = [
            ("endpoint", .string(endpoint)), ("error", .string(code)), ("reason", .string(String(reason.prefix(300)))),
        ]
        if skipped > 0 { fields.append(("unrecorded_before", .int(Int64(skipped)))) }
        try? await service.recordAudit(AuditEvent("request.refused", fields))
    }
}
