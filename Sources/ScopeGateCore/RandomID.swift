/// Unguessable identifiers from the system's cryptographically secure generator.
public enum RandomID {
    /// `bytes` random bytes as lower-case hex, with an optional prefix.
    public static func make(prefix: String = "", bytes: Int = 16) -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = Array("0123456789abcdef".utf8)
        var out = Array(prefix.utf8)
        out.reserveCapacity(out.count + bytes * 2)
        var word: UInt64 = 0
        for index in 0..<bytes {
            if index % 8 == 0 { word = generator.next() }
            let byte = UInt8(truncatingIfNeeded: word >> (8 * UInt64(index % 8)))
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
