import Crypto

/// SHA-256 as lower-case hex: how ScopeGate keeps and compares values it must not store as they are
/// (browser bindings, relayed codes, pushed request URIs) and names its policy.
enum Digest {
    static func sha256Hex(_ text: some StringProtocol) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        hex.reserveCapacity(64)
        for byte in SHA256.hash(data: Array(text.utf8)) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
