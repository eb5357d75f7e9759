import Crypto
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
        secure = publicURL.scheme?.lowercased() == "https"
        cookieName = secure ? "__Host-sg_browser" : "sg_browser"
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
        var cookie = "\(cookieName)=\(value); Path=/; Max-Age=604800; HttpOnly; SameSite=Lax"
        if secure { cookie += "; Secure" }
        return (value, cookie)
    }

    /// What the store keeps: SHA-256 of the value, hex.
    static func hash(_ value: String) -> String {
        SHA256.hash(data: Data(value.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
