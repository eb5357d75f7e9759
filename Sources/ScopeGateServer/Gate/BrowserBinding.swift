import Foundation
import HTTPTypes
import Hummingbird
import ScopeGateCore

/// Binds holds to the browser that made them: a random 256-bit value in an HttpOnly cookie, of which
/// the store keeps only the SHA-256. Another browser, even with the waiting page's URL, sees nothing.
struct BrowserBinding: Sendable {
    let cookieName: String
    let secure: Bool

    init(publicURL: URL) {
        secure = Self.isSecure(publicURL)
        cookieName = Self.cookieName("sg_browser", secure: secure)
    }

    /// Whether ScopeGate's cookies are sent over HTTPS only: when its public URL is `https`.
    static func isSecure(_ publicURL: URL) -> Bool { publicURL.scheme?.lowercased() == "https" }

    /// A cookie's name: with the `__Host-` prefix over HTTPS, which binds it to this host and path `/`.
    static func cookieName(_ name: String, secure: Bool) -> String { secure ? "__Host-" + name : name }

    /// A `Set-Cookie` value for one of ScopeGate's cookies: host-only, `/`, HttpOnly, SameSite=Lax,
    /// and Secure over HTTPS.
    static func setCookie(_ name: String, _ value: String, maxAge: Int, secure: Bool) -> String {
        "\(name)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Lax" + (secure ? "; Secure" : "")
    }

    /// The binding value the browser presented, if it is well-formed.
    func value(in request: Request) -> String? {
        guard let value = request.cookies[cookieName]?.value, value.utf8.count == 64,
            value.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) })
        else { return nil }
        return value
    }

    /// The browser's binding, making a new one (and the header to set it) when it has none.
    func valueOrNew(in request: Request) -> (value: String, setCookie: String?) {
        if let value = value(in: request) { return (value, nil) }
        let value = RandomID.make(bytes: 32)
        return (value, Self.setCookie(cookieName, value, maxAge: 604_800, secure: secure))
    }

    /// What the store keeps: SHA-256 of the value, hex.
    static func hash(_ value: String) -> String {
        Digest.sha256Hex(value)
    }
}
