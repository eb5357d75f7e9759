import Crypto
import Foundation

/// Slack's request signing (version `v0`): `X-Slack-Signature` is `v0=` and the lower-case hex of
/// HMAC-SHA256, keyed with the signing secret, over `v0:{X-Slack-Request-Timestamp}:{raw body}`.
/// A request is accepted only with both headers, a timestamp within five minutes of now, and a
/// signature that matches in constant time.
struct SlackSignature: Sendable {
    /// Why a request was refused; logged, never shown to the caller.
    enum Failure: Error, Equatable {
        case missingHeaders
        case staleTimestamp
        case badSignature
    }

    /// How far a request's timestamp may be from now.
    static let window: TimeInterval = 300

    let secret: SymmetricKey

    init(signingSecret: String) { self.secret = SymmetricKey(data: Data(signingSecret.utf8)) }

    /// The `X-Slack-Signature` value for `body` sent at `timestamp`.
    func signature(timestamp: String, body: some Sequence<UInt8>) -> String {
        var mac = HMAC<SHA256>(key: secret)
        mac.update(data: Array("v0:\(timestamp):".utf8))
        mac.update(data: Array(body))
        return "v0=" + mac.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Checks a request; throws why it must be refused.
    func verify(timestamp: String?, signature: String?, body: [UInt8], now: Date) throws(Failure) {
        guard let timestamp, let signature, let seconds = Int64(timestamp), timestamp.utf8.allSatisfy({ (48...57).contains($0) })
        else {
            throw .missingHeaders
        }
        guard abs(now.timeIntervalSince1970 - TimeInterval(seconds)) <= Self.window else { throw .staleTimestamp }
        let expected = Array(self.signature(timestamp: timestamp, body: body).utf8)
        let given = Array(signature.utf8)
        guard expected.count == given.count else { throw .badSignature }
        var difference: UInt8 = 0
        for (a, b) in zip(expected, given) { difference |= a ^ b }
        guard difference == 0 else { throw .badSignature }
    }
}
