import Foundation

extension GateService {
    /// What happens to a device authorization request (RFC 8628 §3.1).
    public enum DeviceAdmission: Sendable, Equatable {
        /// Forward it to the IdP: every permission is granted or approved by policy.
        case forward
        /// Refuse it: policy denies these permissions.
        case deny(ScopeSet)
        /// Hold it: the device gets ScopeGate's own device code and user code, and its polling is
        /// answered by ScopeGate until the approval request is decided.
        case held(Hold, ApprovalRequest)
    }

    /// Device holds are bound to their codes instead of a browser: `device:<user code>:<digest>`, where
    /// the digest is of the device code (the caller makes it; the device code itself is never stored,
    /// so neither the store, the audit log nor an operator's view of a hold can be used to poll).
    public static let deviceBinderPrefix = "device:"

    /// The binding of a device hold's user code and device-code digest.
    public static func deviceBinder(userCode: String, digest: String) -> String {
        deviceBinderPrefix + userCode + ":" + digest
    }

    /// The grant type recorded for device authorization requests.
    public static let deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

    /// Decides a device authorization request for `scopes` by `clientID`. `encodedParameters` is the
    /// request as it will be sent to the IdP once released (without client credentials).
    public func admitDevice(
        clientID: String, scopes: ScopeSet, encodedParameters: String, binder: String, source: String? = nil
    ) async throws(GateError) -> DeviceAdmission {
        let date = now()
        return try await storeCall {
            switch try await evaluate(scopes, clientID: clientID, grantType: Self.deviceGrantType, at: date) {
            case .allow:
                return .forward
            case .deny(let denied):
                return .deny(denied)
            case .hold(let unapproved, let alreadyGranted):
                let (hold, approval) = try await hold(
                    clientID: clientID, binderHash: binder, method: .post, encodedParameters: encodedParameters, scopes: scopes,
                    unapproved: unapproved, alreadyGranted: alreadyGranted, source: source, at: date)
                return .held(hold, approval)
            }
        }
    }

    /// A device hold and its approval request, by its exact binding; `nil` when ScopeGate issued no
    /// such device code.
    public func deviceHold(binder: String) async throws(GateError) -> (Hold, ApprovalRequest)? {
        try await storeCall {
            guard binder.hasPrefix(Self.deviceBinderPrefix),
                let hold = try await store.holds(binderPrefix: binder).first(where: { $0.binderHash == binder }),
                let approval = try await store.approvalRequest(id: hold.approvalRequestID)
            else { return nil }
            return (hold, approval)
        }
    }

    /// The most recent device hold with `userCode`, and its approval request.
    public func deviceHold(userCode: String) async throws(GateError) -> (Hold, ApprovalRequest)? {
        try await storeCall {
            guard let hold = try await store.holds(binderPrefix: Self.deviceBinderPrefix + userCode + ":").last,
                let approval = try await store.approvalRequest(id: hold.approvalRequestID)
            else { return nil }
            return (hold, approval)
        }
    }
}
