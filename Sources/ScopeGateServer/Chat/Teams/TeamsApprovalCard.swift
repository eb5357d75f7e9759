import Foundation
import ScopeGateCore

/// The Adaptive Card (schema 1.5) for one approval request in Teams: what the Slack message shows,
/// with Approve / Approve once / Deny as `Action.Execute` (Universal Actions), and, once decided, the
/// outcome in place of the actions. Every value that came from a request or the configuration is a
/// `TextRun`, which Teams renders as plain text: no Markdown, links or mentions can be formed.
struct TeamsApprovalCard {
    /// The verbs of the card's actions; `data.request` carries the approval request's id.
    enum Verb: String, CaseIterable {
        case approve = "scopegate_approve"
        case approveOnce = "scopegate_approve_once"
        case deny = "scopegate_deny"
    }

    let content: ApprovalMessageContent
    /// The id of the duration input; Universal Actions send its value with the action's data.
    static let durationInput = "duration"
    /// The id of the scope choice set (a partial approval): a multi-select choice set sends the chosen
    /// values joined by commas, so scopes with a comma are never offered that way.
    static let scopesInput = "scopes"

    init(_ content: ApprovalMessageContent) { self.content = content }

    private var request: ApprovalRequest { content.request }

    /// The message activity carrying the card (with `id` when it replaces a posted one).
    func activity(id: String?) -> JSONValue {
        var members: [(String, JSONValue)] = [("type", "message")]
        if let id { members.append(("id", .string(id))) }
        members.append(("summary", .string(summary)))
        members.append((
            "attachments", [["contentType": "application/vnd.microsoft.card.adaptive", "content": card]]
        ))
        return .object(members)
    }

    /// The message a Workflows webhook posts: the card at schema 1.4 (what Workflows renders), whose
    /// only action opens ScopeGate's approval page; decisions are made there, after signing in.
    func workflowActivity(approvalURL: String) -> JSONValue {
        guard case .object(var members) = card else { return card }
        members = members.filter { $0.0 != "actions" }.map { $0.0 == "version" ? ("version", "1.4") : $0 }
        if request.state == .pending {
            members.append(("actions", [["type": "Action.OpenUrl", "title": "Review and decide", "url": .string(approvalURL)]]))
        }
        return [
            "type": "message",
            "attachments": [["contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": .null, "content": .object(members)]],
        ]
    }

    /// One line for notifications.
    var summary: String {
        "\(content.headline): \(ChatText.clipped(content.appName, to: 200)) asks for "
            + ChatText.clipped(request.scopes.tokens.joined(separator: " "), to: 500)
    }

    /// The card.
    var card: JSONValue {
        var body: [JSONValue] = [
            ["type": "TextBlock", "text": .string(content.headline), "weight": "Bolder", "size": "Large", "wrap": true],
            Self.fact("App", ChatText.clipped(content.appName, to: 200)),
            Self.fact("Client id", ChatText.clipped(request.clientID, to: 200), monospace: true),
            Self.fact("Request", request.id, monospace: true),
            request.state == .pending
                ? Self.fact("Expires", ChatText.date(request.expiresAt)) : Self.fact("Opened", ChatText.date(request.createdAt)),
        ]
        if request.state == .pending {
            body.append(Self.fact("Waiting", "\(content.waiting) \(content.waiting == 1 ? "request" : "requests")"))
        }
        if let requester = content.requesterText { body.append(Self.fact("Requester", requester)) }
        if let tally = content.tally(naming: ChatText.actor) { body.append(Self.fact("Votes", tally)) }
        body.append(Self.fact("Route", content.routeName))
        if let escalation = request.escalation {
            body.append(Self.fact("Escalated", "unanswered, to route \(escalation.route) at \(ChatText.date(escalation.at))"))
        }
        if let owner = content.owner { body.append(Self.fact("Owner", ChatText.clipped(owner, to: 300))) }
        if let standing = content.standingText { body.append(Self.fact("App", standing)) }
        body.append(Self.heading("New scopes"))
        body += scopeLines(request.scopes.tokens)
        if !request.alreadyGranted.isEmpty {
            body.append(Self.heading("Already granted"))
            body += scopeLines(request.alreadyGranted.tokens)
        }
        if let newest = content.justifications.first {
            body.append(Self.heading("Why, in the requester's words"))
            var text = ChatText.clipped(newest, to: 1500, keepNewlines: true)
            if content.justifications.count > 1 { text += "\n(\(content.justifications.count - 1) more from other sign-ins)" }
            body.append(["type": "RichTextBlock", "inlines": [Self.run(text)]])
        } else if request.state == .pending {
            body.append(["type": "RichTextBlock", "inlines": [Self.run("The requester has not given a reason yet.", subtle: true)]])
        }
        var members: [(String, JSONValue)] = [
            ("type", "AdaptiveCard"), ("$schema", "http://adaptivecards.io/schemas/adaptive-card.json"), ("version", "1.5"),
        ]
        if let url = content.stepUpURL, let notice = content.stepUpNotice {
            body.append(["type": "RichTextBlock", "inlines": [Self.run(notice, subtle: true)]])
            members.append(("body", .array(body)))
            members.append(("actions", [["type": "Action.OpenUrl", "title": "Sign in to decide", "url": .string(url)]]))
        } else if request.state == .pending {
            if let choices = content.partialChoices(limit: 50, valueLimit: 200), choices.allSatisfy({ !$0.contains(",") }) {
                body.append([
                    "type": "Input.ChoiceSet", "id": .string(Self.scopesInput), "label": "Scopes to approve (untick to leave out)",
                    "isMultiSelect": true, "style": "expanded", "isRequired": true,
                    "errorMessage": "Tick at least one scope, or deny the request.",
                    "value": .string(choices.joined(separator: ",")),
                    "choices": .array(choices.map { ["title": .string($0), "value": .string($0)] }),
                ])
            }
            let durations = content.policy.grantDurations(of: request)
            if content.policy.allowedApprovals(of: request).standing, !durations.isEmpty {
                let choices: [JSONValue] = durations.map { duration in
                    let text = ScopeGateConfiguration.text(duration)
                    return ["title": .string("Grant for " + text), "value": .string(text)]
                }
                body.append([
                    "type": "Input.ChoiceSet", "id": .string(Self.durationInput), "label": "Approve grants for",
                    "style": "compact", "isRequired": true, "value": .string(ScopeGateConfiguration.text(durations[0])),
                    "choices": .array(choices),
                ])
            }
            members.append(("body", .array(body)))
            members.append(("actions", .array(actions)))
        } else {
            body.append(["type": "RichTextBlock", "separator": true, "inlines": .array(outcome)])
            members.append(("body", .array(body)))
        }
        return .object(members)
    }

    /// One block per scope, new ones and granted ones alike: the scope, its tier and its description.
    private func scopeLines(_ scopes: [String]) -> [JSONValue] {
        var lines: [JSONValue] = []
        for (index, scope) in scopes.enumerated() {
            if index == 50 {
                lines.append(["type": "RichTextBlock", "inlines": [Self.run("… and \(scopes.count - 50) more", subtle: true)]])
                break
            }
            let rule = content.rule(for: scope)
            var inlines: [JSONValue] = [
                Self.run(ChatText.clipped(scope, to: 200), monospace: true), Self.run(" (\(rule.tier))", subtle: true),
            ]
            if let description = rule.description { inlines.append(Self.run(" — " + ChatText.clipped(description, to: 300))) }
            lines.append(["type": "RichTextBlock", "spacing": "Small", "inlines": .array(inlines)])
        }
        return lines
    }

    /// Approve, Approve once and Deny; where Slack asks to confirm, a `ShowCard` asks first.
    private var actions: [JSONValue] {
        let waiting = content.waiting
        let critical = content.needsConfirmation
        let approve = execute(.approve, title: "Approve", style: "positive")
        let onceTitle = waiting > 1 ? "Approve once (all \(waiting))" : "Approve once"
        let once = execute(.approveOnce, title: onceTitle, style: nil)
        let allowed = content.policy.allowedApprovals(of: request)
        var actions: [JSONValue] = []
        if allowed.standing {
            actions.append(
                critical
                    ? confirmation(
                        title: "Approve", text: "These scopes are critical. The app gets them as soon as you confirm.",
                        action: execute(.approve, title: "Confirm: approve", style: "positive"))
                    : approve)
        }
        if !allowed.once {
            // The tier grants standing approvals only.
        } else if critical || waiting > 1 {
            var text = critical ? "These scopes are critical. " : ""
            text += waiting > 1
                ? "\(waiting) sign-ins wait on this request; each continues once, and none gets a standing grant."
                : "The app gets them once, as soon as you confirm."
            actions.append(
                confirmation(title: onceTitle, text: text, action: execute(.approveOnce, title: "Confirm: approve once", style: nil)))
        } else {
            actions.append(once)
        }
        actions.append(
            confirmation(
                title: "Deny", text: "The app's sign-in ends with access_denied.",
                action: execute(.deny, title: "Confirm: deny", style: "destructive")))
        return actions
    }

    private func execute(_ verb: Verb, title: String, style: String?) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("type", "Action.Execute"), ("title", .string(title)), ("verb", .string(verb.rawValue)),
            ("data", ["request": .string(request.id)]),
        ]
        if let style { members.append(("style", .string(style))) }
        return .object(members)
    }

    private func confirmation(title: String, text: String, action: JSONValue) -> JSONValue {
        [
            "type": "Action.ShowCard", "title": .string(title),
            "card": [
                "type": "AdaptiveCard", "version": "1.5",
                "body": [["type": "TextBlock", "text": .string(text), "wrap": true]],
                "actions": [action],
            ],
        ]
    }

    /// Who decided and when.
    private var outcome: [JSONValue] {
        guard let decision = request.decision else { return [Self.run(content.headline)] }
        let when = ChatText.date(decision.at)
        let who = ChatText.actor(decision.actor)
        let part = content.partialOutcome.map { ", only \($0.approved.joined(separator: " ")); not \($0.withheld.joined(separator: " "))" } ?? ""
        switch decision.outcome {
        case .expired: return [Self.run("Expired", bold: true), Self.run(" unanswered at \(when).")]
        case .denied: return [Self.run("Denied", bold: true), Self.run(" by \(who) at \(when).")]
        case .approvedOnce:
            return [Self.run("Approved once", bold: true), Self.run(" by \(who) at \(when)\(part). No grant stands.")]
        case .approved: return [Self.run("Approved", bold: true), Self.run(" by \(who) at \(when)\(part).")]
        case .pending: return [Self.run(content.headline)]
        }
    }

    static func run(_ text: String, bold: Bool = false, subtle: Bool = false, monospace: Bool = false) -> JSONValue {
        var members: [(String, JSONValue)] = [("type", "TextRun"), ("text", .string(text))]
        if bold { members.append(("weight", "Bolder")) }
        if subtle { members.append(("isSubtle", true)) }
        if monospace { members.append(("fontType", "Monospace")) }
        return .object(members)
    }

    static func fact(_ label: String, _ value: String, monospace: Bool = false) -> JSONValue {
        ["type": "RichTextBlock", "spacing": "Small", "inlines": [run(label + ": ", bold: true), run(value, monospace: monospace)]]
    }

    static func heading(_ text: String) -> JSONValue {
        ["type": "TextBlock", "text": .string(text), "weight": "Bolder", "spacing": "Medium", "wrap": true]
    }
}
