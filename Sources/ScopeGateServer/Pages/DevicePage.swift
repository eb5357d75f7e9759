import Foundation
import ScopeGateCore

/// ScopeGate's verification page for held device requests (RFC 8628 §3.3): the user types the code the
/// device shows, sees which app asks for what and whether approvers have decided, and, once the request
/// is released, is sent on to the IdP with the IdP's own user code. Works without JavaScript: while
/// nothing is final, the page refreshes itself.
struct DevicePage {
    /// What the page shows.
    enum Content {
        /// The form, with an optional notice (a code that matched nothing).
        case form(notice: String?)
        /// A held request and where it stands; `upstream` once released to the IdP.
        case hold(Hold, ApprovalRequest, upstream: DeviceRegistry.Upstream?)
    }

    let content: Content
    let policy: Policy
    let pagePath: String
    let nonce: String

    func render() -> String {
        switch content {
        case .form(let notice):
            let body = """
                <h1>Connect a device</h1>
                <p>Enter the code your device shows.</p>
                \(notice.map { "<p role=\"alert\">\(HTML.escape($0))</p>" } ?? "")
                <form method="get" action="\(HTML.escape(pagePath))">
                <label for="user_code">Code</label>
                <input id="user_code" name="user_code" autocomplete="off" autocapitalize="characters" spellcheck="false" required>
                <button type="submit">Continue</button>
                </form>
                """
            return HTML.page(title: "Connect a device", nonce: nonce, body: body)
        case .hold(let hold, let request, let upstream):
            let name = policy.displayName(of: hold.clientID)
            let items = WaitingPage.permissionItems(hold: hold, request: request, policy: policy)
            var refresh = false
            let status: String
            switch request.state {
            case .pending:
                refresh = true
                status = "Waiting for the organisation's approvers. This page refreshes itself."
            case .denied:
                status = "The organisation's approvers denied this request. The device will not be connected."
            case .expired:
                status = "Nobody approved this request in time. Start again on the device."
            case .approved, .approvedOnce:
                if upstream == nil {
                    refresh = true
                    status = "Approved. Waiting for the device to continue; this page refreshes itself."
                } else {
                    status = "Approved. Finish at the identity provider."
                }
            }
            var next = ""
            if let upstream {
                let link = upstream.verificationURIComplete ?? upstream.verificationURI
                next = """
                    <p>Enter the code <strong><code>\(HTML.escape(upstream.userCode))</code></strong> at the identity provider.</p>
                    <p><a class="button" href="\(HTML.escape(link))">Continue to the identity provider</a></p>
                    """
            }
            let body = """
                <h1>Connect a device</h1>
                <p><strong>\(HTML.escape(name))</strong> asks for:</p>
                <ul class="scopes" aria-label="Requested permissions">\(items)</ul>
                <p class="status" role="status">\(HTML.escape(status)) Request <code>\(HTML.escape(request.id))</code>.</p>
                \(next)
                """
            let head = refresh ? "<meta http-equiv=\"refresh\" content=\"5\">" : ""
            return HTML.page(title: "Connect a device — \(name)", nonce: nonce, head: head, body: body)
        }
    }
}
