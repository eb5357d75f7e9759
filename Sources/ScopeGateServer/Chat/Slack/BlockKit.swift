import Foundation

/// A JSON value, for building Slack API bodies (Block Kit) without a type per block.
enum JSONValue: Sendable, Equatable, Encodable, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral, ExpressibleByBooleanLiteral
{
    case string(String)
    case bool(Bool)
    case number(Double)
    case array([JSONValue])
    case object([(String, JSONValue)])

    init(stringLiteral value: String) { self = .string(value) }
    init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements) }
    init(booleanLiteral value: Bool) { self = .bool(value) }

    static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): a == b
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)): a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
        default: false
        }
    }

    private struct MemberName: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .string(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .bool(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .number(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .array(let values):
            var container = encoder.unkeyedContainer()
            for value in values { try container.encode(value) }
        case .object(let members):
            var container = encoder.container(keyedBy: MemberName.self)
            for (key, value) in members { try container.encode(value, forKey: MemberName(stringValue: key)) }
        }
    }

    /// Compact JSON bytes, keys in the order written.
    func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data("null".utf8)
    }
}

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

    /// A `plain_text` object: Slack renders it as it is, with no formatting, links or mentions.
    static func plain(_ text: String, limit: Int = 3000) -> JSONValue {
        ["type": "plain_text", "text": .string(clipped(text, to: limit, keepNewlines: true)), "emoji": false]
    }

    /// A `mrkdwn` object from text ScopeGate wrote, with every value from elsewhere already escaped;
    /// `verbatim` stops Slack from turning bare URLs and channel names into links.
    static func markdown(_ text: String) -> JSONValue {
        ["type": "mrkdwn", "text": .string(text), "verbatim": true]
    }
}
