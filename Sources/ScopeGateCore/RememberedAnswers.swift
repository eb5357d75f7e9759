#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The gate service's answers a `GrantSnapshot` remembers, keyed by the bytes of a request's
/// `client_id` and `scope` values as they came (see `PlainAuthorizationQuery.withValues`).
///
/// A lookup is on the proxy's hot path for every gated request, so it builds nothing: no `String`, no
/// `Hasher`, no copy of the key. The table is open addressing with a short probe sequence. The hash is
/// seeded per table, and a key that finds no slot within `probes` is simply not remembered (nor found):
/// values chosen to collide cost their sender a full evaluation, as if nothing were remembered, and
/// never a longer search for anyone else.
struct RememberedAnswers {
    struct Answer {
        let admitted: Bool
        /// For an admission: the earliest expiry among the client's grants, when one has one.
        let until: Date?
    }

    private struct Entry {
        let hash: UInt64
        /// The client id's bytes, then the scope value's.
        let key: [UInt8]
        let clientIDCount: Int
        let answer: Answer
    }

    /// How many slots a key may try.
    static let probes = 8

    private var slots: [Entry?] = []
    private let seed: UInt64
    private(set) var count = 0
    /// At most this many answers; past it, nothing more is remembered.
    let capacity: Int

    init(capacity: Int, seed: UInt64) {
        self.capacity = capacity
        self.seed = seed
    }

    func answer(clientID: UnsafeBufferPointer<UInt8>, scope: UnsafeBufferPointer<UInt8>) -> Answer? {
        guard !slots.isEmpty else { return nil }
        let hash = Self.hash(clientID, scope, seed: seed)
        let mask = slots.count - 1
        for probe in 0..<Self.probes {
            guard let entry = slots[(Int(truncatingIfNeeded: hash) &+ probe) & mask] else { return nil }
            if entry.hash == hash, Self.matches(entry, clientID, scope) { return entry.answer }
        }
        return nil
    }

    /// Remembers `answer` (replacing one for the same key); does nothing when full or when the key's
    /// slots are taken.
    mutating func remember(_ answer: Answer, clientID: UnsafeBufferPointer<UInt8>, scope: UnsafeBufferPointer<UInt8>) {
        let hash = Self.hash(clientID, scope, seed: seed)
        if let index = slot(for: hash, clientID, scope), let existing = slots[index] {
            slots[index] = Entry(hash: hash, key: existing.key, clientIDCount: existing.clientIDCount, answer: answer)
            return
        }
        guard count < capacity else { return }
        // Kept at most half full: probe sequences stay short.
        if (count + 1) * 2 > slots.count { grow() }
        guard let index = slot(for: hash, clientID, scope) else { return }
        var key = [UInt8]()
        key.reserveCapacity(clientID.count + scope.count)
        key.append(contentsOf: clientID)
        key.append(contentsOf: scope)
        slots[index] = Entry(hash: hash, key: key, clientIDCount: clientID.count, answer: answer)
        count += 1
    }

    /// The slot holding the key, or else the first empty one of its sequence; `nil` when neither.
    private func slot(for hash: UInt64, _ clientID: UnsafeBufferPointer<UInt8>, _ scope: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !slots.isEmpty else { return nil }
        let mask = slots.count - 1
        for probe in 0..<Self.probes {
            let index = (Int(truncatingIfNeeded: hash) &+ probe) & mask
            guard let entry = slots[index] else { return index }
            if entry.hash == hash, Self.matches(entry, clientID, scope) { return index }
        }
        return nil
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: nil, count: max(16, old.count * 2))
        count = 0
        let mask = slots.count - 1
        for case let entry? in old {
            for probe in 0..<Self.probes {
                let index = (Int(truncatingIfNeeded: entry.hash) &+ probe) & mask
                if slots[index] == nil {
                    slots[index] = entry
                    count += 1
                    break
                }
            }
        }
    }

    private static func matches(_ entry: Entry, _ clientID: UnsafeBufferPointer<UInt8>, _ scope: UnsafeBufferPointer<UInt8>) -> Bool {
        guard entry.clientIDCount == clientID.count, entry.key.count == clientID.count + scope.count else { return false }
        return entry.key.withUnsafeBufferPointer { key in
            equal(key.baseAddress!, clientID) && equal(key.baseAddress! + clientID.count, scope)
        }
    }

    private static func equal(_ stored: UnsafePointer<UInt8>, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.isEmpty || memcmp(stored, bytes.baseAddress!, bytes.count) == 0
    }

    /// A seeded multiply-and-rotate hash over both values, eight bytes at a time, their lengths included
    /// (so that the boundary between them counts).
    static func hash(_ clientID: UnsafeBufferPointer<UInt8>, _ scope: UnsafeBufferPointer<UInt8>, seed: UInt64) -> UInt64 {
        var hash = seed ^ (UInt64(clientID.count) << 32 | UInt64(scope.count))
        mix(&hash, clientID)
        mix(&hash, scope)
        // The final avalanche of MurmurHash3: every input bit reaches the low bits the table indexes by.
        hash ^= hash >> 33
        hash &*= 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        hash &*= 0xc4ce_b9fe_1a85_ec53
        hash ^= hash >> 33
        return hash
    }

    @inline(__always)
    private static func mix(_ hash: inout UInt64, _ bytes: UnsafeBufferPointer<UInt8>) {
        guard let base = bytes.baseAddress else { return }
        let raw = UnsafeRawPointer(base)
        var offset = 0
        while offset + 8 <= bytes.count {
            hash = (hash ^ raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) &* 0x9e37_79b9_7f4a_7c15
            hash = hash << 27 | hash >> 37
            offset += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count {
            tail |= UInt64(base[offset]) << shift
            shift += 8
            offset += 1
        }
        hash = (hash ^ tail) &* 0x9e37_79b9_7f4a_7c15
        hash = hash << 27 | hash >> 37
    }
}
