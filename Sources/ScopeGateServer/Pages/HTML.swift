/// HTML building blocks. Every value that came from a request or the store passes through `escape`.
enum HTML {
    /// Text escaped for element content and double-quoted attribute values.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                if scalar.value < 0x20, scalar != "\n", scalar != "\t" { out += "&#xFFFD;" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }

    /// A whole page: self-contained, styled inline under the given CSP nonce.
    static func page(title: String, nonce: String, head: String = "", body: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="same-origin">
        <title>\(escape(title))</title>
        <style nonce="\(nonce)">\(stylesheet)</style>
        \(head)
        </head>
        <body>
        <main>
        \(body)
        </main>
        </body>
        </html>
        """
    }

    static let stylesheet = """
        :root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--bg:#f6f8fa;--card:#fff;--accent:#0b57d0;--line:#d0d7de}
        @media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9da7b3;--bg:#0d1117;--card:#161b22;--accent:#6ea8fe;--line:#30363d}}
        *{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
        main{max-width:40rem;margin:3rem auto;padding:2rem;background:var(--card);border:1px solid var(--line);border-radius:12px}
        h1{font-size:1.4rem;margin:0 0 .5rem}p{margin:.5rem 0}.muted{color:var(--muted)}
        ul.scopes{list-style:none;padding:0;margin:1rem 0}ul.scopes li{padding:.6rem .8rem;border:1px solid var(--line);border-radius:8px;margin:.4rem 0}
        code{font:0.95em ui-monospace,SFMono-Regular,Menlo,monospace}.tier{float:right;font-size:.8rem;padding:0 .5rem;border-radius:999px;border:1px solid var(--line)}
        .tier-critical{border-color:#cf222e;color:#cf222e}.tier-elevated{border-color:#bf8700;color:#bf8700}
        label{display:block;font-weight:600;margin-top:1rem}textarea{width:100%;min-height:5rem;font:inherit;padding:.5rem;border:1px solid var(--line);border-radius:8px;background:var(--bg);color:var(--fg)}
        button,.button{display:inline-block;margin-top:.75rem;padding:.5rem 1rem;border-radius:8px;border:1px solid var(--accent);background:var(--accent);color:#fff;font:inherit;cursor:pointer;text-decoration:none}
        .status{margin:1rem 0;padding:.75rem;border-radius:8px;border:1px dashed var(--line)}
        """
}
