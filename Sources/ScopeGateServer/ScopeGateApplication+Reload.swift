import Foundation
import Logging
import ScopeGateCore

extension ScopeGateApplication {
    /// What became of a reload.
    public enum PolicyReload: Equatable, Sendable {
        /// The new policy is in force; its digest.
        case applied(digest: String)
        /// The file's policy is the one in force already.
        case unchanged
        /// Nothing changed: the file is invalid, changes what only a restart applies, or the change
        /// could not be recorded in the audit log. The reason names the key or the part.
        case refused(String)
    }

    /// Reads the configuration again (`configuration`, as a reload read it) and puts its policy (tiers,
    /// scope rules, clients, automation, shadow mode, routes, the approval timeout and default tier) in
    /// force at once, as one: every decision from then on reads the new one. A configuration that is
    /// invalid, or that changes anything else (those take a restart), is refused and the policy in
    /// force stays. With an audit log the change is recorded (`config.reloaded`, the new and previous
    /// policy digests) before it takes effect; if it cannot be recorded, it does not take effect.
    public func reloadPolicy(_ loaded: Result<ScopeGateConfiguration, GateError>) async -> PolicyReload {
        let outcome = await apply(loaded)
        switch outcome {
        case .applied(let digest):
            logger.notice("policy reloaded", metadata: ["sg.policy.sha256": "\(digest)"])
        case .unchanged:
            logger.notice("configuration reloaded: the policy is unchanged")
        case .refused(let reason):
            logger.error("configuration not reloaded; the policy in force stays", metadata: ["sg.reason": "\(reason)"])
            if auditSigner != nil {
                try? await service.recordAudit(
                    AuditEvent("config.reload_refused", [("reason", .string(reason)), ("policy_sha256", .string(live.generation.digest))]))
            }
        }
        return outcome
    }

    /// Reloads the policy from the configuration file at `path`, read as `serve` reads it.
    public func reloadPolicy(path: String) async -> PolicyReload {
        let loaded: Result<ScopeGateConfiguration, GateError>
        do {
            loaded = .success(try ScopeGateConfiguration.load(path: path, secrets: .required))
        } catch {
            loaded = .failure(error)
        }
        return await reloadPolicy(loaded)
    }

    private func apply(_ loaded: Result<ScopeGateConfiguration, GateError>) async -> PolicyReload {
        let new: ScopeGateConfiguration
        switch loaded {
        case .success(let configuration): new = configuration
        case .failure(let error): return .refused(error.message)
        }
        if let reason = restartNeeded(by: new) { return .refused(reason) }
        let previous = live.generation
        let digest = new.policyDigest
        guard digest != previous.digest else { return .unchanged }
        if auditSigner != nil {
            do {
                try await service.recordAudit(
                    AuditEvent(
                        "config.reloaded",
                        [("policy_sha256", .string(digest)), ("previous_policy_sha256", .string(previous.digest))]))
            } catch {
                return .refused("the reload could not be recorded in the audit log (\(error.code.rawValue))")
            }
        }
        live.replace(with: .init(policy: new.policy, routing: new.routing, confirmTiers: new.confirmTiers, digest: digest))
        for warning in new.policy.shadowedDenials() {
            logger.warning("a deny rule is shadowed", metadata: ["sg.config.warning": "\(warning)"])
        }
        return .applied(digest: digest)
    }

    /// Why `new` cannot be applied without a restart, if it cannot.
    func restartNeeded(by new: ScopeGateConfiguration) -> String? {
        if new.restartSignature != configuration.restartSignature {
            return "the file changes settings other than the policy (listeners, upstream, store, secrets, chat platforms, audit, sign_in, approvals.identify_requesters, idp_revocation, clients[].idp_app_id): they take a restart"
        }
        if (new.routing == nil) != (configuration.routing == nil) {
            return "routes were added or all removed: chat approvals start or stop only with a restart"
        }
        for notifier in chatNotifiers where notifier.chatNotices == nil && ChatNotices.wanted(by: new.policy, on: notifier.platform) {
            return "clients[].owner_notify now names \(notifier.platform.name), where no owner was told at start: that takes a restart"
        }
        return nil
    }
}
