import Foundation
import Logging
import ScopeGateCore
import ScopeGateStore
import Synchronization

/// Tells apps' owners (`clients[].owner_notify`) of the standing grants their app gets and of
/// revocations, and identified requesters of the decision on their request (directly, where the
/// platform can reach a person by email address), on one chat platform, reading them from the audit log: a change is announced only
/// once it is recorded there, and none is lost to a restart, as the platform's place in the log is
/// kept in the store and moved past a notice only once it is delivered (a crash between the two
/// repeats that one notice). Grants written together (one approval) make one notice.
final class ChatNotices: Sendable {
    let store: any GateStore & AuditLogStore
    let live: LivePolicy
    var policy: Policy { live.policy }
    let logger: Logger
    let now: @Sendable () -> Date
    /// After a failure, when to try again (notices alone wait; approval messages go on).
    private let retryAt = Mutex(Date.distantPast)
    /// This platform's place in the log, once read from the store (only this process moves it): a pass
    /// over nothing new then reads the log's tail and writes nothing.
    private let cursor = Mutex<Int64?>(nil)

    init(store: any GateStore & AuditLogStore, live: LivePolicy, logger: Logger, now: @escaping @Sendable () -> Date) {
        self.store = store
        self.live = live
        self.logger = logger
        self.now = now
    }

    /// Whether anyone is told on `platform`: an owner, or requesters where it reaches people by email.
    static func wanted(by policy: Policy, on platform: any ChatPlatform) -> Bool {
        (policy.identifyRequesters && platform.reachesPeopleByEmail)
            || policy.clients.values.contains { $0.ownerNotify[platform.name] != nil }
    }

    /// Entries read per pass.
    static let batch = 200

    /// One notice: its text, where it goes, and the last log entry it covers.
    struct Notice: Equatable {
        enum Destination: Equatable {
            /// An owner's channel or user.
            case channel(String)
            /// The identified requesters of an approval request, each directly.
            case requesters(requestID: String)
        }

        var clientID: String
        var destination: Destination
        var text: String
        var through: Int64

        /// An owner's notice.
        var channel: String? {
            if case .channel(let channel) = destination { return channel }
            return nil
        }
    }

    /// Delivers the notices due on `platform`, in the log's order; returns how long to pause every
    /// call to the platform when it asked for that (HTTP 429).
    func pass(on platform: any ChatPlatform) async -> Duration? {
        guard now() >= retryAt.withLock({ $0 }) else { return nil }
        do {
            let start: Int64
            if store.sharedByProcesses {
                // Replicas: one of them tells each notice; the others skip while it holds the claim.
                guard let claimed = try await store.claimAuditReader(platform.name, until: now().addingTimeInterval(30), at: now())
                else { return nil }
                start = claimed
            } else if let known = cursor.withLock({ $0 }) {
                start = known
            } else {
                start = try await store.auditReadCursor(platform.name)
                cursor.withLock { $0 = start }
            }
            let entries = try await store.auditEntries(after: start, limit: Self.batch)
            guard let last = entries.last?.seq else { return nil }
            for notice in Self.notices(from: entries, policy: policy, platform: platform.name) {
                do {
                    for channel in try await channels(of: notice, on: platform) {
                        try await platform.notify(notice.text, to: channel)
                    }
                } catch {
                    switch error {
                    case .rateLimited(let retryAfter):
                        return retryAfter
                    case .transient:
                        // Tried again in a while, from this notice on.
                        logger.warning(
                            "an owner notice could not be delivered; it is tried again",
                            metadata: ["sg.chat": "\(platform.name)", "sg.client.id": "\(notice.clientID)", "sg.chat.error": "\(error.name)"])
                        retryAt.withLock { $0 = now().addingTimeInterval(30) }
                        return nil
                    case .permanent:
                        logger.error(
                            "an owner notice was refused by the platform and is dropped",
                            metadata: ["sg.chat": "\(platform.name)", "sg.client.id": "\(notice.clientID)", "sg.chat.error": "\(error.name)"])
                    }
                }
                try await advance(on: platform, to: notice.through)
            }
            try await advance(on: platform, to: last)
            return nil
        } catch {
            logger.error("owner notices cannot read the audit log", metadata: ["sg.error": "\(type(of: error))"])
            retryAt.withLock { $0 = now().addingTimeInterval(30) }
            return nil
        }
    }

    /// Moves this platform's place in the log, in the store and here.
    private func advance(on platform: any ChatPlatform, to seq: Int64) async throws {
        try await store.advanceAuditReadCursor(platform.name, to: seq)
        cursor.withLock { $0 = max($0 ?? seq, seq) }
    }

    /// Where a notice goes on `platform`: the owner's channel, or each identified requester whose
    /// verified address the platform knows.
    private func channels(of notice: Notice, on platform: any ChatPlatform) async throws(ChatDeliveryFailure) -> [String] {
        switch notice.destination {
        case .channel(let channel):
            return [channel]
        case .requesters(let requestID):
            let holds: [Hold]
            do {
                holds = try await store.holds(approvalRequestID: requestID)
            } catch {
                throw .transient("store")
            }
            let emails = Set(holds.compactMap { $0.requester?.emailVerified == true ? $0.requester?.email : nil })
            var members: [String] = []
            for email in emails.sorted() {
                if let member = try await platform.member(byEmail: email) { members.append(member) }
            }
            return members
        }
    }

    /// The notices `entries` make for owners on `platform`: one per approval's grants (consecutive
    /// `grant.created` entries of one request), one per revocation.
    static func notices(from entries: [AuditLogRow], policy: Policy, platform: String) -> [Notice] {
        var notices: [Notice] = []
        var group: (request: String, client: String, scopes: [String], by: String, expires: Int64?, through: Int64)?
        func flush() {
            guard let current = group else { return }
            group = nil
            guard let client = policy.clients[current.client], let channel = client.ownerNotify[platform] else { return }
            let until = current.expires.map { " until " + ChatText.date(Date(timeIntervalSince1970: Double($0))) } ?? ", until revoked"
            notices.append(
                Notice(
                    clientID: current.client, destination: .channel(channel),
                    text: "\(ChatText.clipped(client.name, to: 200)) (\(ChatText.clipped(current.client, to: 200))) was granted "
                        + ChatText.clipped(current.scopes.joined(separator: " "), to: 1000)
                        + " by \(ChatText.actor(current.by))\(until) (approval request \(current.request)). You are told as the app's owner.",
                    through: current.through))
        }
        for entry in entries {
            guard let payload = payload(of: entry.jws), let client = payload["client_id"] as? String,
                let data = payload["data"] as? [String: Any]
            else {
                flush()
                continue
            }
            switch entry.event {
            case "grant.created":
                let request = data["request_id"] as? String ?? ""
                let scope = data["scope"] as? String ?? ""
                if let current = group, current.request == request, current.client == client {
                    group?.scopes.append(scope)
                    group?.through = entry.seq
                } else {
                    flush()
                    group = (request, client, [scope], data["approved_by"] as? String ?? "", (data["expires_at"] as? NSNumber)?.int64Value, entry.seq)
                }
            case "grant.revoked":
                flush()
                guard let defined = policy.clients[client], let channel = defined.ownerNotify[platform] else { continue }
                notices.append(
                    Notice(
                        clientID: client, destination: .channel(channel),
                        text: "The grant of \(ChatText.clipped(data["scope"] as? String ?? "", to: 300)) to \(ChatText.clipped(defined.name, to: 200)) "
                            + "(\(ChatText.clipped(client, to: 200))) was revoked by \(ChatText.actor(data["actor"] as? String ?? "")). You are told as the app's owner.",
                        through: entry.seq))
            case "decision" where policy.identifyRequesters:
                flush()
                guard let request = data["request_id"] as? String, let outcome = data["outcome"] as? String,
                    outcome != "pending"
                else { continue }
                let name = ChatText.clipped(policy.displayName(of: client), to: 200)
                let scopes = ChatText.clipped(((data["approved_scopes"] ?? data["scopes"]) as? [String] ?? []).joined(separator: " "), to: 500)
                let what: String
                switch outcome {
                case "approved": what = "was approved by \(ChatText.actor(data["actor"] as? String ?? ""))"
                case "approved_once": what = "was approved once by \(ChatText.actor(data["actor"] as? String ?? ""))"
                case "denied":
                    what = "was denied by \(ChatText.actor(data["actor"] as? String ?? ""))"
                        + ((data["reason"] as? String).map { ": " + ChatText.clipped($0, to: 300) } ?? "")
                default: what = "expired: nobody decided in time"
                }
                notices.append(
                    Notice(
                        clientID: client, destination: .requesters(requestID: request),
                        text: "Your request for \(name) to have \(scopes) (request \(request)) \(what). The sign-in page moves on by itself.",
                        through: entry.seq))
            default:
                flush()
            }
        }
        flush()
        return notices
    }

    /// The claims of a signed log entry.
    static func payload(of jws: String) -> [String: Any]? {
        let parts = jws.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let bytes = Base64URL.decode(String(parts[1])) else { return nil }
        return (try? JSONSerialization.jsonObject(with: bytes)) as? [String: Any]
    }
}
