/// A glob over scope tokens: `*` matches any run of characters (also none), `?` exactly one, and every
/// other character only itself. Matching is case-sensitive, as scopes are.
public struct GlobPattern: Sendable, Hashable, CustomStringConvertible {
    /// The pattern as written in the configuration.
    public let source: String
    private let characters: [Character]

    /// Creates a pattern from its text.
    public init(_ source: String) {
        self.source = source
        self.characters = Array(source)
    }

    /// Whether `text` matches the whole pattern.
    public func matches(_ text: String) -> Bool {
        let input = Array(text)
        var p = 0
        var t = 0
        var starP = -1
        var starT = 0
        while t < input.count {
            if p < characters.count, characters[p] == "?" || (characters[p] != "*" && characters[p] == input[t]) {
                p += 1
                t += 1
            } else if p < characters.count, characters[p] == "*" {
                starP = p
                starT = t
                p += 1
            } else if starP >= 0 {
                p = starP + 1
                starT += 1
                t = starT
            } else {
                return false
            }
        }
        while p < characters.count, characters[p] == "*" { p += 1 }
        return p == characters.count
    }

    public var description: String { source }
}
