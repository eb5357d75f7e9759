import Foundation
import ScopeGateCore

/// Why a call to a chat platform failed, sorted into what a retry can fix and what it cannot.
enum ChatDeliveryFailure: Error, Equatable {
    /// HTTP 429 (or the platform's own word for it): wait this long before calling again.
    case rateLimited(retryAfter: Duration)
    /// The platform refused in a way retrying cannot fix (`channel_not_found`, `invalid_auth`, 403, …).
    case permanent(String)
    /// The platform or the network failed; a later retry may succeed.
    case transient(String)

    /// The error as logged and stored.
    var name: String {
        switch self {
        case .rateLimited(let after): "ratelimited (retry after \(after.components.seconds)s)"
        case .permanent(let error), .transient(let error): error
        }
    }
}

/// Everything a chat message about one approval request shows, whatever the platform renders it as.
struct ApprovalMessageContent: Sendable {
    /// The approval request, as it stands now.
    var request: ApprovalRequest
    /// The policy, for the client's name and each scope's description and tier.
    var policy: Policy
    /// The requesters' justifications, newest first.
    var justifications: [String]
    /// The route the request took, shown so approvers see why they were asked.
    var routeName: String
    /// Tiers whose approval asks the approver to confirm.
    var confirmTiers: Set<String>
    /// How many requests (browsers, devices, back-channel calls) wait on it.
    var waiting: Int
    /// The votes so far, where the request's tier needs several approvers.
    var votes: [Vote] = []
    /// The votes the request needs.
    var quorum: Quorum = .single
    /// ScopeGate's public URL, for links to the approval page.
    var publicURL: URL? = nil
    /// Who asks: the requesters of its held requests who signed in, each once.
    var requesters: [Requester] = []
    /// How the app stands: how it was registered, and since when it is known.
    var clientStanding: ClientStanding? = nil

    /// The app's standing in words (`registered: marketplace, known since …`); `nil` when nothing is known.
    var standingText: String? {
        guard let standing = clientStanding else { return nil }
        let since = standing.knownSince.map(ChatText.date)
        switch standing.registration {
        case ClientStanding.unlisted:
            return "not in ScopeGate's configuration" + (since.map { ", first asked \($0)" } ?? "")
        case ClientStanding.listed:
            return since.map { "known since \($0)" }
        default:
            return "registered: " + ChatText.clipped(standing.registration, to: 64) + (since.map { ", known since \($0)" } ?? "")
        }
    }

    /// Who asks, as messages say it: `nil` where nobody is identified and requesters are not asked to be.
    var requesterText: String? {
        var seen = Set<String>()
        let unique = requesters.filter { seen.insert($0.subject).inserted }
        guard !unique.isEmpty else { return policy.identifyRequesters ? "not signed in yet" : nil }
        return unique.prefix(5).map { person in
            ChatText.clipped(person.label, to: 200)
                + (person.groups.isEmpty ? "" : " (groups: " + ChatText.clipped(person.groups.joined(separator: ", "), to: 300) + ")")
        }.joined(separator: "; ") + (unique.count > 5 ? "; and \(unique.count - 5) more" : "")
    }

    /// Where the request's tier asks approvers for a fresh sign-in: the approval page, the only place
    /// it is decided (a click in chat decides nothing); `nil` otherwise.
    var stepUpURL: String? {
        guard request.state == .pending, policy.stepUp(of: request) != nil, let publicURL else { return nil }
        return ApprovalPage.url(request.id, publicURL: publicURL)
    }

    /// What a step-up tier asks of approvers, in words.
    var stepUpNotice: String? {
        guard stepUpURL != nil, let stepUp = policy.stepUp(of: request) else { return nil }
        return "Requests of tier \(policy.tier(of: request)) are decided on ScopeGate's approval page, after signing in at the identity provider (a sign-in at most \(ScopeGateConfiguration.text(stepUp.maxAge)) old)."
    }

    /// "1 of 2 approvals" while a request that needs several waits; `nil` where one vote decides.
    func tally(naming actor: (String) -> String) -> String? {
        guard request.state == .pending, quorum.approve > 1 || quorum.deny > 1 else { return nil }
        let approving = votes.filter(\.approves)
        var text = "\(approving.count) of \(quorum.approve) approvals"
        if !approving.isEmpty { text += ": " + approving.map { actor($0.voter) }.joined(separator: ", ") }
        let denying = votes.filter { !$0.approves }
        if !denying.isEmpty { text += "; \(denying.count) of \(quorum.deny) denials: " + denying.map { actor($0.voter) }.joined(separator: ", ") }
        return text
    }

    /// The headline: what the request is now.
    var headline: String { request.headline }

    /// Whether approving asks the approver to confirm first (one of the scopes is in a confirming tier).
    var needsConfirmation: Bool {
        request.scopes.tokens.contains { confirmTiers.contains(policy.rule(for: $0, clientID: request.clientID).tier) }
    }

    /// The scopes approvers may tick to approve only some, when the request can be approved in part
    /// and the platform can show them all (`limit` choices at most, each value at most `valueLimit`).
    func partialChoices(limit: Int, valueLimit: Int) -> [String]? {
        let scopes = request.scopes.tokens
        guard request.state == .pending, request.isNarrowable, scopes.count <= limit,
            scopes.allSatisfy({ $0.utf8.count <= valueLimit })
        else { return nil }
        return scopes
    }

    /// What a partial approval left out, as the outcome line says it: `nil` for a whole approval.
    var partialOutcome: (approved: [String], withheld: [String])? {
        guard request.decision?.scopes != nil else { return nil }
        return (request.approvedScopes.tokens, request.withheldScopes.tokens)
    }

    /// The app's name as the configuration gives it, else its client id.
    var appName: String { policy.clients[request.clientID]?.name ?? request.clientID }

    /// The app's owner, when the configuration names one.
    var owner: String? { policy.clients[request.clientID]?.owner }

    /// A scope's tier and description under the policy.
    func rule(for scope: String) -> Policy.ScopeRule { policy.rule(for: scope, clientID: request.clientID) }
}

extension ApprovalRequest {
    /// What the request is now, as messages and pages headline it.
    var headline: String {
        switch state {
        case .pending: "Approval requested"
        case .approved: "Approved"
        case .approvedOnce: "Approved once"
        case .denied: "Denied"
        case .expired: "Expired unanswered"
        }
    }
}

/// What became of a click from a chat platform: tests read it, metrics count it, the platform sees
/// only its acknowledgement.
enum InteractionOutcome: Equatable, Sendable {
    case decided(ApprovalRequest.State)
    case replay
    case ignored(String)
    case refused(String)

    /// The `outcome` label of `scopegate_chat_interactions_total`.
    var label: String {
        switch self {
        case .decided: "decided"
        case .replay: "replay"
        case .ignored: "ignored"
        case .refused: "refused"
        }
    }
}

/// One chat platform as the outbox delivers to it: post a request's message to a channel, and later
/// replace it with the request's newer content. Implementations sort every failure into a
/// `ChatDeliveryFailure`; they never decide anything.
protocol ChatPlatform: Sendable {
    /// The platform's name in the outbox, routes, metrics and actors (`slack`, `teams`).
    var name: String { get }
    /// Posts a new message; returns the platform's message id and the channel to update it in.
    func post(_ content: ApprovalMessageContent, to channel: String) async throws(ChatDeliveryFailure)
        -> (messageID: String, channel: String)
    /// Replaces a posted message's content.
    func update(messageID: String, in channel: String, with content: ApprovalMessageContent) async throws(ChatDeliveryFailure)
    /// Reminds the approvers of a request still unanswered: a short message that notifies, next to the
    /// posted one (in its thread where the platform has threads).
    func remind(messageID: String, in channel: String, with content: ApprovalMessageContent) async throws(ChatDeliveryFailure)
    /// Posts a short plain-text notice (to an app's owner, to a requester) to a channel or person.
    func notify(_ text: String, to channel: String) async throws(ChatDeliveryFailure)
    /// Whether the platform can message a person found by email address (`member(byEmail:)`).
    var reachesPeopleByEmail: Bool { get }
    /// Where to tell the person with this (verified) email address directly, if the platform knows
    /// them and can reach them; `nil` otherwise.
    func member(byEmail email: String) async throws(ChatDeliveryFailure) -> String?
}

extension ApprovalMessageContent {
    /// The reminder's text: plain, everything from the request clipped and control-free.
    var reminder: String {
        let waited = Int(Date().timeIntervalSince(request.createdAt) / 60)
        return "Reminder: \(ChatText.clipped(appName, to: 200)) has waited \(waited) min for a decision on "
            + ChatText.clipped(request.scopes.tokens.joined(separator: " "), to: 500) + " (request \(request.id))."
    }
}

/// Plain text for messages, cards and pages, whatever the platform: never formatted, never a mention.
enum ChatText {
    /// Removes control characters (newlines become spaces) and cuts to `limit` characters.
    static func clipped(_ text: String, to limit: Int, keepNewlines: Bool = false) -> String {
        let cleaned = String(
            String.UnicodeScalarView(
                text.unicodeScalars.compactMap { scalar in
                    if keepNewlines, scalar == "\n" { return scalar }
                    if scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format {
                        return scalar == "\n" || scalar == "\t" ? " " : nil
                    }
                    return scalar
                }))
        return cleaned.count <= limit ? cleaned : String(cleaned.prefix(limit - 1)) + "…"
    }

    /// An actor as approvers read it.
    static func actor(_ actor: String) -> String {
        if actor.hasPrefix("teams:") { return "a Teams approver (\(actor.split(separator: "/").last ?? ""))" }
        if actor.hasPrefix("slack:") { return "a Slack approver (\(actor.split(separator: "/").last ?? ""))" }
        if actor.hasPrefix("cli:") { return String(actor.dropFirst(4)) + " (command line)" }
        if actor.hasPrefix("page:") { return String(actor.dropFirst(5)) + " (approval page)" }
        if actor.hasPrefix("admin:") { return "the admin API (" + String(actor.dropFirst(6)) + ")" }
        return actor
    }

    static func date(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: " UTC")
    }
}
