/// Client identifiers as RFC 6749 (Appendix A.1) defines them: one or more printable ASCII characters
/// (`VSCHAR`, `%x20-7E`).
///
/// ScopeGate refuses any other. Swift compares strings by Unicode canonical equivalence, an IdP by
/// bytes: two spellings of `café` would be one client to the gate and two to the IdP. Within printable
/// ASCII, equal strings are equal bytes, so every comparison of client ids is byte for byte.
public enum ClientID {
    /// Whether `id` is a client identifier ScopeGate accepts.
    public static func isValid(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.allSatisfy { (0x20...0x7E).contains($0) }
    }
}
