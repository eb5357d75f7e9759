import Foundation

/// Text for Slack, escaped so that nothing taken from a request can format, link or mention.
enum SlackText {
    /// Escapes `&`, `<` and `>` as Slack requires; with these escaped, no `<@U…>`, `<!channel>` or
    /// `<https://…|…>` can be formed.
    static func escaped(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            default: result.append(character)
            }
        }
        return result
    }


    /// A `plain_text` object: Slack renders it as it is, with no formatting, links or mentions.
    static func plain(_ text: String, limit: Int = 3000) -> JSONValue {
        ["type": "plain_text", "text": .string(ChatText.clipped(text, to: limit, keepNewlines: true)), "emoji": false]
    }

    /// A `mrkdwn` object from text ScopeGate wrote, with every value from elsewhere already escaped;
    /// `verbatim` stops Slack from turning bare URLs and channel names into links.
    static func markdown(_ text: String) -> JSONValue {
        ["type": "mrkdwn", "text": .string(text), "verbatim": true]
    }
}
