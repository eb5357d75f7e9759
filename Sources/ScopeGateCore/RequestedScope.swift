/// The `scope` a request carries, read as every IdP could read it.
///
/// `scope` may come more than once (a query and a consent form's body, or one per ticked box): the
/// tokens are the union of every value, so whichever value an IdP takes is within them. A value sent
/// empty is, by RFC 6749 §3.1, as if `scope` were omitted, and an IdP that takes that value applies the
/// client's default scopes: so does the gate (`effective(defaults:)`).
public struct RequestedScope: Sendable, Equatable {
    /// The union of the tokens of every value.
    public let tokens: ScopeSet
    /// Whether some reading of the request has no scope: no `scope` at all, or one sent empty.
    public let mayBeOmitted: Bool

    /// Reads the values of `scope`, in the order sent (none when the request has no `scope`).
    public init(values: [String]) throws(GateError) {
        var tokens = ScopeSet([String]())
        var mayBeOmitted = values.isEmpty
        for value in values {
            if value.isEmpty {
                mayBeOmitted = true
            } else {
                tokens = tokens.union(try ScopeSet(parsing: value))
            }
        }
        self.tokens = tokens
        self.mayBeOmitted = mayBeOmitted
    }

    /// A reading already made.
    public init(tokens: ScopeSet, mayBeOmitted: Bool) {
        self.tokens = tokens
        self.mayBeOmitted = mayBeOmitted
    }

    /// Reads every `scope` in `parameters`.
    public init(in parameters: FormParameters) throws(GateError) {
        try self.init(values: parameters.values("scope"))
    }

    /// Whether the request names no scope in any reading of it.
    public var isAbsent: Bool { mayBeOmitted && tokens.isEmpty }

    /// The scopes the IdP may act on: the tokens, with `defaults` when some reading has no scope. A
    /// request that may have no scope for a client without defaults is refused: the IdP would grant
    /// something the gate never saw.
    public func effective(defaults: ScopeSet?) throws(GateError) -> ScopeSet {
        guard mayBeOmitted else { return tokens }
        guard let defaults else {
            throw GateError(
                .invalidScope,
                tokens.isEmpty
                    ? "the request names no scope and no default scopes are configured for this client"
                    : "some reading of the request names no scope (a scope sent empty, or a request object without one), and no default scopes are configured for this client")
        }
        return tokens.union(defaults)
    }
}
