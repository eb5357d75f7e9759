import Foundation

/// One held authorization request: a browser waiting on the waiting page.
///
/// A hold keeps the request exactly as parsed, so that after an approval the browser continues with
/// the very request that was evaluated. It is bound to the browser that made it by the hash of a
/// random cookie value; only that browser can see it or continue it.
public struct Hold: Sendable, Equatable, Codable, Identifiable {
    /// The public handle in the waiting page's URL (128 random bits, hex).
    public var id: String
    /// The approval request the hold waits on.
    public var approvalRequestID: String
    /// The client.
    public var clientID: String
    /// The SHA-256 (hex) of the browser-binding cookie's value.
    public var binderHash: String
    /// How the browser sent the request.
    public var method: AuthorizationRequest.Method
    /// The request's parameters, encoded as they will be forwarded.
    public var encodedParameters: String
    /// All the scopes the request asked for.
    public var requestedScopes: ScopeSet
    /// The requester's justification, shown to approvers.
    public var justification: String?
    /// When the hold was made.
    public var createdAt: Date
    /// When the browser first continued to the IdP after a release.
    public var consumedAt: Date?
    /// Who is asking, when they signed in at the IdP from the waiting page.
    public var requester: Requester?

    /// Creates a hold.
    public init(
        id: String, approvalRequestID: String, clientID: String, binderHash: String,
        method: AuthorizationRequest.Method, encodedParameters: String, requestedScopes: ScopeSet,
        justification: String? = nil, createdAt: Date, consumedAt: Date? = nil
    ) {
        self.id = id
        self.approvalRequestID = approvalRequestID
        self.clientID = clientID
        self.binderHash = binderHash
        self.method = method
        self.encodedParameters = encodedParameters
        self.requestedScopes = requestedScopes
        self.justification = justification
        self.createdAt = createdAt
        self.consumedAt = consumedAt
    }

    /// Whether a browser made the hold (rather than a back-channel call or a device), so that its
    /// waiting page can identify the requester.
    public var isBrowserHold: Bool {
        binderHash != GateService.backChannelBinder && !binderHash.hasPrefix(GateService.deviceBinderPrefix)
    }

    /// The parsed request again, from what was stored.
    public func request() throws(GateError) -> AuthorizationRequest {
        try AuthorizationRequest(method: method, query: Substring(encodedParameters))
    }

    /// Whether this hold, once released, admits `request` (asking for the effective permissions
    /// `scopes`, encoded as `encoded`): the very request that was held, or another step of the same
    /// authorization (the IdP's sign-in replaying it, its consent form posting it back) that asks for
    /// no permission beyond the held one's.
    public func admits(_ request: AuthorizationRequest, scopes: ScopeSet, encoded: String) -> Bool {
        if encoded == encodedParameters { return true }
        guard request.clientID == clientID, scopes.isSubset(of: requestedScopes), let held = try? self.request() else {
            return false
        }
        return held.isSameAuthorization(as: request)
    }
}

extension FormParameters {
    /// These parameters without the scopes `withheld`, for releasing a held request that an approval
    /// narrowed (RFC 6749 §3.3 lets an authorization server grant fewer scopes than asked; the IdP is
    /// simply asked for fewer). `requested` are the request's effective permissions: where the request
    /// named no `scope` and the client's defaults applied, the remaining ones are named explicitly.
    /// Refused where the scopes cannot be taken out: a request object (`request`, `request_uri`) that
    /// the IdP would read its scopes from, or nothing left to ask for.
    public func withholding(_ withheld: ScopeSet, requested: ScopeSet) throws(GateError) -> FormParameters {
        guard !withheld.isEmpty else { return self }
        guard pairs.allSatisfy({ ($0.known != .request && $0.known != .requestURI) || $0.value.isEmpty }) else {
            throw GateError(
                .accessDenied,
                "the approvers approved only some of the scopes, and a request object's scopes cannot be narrowed; ask again for the approved ones")
        }
        let remaining = requested.filter { PermissionKind.of($0) == .scope && !withheld.contains($0) }
        guard !remaining.isEmpty else {
            throw GateError(.accessDenied, "the approvers approved none of the scopes this request asks for")
        }
        var kept: [Pair] = []
        var named = false
        for pair in pairs {
            guard pair.known == .scope, !pair.value.isEmpty else {
                kept.append(pair)
                continue
            }
            named = true
            let tokens = pair.value.split(separator: " ").filter { !withheld.contains(String($0)) }
            if !tokens.isEmpty { kept.append(Pair(pair.name, tokens.joined(separator: " "))) }
        }
        if !named { kept.append(Pair("scope", remaining.joined(separator: " "))) }
        return try FormParameters(kept)
    }
}

/// The person behind a held request, as the IdP named them when they signed in from the waiting page.
public struct Requester: Sendable, Equatable, Codable {
    /// The IdP's subject (`sub`).
    public var subject: String
    /// The email address the IdP gave, lower-cased.
    public var email: String?
    /// Whether the IdP says the address is verified (`email_verified`).
    public var emailVerified: Bool
    /// A display name.
    public var name: String?
    /// The groups the IdP lists (its `groups` claim, or the one the configuration names).
    public var groups: [String]

    public init(subject: String, email: String?, emailVerified: Bool, name: String?, groups: [String] = []) {
        self.subject = subject
        self.email = email?.lowercased()
        self.emailVerified = emailVerified
        self.name = name
        self.groups = groups
    }

    /// How approvers read who asks: name and verified address, else the subject.
    public var label: String {
        let parts = [name, emailVerified ? email : nil].compactMap { $0 }
        return parts.isEmpty ? "subject \(subject)" : parts.joined(separator: ", ")
    }

    /// Whether `approver` is this person: the same verified email address, or the same subject at the
    /// same IdP.
    public func isSamePerson(as approver: ApproverIdentity) -> Bool {
        guard case .person(let email, let subject) = approver else { return false }
        if let email, emailVerified, self.email == email.lowercased() { return true }
        if let subject, subject == self.subject { return true }
        return false
    }
}

/// Who approves, as far as separation of duties needs to know.
public enum ApproverIdentity: Sendable, Equatable {
    /// An operator with the store or the admin token (command line, admin API) or an automation rule.
    case `operator`
    /// A person: the email address a chat platform or the IdP verified for them, and their subject at
    /// the upstream IdP when they signed in there (the approval page); either may be unknown.
    case person(verifiedEmail: String?, idpSubject: String?)

    /// The person as votes name them: the verified email address, lower-cased, when known.
    public var person: String? {
        guard case .person(let email, _) = self else { return nil }
        return email?.lowercased()
    }
}

/// A standing approval of one scope for one client.
public struct Grant: Sendable, Equatable, Codable {
    /// The client.
    public var clientID: String
    /// The scope.
    public var scope: String
    /// Who approved it.
    public var approvedBy: String
    /// When.
    public var grantedAt: Date
    /// When it lapses; `nil` for never.
    public var expiresAt: Date?
    /// The approval request that created it, if any.
    public var approvalRequestID: String?

    /// Creates a grant.
    public init(
        clientID: String, scope: String, approvedBy: String, grantedAt: Date, expiresAt: Date?,
        approvalRequestID: String?
    ) {
        self.clientID = clientID
        self.scope = scope
        self.approvedBy = approvedBy
        self.grantedAt = grantedAt
        self.expiresAt = expiresAt
        self.approvalRequestID = approvalRequestID
    }

    /// Whether the grant is in force at `date`.
    public func isActive(at date: Date) -> Bool {
        expiresAt.map { date < $0 } ?? true
    }
}
