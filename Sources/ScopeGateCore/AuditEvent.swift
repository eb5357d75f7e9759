import Foundation

/// One thing that happened, as the audit log records it: a type (`decision`, `hold.released`, …)
/// and its fields, in the order written. Values that identify a secret (a token, a code, a browser
/// binding) are recorded only as hashes.
public struct AuditEvent: Sendable, Equatable {
    /// A field's value.
    public enum Value: Sendable, Equatable {
        case string(String)
        case int(Int64)
        case bool(Bool)
        case strings([String])
        case null
    }

    /// The event's type, for example `approval_request.opened`.
    public var type: String
    /// The fields, in order.
    public var fields: [(name: String, value: Value)]
    /// The client the event concerns, for filtering exports.
    public var clientID: String?

    public init(_ type: String, clientID: String? = nil, _ fields: [(name: String, value: Value)] = []) {
        self.type = type
        self.clientID = clientID
        self.fields = fields
    }

    public static func == (lhs: AuditEvent, rhs: AuditEvent) -> Bool {
        lhs.type == rhs.type && lhs.clientID == rhs.clientID && lhs.fields.map(\.name) == rhs.fields.map(\.name)
            && lhs.fields.map(\.value) == rhs.fields.map(\.value)
    }
}

/// Seals audit events into signed entries. The store calls it inside the transaction that makes the
/// state change, with the entry's sequence number and the hash of the entry before it, so the entry
/// and the change commit together or not at all.
public protocol AuditSealing: Sendable {
    /// The compact JWS of entry `seq`, chained to `previous` (the compact JWS of entry `seq - 1`, or
    /// `nil` for the first entry). Throws when it cannot sign; the caller's transaction then fails.
    func seal(_ event: AuditEvent, seq: Int64, previous: String?, at date: Date) throws -> String
}
