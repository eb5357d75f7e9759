import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ScopeGateCore

/// A client's form post to a back-channel endpoint: parsed strictly, the client identified once.
enum ClientForm {
    /// Client authentication parameters, which are not part of the request itself.
    static let clientAuthentication: Set<String> = ["client_secret", "client_assertion", "client_assertion_type"]

    /// A back-channel `POST`, read; or the RFC 6749 §5.2 answer that refuses it.
    enum Post {
        case read(FormParameters, clientID: String)
        case refused(Response)
    }

    /// Reads a `POST` to the endpoint named `endpoint` (`token`, …: in the `405` answer to other methods
    /// and in the audit entry); a malformed one is recorded in `refusals`.
    static func post(_ request: Request, endpoint: String, refusals: RefusalAudit) async -> Post {
        guard request.method == .post else {
            var response = OAuthError.response(.methodNotAllowed, "invalid_request", "the \(endpoint) endpoint takes POST only")
            response.headers[.allow] = "POST"
            return .refused(response)
        }
        do {
            let (parameters, clientID) = try await read(request)
            return .read(parameters, clientID: clientID)
        } catch let refusal as Refusal {
            await refusals.record(endpoint: endpoint, code: refusal.code, reason: refusal.message)
            return .refused(OAuthError.response(refusal.status, refusal.code, refusal.message))
        } catch {
            return .refused(OAuthError.response(.badRequest, "invalid_request", "the request cannot be read"))
        }
    }

    /// The parameters without client credentials, naming the client: what is forwarded or stored as
    /// the request itself.
    static func withoutCredentials(_ parameters: FormParameters, clientID: String) -> [FormParameters.Pair] {
        var pairs = parameters.pairs.filter { !clientAuthentication.contains($0.name) }
        if !pairs.contains(where: { $0.name == "client_id" }) { pairs.append(.init("client_id", clientID)) }
        return pairs
    }

    static func read(_ request: Request) async throws -> (FormParameters, String) {
        guard (request.uri.query ?? "").isEmpty else {
            throw Refusal(message: "parameters belong in the form body, not the query")
        }
        let contentType = request.headers[.contentType]?.split(separator: ";").first?
            .trimmingCharacters(in: .whitespaces).lowercased()
        guard contentType == "application/x-www-form-urlencoded" else {
            throw Refusal(message: "the request must be application/x-www-form-urlencoded")
        }
        var copy = request
        let body: ByteBuffer
        do {
            body = try await copy.collectBody(upTo: maximumBodySize)
        } catch {
            throw Refusal(status: .contentTooLarge, message: "the form body is larger than \(maximumBodySize) bytes")
        }
        let parameters: FormParameters
        do {
            parameters = try FormParameters(parsing: Substring(String(buffer: body)))
        } catch {
            throw Refusal(message: error.message)
        }
        var identities = Set<String>()
        if let basic = try basicClientID(request.headers[values: .authorization]) { identities.insert(basic) }
        if let bodyID = parameters["client_id"] { identities.insert(bodyID) }
        if let assertion = parameters["client_assertion"] {
            guard let subject = assertionSubject(assertion) else {
                throw Refusal(status: .unauthorized, code: "invalid_client", message: "the client assertion cannot be read")
            }
            identities.insert(subject)
        }
        guard identities.allSatisfy(ClientID.isValid) else {
            throw Refusal(
                status: .unauthorized, code: "invalid_client", message: "a client_id must be printable ASCII (RFC 6749, appendix A.1)")
        }
        guard identities.count == 1, let clientID = identities.first, !clientID.isEmpty else {
            throw Refusal(
                status: .unauthorized, code: "invalid_client",
                message: identities.isEmpty ? "the client is not identified" : "the request names more than one client")
        }
        return (parameters, clientID)
    }

    /// The largest form body a back-channel endpoint reads.
    static let maximumBodySize = 64 * 1024

    /// Why a form post is refused, as an RFC 6749 §5.2 error.
    struct Refusal: Error {
        var status: HTTPResponse.Status = .badRequest
        var code = "invalid_request"
        var message: String
    }

    /// The client an `Authorization` header names, read strictly: exactly `Basic`, one space and a
    /// base64 credential (RFC 7617) of a form-encoded `client_id:client_secret` (RFC 6749 §2.3.1);
    /// `nil` when there is no such header. Any other `Authorization` header (another scheme, another
    /// spelling of `Basic`, a tab or two spaces, a credential that is not strict base64 or has no colon,
    /// two headers) is refused: Spring and others read such headers and would authenticate a client
    /// ScopeGate never saw.
    static func basicClientID(_ values: [String]) throws -> String? {
        guard let header = values.first else { return nil }
        let invalid = Refusal(
            status: .unauthorized, code: "invalid_client",
            message: "the Authorization header must be exactly one 'Basic' credential of client_id:client_secret")
        guard values.count == 1, header.hasPrefix("Basic ") else { throw invalid }
        let credential = Substring(header.utf8.dropFirst(6))
        guard isStrictBase64(credential), let decoded = Data(base64Encoded: String(credential)),
            let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
        else { throw invalid }
        func formDecoded(_ part: Substring) -> String? { part.replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
        guard let id = formDecoded(text[..<colon]), !id.isEmpty, formDecoded(text[text.index(after: colon)...]) != nil else {
            throw invalid
        }
        return id
    }

    /// Whether `text` is base64 (RFC 4648 §4) with nothing around it: the alphabet, then at most two
    /// `=` of padding, in groups of four.
    private static func isStrictBase64(_ text: Substring) -> Bool {
        let bytes = Array(text.utf8)
        let body = bytes.prefix { $0 != UInt8(ascii: "=") }
        let padding = bytes.count - body.count
        return !bytes.isEmpty && bytes.count % 4 == 0 && padding <= 2
            && bytes[body.count...].allSatisfy { $0 == UInt8(ascii: "=") }
            && body.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
                    true
                default:
                    false
                }
            }
    }

    /// The `sub` of a client assertion JWT (RFC 7523 §3); the IdP verifies its signature. Read
    /// strictly: with `sub` twice, ScopeGate and the IdP could each take a different client.
    static func assertionSubject(_ assertion: String) -> String? {
        let parts = assertion.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = Base64URL.decode(parts[1]), let claims = StrictJSON.parse(data) else { return nil }
        return claims["sub"]?.stringValue
    }
}
