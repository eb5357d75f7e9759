import Foundation
import ScopeGateCore

/// The Slack message for one approval request: what approvers need to decide, and, once decided,
/// the outcome in place of the buttons. Everything that came from a request or the configuration is
/// either `plain_text` or escaped.
struct SlackApprovalMessage {
    /// Action ids of the buttons; the button's value is the approval request's id.
    enum Action: String, CaseIterable {
        case approve = "scopegate_approve"
        case approveOnce = "scopegate_approve_once"
        case deny = "scopegate_deny"
    }

    /// The action id of the duration menu; its choice comes with the Approve click's `state`.
    static let durationAction = "scopegate_duration"

    /// The action id of the scope checkboxes (a partial approval); the ticked ones come with the
    /// Approve click's `state`. Slack shows at most 10 checkboxes, each value at most 150 characters.
    static let scopesAction = "scopegate_scopes"

    /// The action id of the link button to the approval page (step-up tiers); Slack reports its clicks,
    /// which decide nothing.
    static let openPageAction = "scopegate_open_page"

    /// What the message shows.
    let content: ApprovalMessageContent

    init(_ content: ApprovalMessageContent) { self.content = content }

    init(
        request: ApprovalRequest, policy: Policy, justifications: [String], routeName: String, confirmTiers: Set<String>,
        waiting: Int = 0
    ) {
        self.init(
            ApprovalMessageContent(
                request: request, policy: policy, justifications: justifications, routeName: routeName,
                confirmTiers: confirmTiers, waiting: waiting))
    }

    private var request: ApprovalRequest { content.request }
    private var policy: Policy { content.policy }
    private var justifications: [String] { content.justifications }
    private var routeName: String { content.routeName }
    private var waiting: Int { content.waiting }
    private var headline: String { content.headline }
    private var needsConfirmation: Bool { content.needsConfirmation }

    /// The `text` (notifications, screen readers) and `blocks` of `chat.postMessage` / `chat.update`.
    var body: (text: String, blocks: JSONValue) {
        let client = policy.clients[request.clientID]
        let name = client?.name ?? request.clientID
        var fields: [JSONValue] = [
            SlackText.markdown("*App*\n\(SlackText.escaped(ChatText.clipped(name, to: 200)))"),
            SlackText.markdown("*Client id*\n`\(SlackText.escaped(ChatText.clipped(request.clientID, to: 200)))`"),
            SlackText.markdown("*Request*\n`\(request.id)`"),
            SlackText.markdown(
                request.state == .pending
                    ? "*Expires*\n\(Self.date(request.expiresAt))" : "*Opened*\n\(Self.date(request.createdAt))"),
        ]
        if request.state == .pending {
            fields.append(SlackText.markdown("*Waiting*\n\(waiting) \(waiting == 1 ? "request" : "requests")"))
        }
        if let requester = content.requesterText {
            fields.append(SlackText.markdown("*Requester*\n" + SlackText.escaped(requester)))
        }
        if let tally = content.tally(naming: Self.actor) {
            fields.append(SlackText.markdown("*Votes*\n" + tally))
        }
        var blocks: [JSONValue] = [
            ["type": "header", "text": SlackText.plain(headline, limit: 150)],
            ["type": "section", "fields": .array(fields)],
        ]
        var context: [JSONValue] = [SlackText.plain("Route: " + routeName, limit: 200)]
        if let escalation = request.escalation {
            context.append(SlackText.plain("Escalated unanswered to route " + escalation.route + " at " + ChatText.date(escalation.at), limit: 300))
        }
        if let owner = client?.owner { context.append(SlackText.plain("Owner: " + owner, limit: 300)) }
        if let standing = content.standingText { context.append(SlackText.plain("App: " + standing, limit: 300)) }
        blocks.append(["type": "context", "elements": .array(context)])
        blocks.append(["type": "section", "text": SlackText.markdown(scopeList)])
        if let newest = justifications.first {
            var text = "Why, in the requester's words:\n" + ChatText.clipped(newest, to: 1500, keepNewlines: true)
            if justifications.count > 1 { text += "\n(\(justifications.count - 1) more from other sign-ins)" }
            blocks.append(["type": "section", "text": SlackText.plain(text)])
        } else if request.state == .pending {
            blocks.append(["type": "context", "elements": [SlackText.plain("The requester has not given a reason yet.")]])
        }
        blocks.append(["type": "divider"])
        if let url = content.stepUpURL, let notice = content.stepUpNotice {
            blocks.append(["type": "context", "elements": [SlackText.plain(notice)]])
            blocks.append([
                "type": "actions", "block_id": "scopegate_decision",
                "elements": [
                    [
                        "type": "button", "action_id": .string(Self.openPageAction), "text": SlackText.plain("Sign in to decide"),
                        "style": "primary", "url": .string(url),
                    ]
                ],
            ])
        } else if request.state == .pending {
            if let choices = content.partialChoices(limit: 10, valueLimit: 150) {
                let options: [JSONValue] = choices.map { ["text": SlackText.plain(ChatText.clipped($0, to: 75), limit: 75), "value": .string($0)] }
                blocks.append(["type": "context", "elements": [SlackText.plain("Untick the scopes you do not approve; Approve then grants only the ticked ones.")]])
                blocks.append([
                    "type": "actions", "block_id": "scopegate_scopes",
                    "elements": [["type": "checkboxes", "action_id": .string(Self.scopesAction), "options": .array(options), "initial_options": .array(options)]],
                ])
            }
            blocks.append(["type": "actions", "block_id": .string("scopegate_decision"), "elements": .array(buttons)])
        } else {
            blocks.append(["type": "section", "text": SlackText.markdown(outcome)])
        }
        let text = "\(headline): \(SlackText.escaped(ChatText.clipped(name, to: 200))) asks for "
            + SlackText.escaped(ChatText.clipped(request.scopes.tokens.joined(separator: " "), to: 500))
        return (text, .array(blocks))
    }



    /// One line per scope: new ones first, then those already granted, cut to fit one section.
    private var scopeList: String {
        var lines: [String] = ["*New scopes*"]
        for scope in request.scopes.tokens { lines.append(line(scope)) }
        if !request.alreadyGranted.isEmpty {
            lines.append("*Already granted*")
            for scope in request.alreadyGranted.tokens { lines.append(line(scope)) }
        }
        var text = ""
        for (index, line) in lines.enumerated() {
            if text.count + line.count + 1 > 2900 {
                text += "\n… and \(lines.count - index) more"
                break
            }
            text += (text.isEmpty ? "" : "\n") + line
        }
        return text
    }

    private func line(_ scope: String) -> String {
        let rule = policy.rule(for: scope, clientID: request.clientID)
        var line = "• `\(SlackText.escaped(ChatText.clipped(scope, to: 200)))` (\(SlackText.escaped(rule.tier)))"
        if let description = rule.description {
            line += " — " + SlackText.escaped(ChatText.clipped(description, to: 300))
        }
        return line
    }

    private var buttons: [JSONValue] {
        var approve: [(String, JSONValue)] = [
            ("type", "button"), ("action_id", .string(Action.approve.rawValue)),
            ("text", SlackText.plain("Approve")), ("style", "primary"), ("value", .string(request.id)),
        ]
        // Approve once releases every request waiting on this question: with several, the button says
        // how many, and the approver confirms releasing them all.
        var once: [(String, JSONValue)] = [
            ("type", "button"), ("action_id", .string(Action.approveOnce.rawValue)),
            ("text", SlackText.plain(waiting > 1 ? "Approve once (all \(waiting))" : "Approve once")), ("value", .string(request.id)),
        ]
        if needsConfirmation {
            let confirm = Self.confirmation(
                title: "Approve critical scopes?",
                text: "These scopes are critical. The app gets them as soon as you confirm.", button: "Approve", danger: false)
            approve.append(("confirm", confirm))
        }
        if needsConfirmation || waiting > 1 {
            var text = needsConfirmation ? "These scopes are critical. " : ""
            text += waiting > 1
                ? "\(waiting) sign-ins wait on this request; each continues once, and none gets a standing grant."
                : "The app gets them once, as soon as you confirm."
            once.append(
                ("confirm", Self.confirmation(title: waiting > 1 ? "Release all \(waiting)?" : "Approve critical scopes?", text: text, button: "Approve once", danger: false)))
        }
        let deny: JSONValue = .object([
            ("type", "button"), ("action_id", .string(Action.deny.rawValue)), ("text", SlackText.plain("Deny")),
            ("style", "danger"), ("value", .string(request.id)),
            (
                "confirm",
                Self.confirmation(
                    title: "Deny this request?", text: "The app's sign-in ends with access_denied.", button: "Deny",
                    danger: true)
            ),
        ])
        // Only the approvals the request's tier allows are offered, and the durations it offers for a
        // standing grant, the shortest first.
        let allowed = policy.allowedApprovals(of: request)
        var elements: [JSONValue] = (allowed.standing ? [.object(approve)] : []) + (allowed.once ? [.object(once)] : []) + [deny]
        let durations = policy.grantDurations(of: request)
        if allowed.standing, !durations.isEmpty {
            let options: [JSONValue] = durations.map { duration in
                let text = ScopeGateConfiguration.text(duration)
                return ["text": SlackText.plain("Grant for " + text, limit: 75), "value": .string(text)]
            }
            elements.append([
                "type": "static_select", "action_id": .string(Self.durationAction),
                "placeholder": SlackText.plain("Grant for…", limit: 150), "options": .array(options), "initial_option": options[0],
            ])
        }
        return elements
    }

    private static func confirmation(title: String, text: String, button: String, danger: Bool) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("title", SlackText.plain(title, limit: 100)), ("text", SlackText.plain(text, limit: 300)),
            ("confirm", SlackText.plain(button, limit: 30)), ("deny", SlackText.plain("Cancel", limit: 30)),
        ]
        if danger { members.append(("style", "danger")) }
        return .object(members)
    }

    /// Who decided and when, in place of the buttons.
    private var outcome: String {
        guard let decision = request.decision else { return headline }
        let part = content.partialOutcome.map { part in
            let list = { (scopes: [String]) in scopes.map { "`\(SlackText.escaped(ChatText.clipped($0, to: 200)))`" }.joined(separator: " ") }
            return ", only \(list(part.approved)); not \(list(part.withheld))"
        } ?? ""
        let when = Self.date(decision.at)
        let who = Self.actor(decision.actor)
        switch decision.outcome {
        case .expired: return ":hourglass: *Expired* unanswered at \(when)."
        case .denied: return ":no_entry: *Denied* by \(who) at \(when)."
        case .approvedOnce: return ":white_check_mark: *Approved once* by \(who) at \(when)\(part). No grant stands."
        case .approved: return ":white_check_mark: *Approved* by \(who) at \(when)\(part)."
        case .pending: return headline
        }
    }

    /// An actor as approvers read it: a Slack approver as a mention (ids ScopeGate itself stored),
    /// anyone else by name, escaped.
    static func actor(_ actor: String) -> String {
        if actor.hasPrefix("slack:"), let user = actor.split(separator: "/").last,
            user.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) })
        {
            return "<@\(user)>"
        }
        if actor.hasPrefix("cli:") { return SlackText.escaped(String(actor.dropFirst(4))) + " (command line)" }
        if actor.hasPrefix("page:") { return SlackText.escaped(String(actor.dropFirst(5))) + " (approval page)" }
        if actor.hasPrefix("admin:") { return "the admin API (" + SlackText.escaped(String(actor.dropFirst(6))) + ")" }
        return SlackText.escaped(actor)
    }

    /// A date Slack shows in the reader's time zone, with a UTC fallback.
    static func date(_ date: Date) -> String {
        let seconds = Int(date.timeIntervalSince1970)
        let fallback = ISO8601DateFormatter().string(from: date)
        return "<!date^\(seconds)^{date_short_pretty} at {time}|\(fallback)>"
    }
}
