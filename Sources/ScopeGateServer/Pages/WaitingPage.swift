import Foundation
import ScopeGateCore

/// The page a held browser sees while approvers decide.
///
/// It works without JavaScript (a `<noscript>` refresh and a reload both move it on) and, with
/// JavaScript, long-polls the hold's status and moves on within a second of a decision.
struct WaitingPage {
    let hold: Hold
    let request: ApprovalRequest
    let policy: Policy
    let pageURL: String
    let statusURL: String
    let justificationURL: String
    let nonce: String
    let notice: String?
    /// Who was asked, when it escalates and the votes so far, in words; `nil` without routes.
    var asked: String? = nil

    /// Who was asked and what happens next, for the requester: the route and where it reaches its
    /// approvers (platforms, not channel ids), the escalation time, and the votes so far.
    static func asked(_ request: ApprovalRequest, policy: Policy, routing: Routing?, votes: [Vote]) -> String? {
        guard let routing else { return nil }
        let routes = routing.routes(for: request, policy: policy)
        func places(_ route: Route) -> String {
            let names = route.reaches.keys.sorted().map { ["slack": "Slack", "teams": "Microsoft Teams", ChatReach.approvalPage: "ScopeGate's approval page"][$0] ?? $0 }
            return names.joined(separator: " and ")
        }
        var text = "The approvers of the \(routes[0].name) route were asked (\(places(routes[0])))."
        if routes.count > 1 {
            text += " Nobody answered in time, so the approvers of the \(routes[1].name) route were asked too (\(places(routes[1])))."
        } else if request.escalatedTo == nil, let escalation = policy.tiers[policy.tier(of: request)]?.escalation {
            text += " If nobody answers by \(format(request.createdAt.addingTimeInterval(escalation.after.seconds))), the approvers of the \(escalation.route) route are asked too."
        }
        let quorum = policy.quorum(of: request)
        if quorum.approve > 1 {
            text += " It needs \(quorum.approve) approvers to agree; \(votes.filter(\.approves).count) have so far."
        }
        return text
    }

    func render() -> String {
        let client = policy.clients[hold.clientID]
        let name = policy.displayName(of: hold.clientID)
        let scopes = Self.permissionItems(hold: hold, request: request, policy: policy)
        let justification = hold.justification ?? ""
        let noticeHTML = notice.map { "<p role=\"alert\">\(HTML.escape($0))</p>" } ?? ""
        let body = """
            <h1>Waiting for approval</h1>
            <p><strong>\(HTML.escape(name))</strong> \(client?.owner.map { "<span class=\"muted\">(owned by \(HTML.escape($0)))</span>" } ?? "")
            asks for access that your organisation has not approved yet. An approver has been asked; this page
            moves on by itself as soon as they decide.</p>
            <ul class="scopes" aria-label="Requested permissions">\(scopes)</ul>
            \(asked.map { "<p class=\"muted\" id=\"asked\">\(HTML.escape($0))</p>" } ?? "")
            \(hold.requester.map { "<p class=\"muted\" id=\"requester\">The approvers see that you, \(HTML.escape($0.label)), are asking.</p>" } ?? "")
            <p class="status" id="status" role="status" aria-live="polite">Waiting for a decision. Request
            <code>\(HTML.escape(request.id))</code>, open until \(HTML.escape(Self.format(request.expiresAt))).</p>
            \(noticeHTML)
            <form method="post" action="\(HTML.escape(justificationURL))">
            <label for="justification">Why do you need this? (shown to the approvers)</label>
            <textarea id="justification" name="justification" maxlength="\(GateService.maximumJustificationLength)">\(HTML.escape(justification))</textarea>
            <button type="submit">Send justification</button>
            </form>
            <p class="muted"><a href="\(HTML.escape(pageURL))">Reload</a> to check for a decision.</p>
            <script nonce="\(nonce)">\(script)</script>
            """
        let head = "<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"
        return HTML.page(title: "Waiting for approval — \(name)", nonce: nonce, head: head, body: body)
    }

    /// The requested permissions as list items: tier, name, whether it needs approval, description.
    static func permissionItems(hold: Hold, request: ApprovalRequest, policy: Policy) -> String {
        var items = ""
        for scope in hold.requestedScopes {
            let rule = policy.rule(for: scope, clientID: hold.clientID)
            let state = request.scopes.contains(scope) ? "needs approval" : "already approved"
            items += """
                <li><span class="tier tier-\(HTML.escape(rule.tier))">\(HTML.escape(rule.tier))</span>\
                <code>\(HTML.escape(scope))</code> <span class="muted">(\(state))</span>\
                \(rule.description.map { "<br>\(HTML.escape($0))" } ?? "")</li>
                """
        }
        return items
    }

    private var script: String {
        """
        (function(){
          var status=\(Self.jsString(statusURL)), page=\(Self.jsString(pageURL));
          var el=document.getElementById('status');
          function later(ms){return new Promise(function(r){setTimeout(r,ms);});}
          async function poll(){
            for(;;){
              try{
                var r=await fetch(status,{cache:'no-store',credentials:'same-origin'});
                if(r.ok){var s=await r.json(); if(s.state!=='pending'){el.textContent='Decided: '+s.state+'. Continuing…'; location.replace(page); return;}}
                else{await later(2000);}
              }catch(e){await later(2000);}
            }
          }
          poll();
        })();
        """
    }

    static func jsString(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
        let array = String(decoding: data, as: UTF8.self)
        return String(array.dropFirst().dropLast()).replacingOccurrences(of: "<", with: "\\u003c")
    }

    static func format(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false).timeZone(separator: .omitted))
    }
}
