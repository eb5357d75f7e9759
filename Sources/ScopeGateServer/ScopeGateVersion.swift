/// ScopeGate's release, as `scopegate --version`, the startup log and `scopegate_build_info` report it.
/// Raised with each release; a build from an unreleased commit says so with `-dev`.
public enum ScopeGateVersion {
    public static let current = "0.6.0-dev"
}
