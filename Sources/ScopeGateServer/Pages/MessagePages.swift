/// The small pages: errors, and the self-submitting forms that continue a POST request or deliver a
/// `form_post` response.
enum MessagePages {
    static func error(title: String, message: String, code: String? = nil, nonce: String) -> String {
        let codeLine = code.map { "<p class=\"muted\">Error code: <code>\(HTML.escape($0))</code></p>" } ?? ""
        return HTML.page(
            title: title, nonce: nonce,
            body: "<h1>\(HTML.escape(title))</h1><p>\(HTML.escape(message))</p>\(codeLine)")
    }

    /// A form that posts `fields` to `action`, submitted by script or, without JavaScript, by a click.
    static func autoPost(title: String, message: String, action: String, fields: [(String, String)], nonce: String)
        -> String
    {
        let inputs = fields.map {
            "<input type=\"hidden\" name=\"\(HTML.escape($0.0))\" value=\"\(HTML.escape($0.1))\">"
        }.joined()
        let body = """
            <h1>\(HTML.escape(title))</h1>
            <p>\(HTML.escape(message))</p>
            <form id="continue" method="post" action="\(HTML.escape(action))">\(inputs)
            <button type="submit">Continue</button></form>
            <script nonce="\(nonce)">document.getElementById('continue').submit();</script>
            """
        return HTML.page(title: title, nonce: nonce, body: body)
    }
}
