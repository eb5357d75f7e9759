import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ScopeGateCore
import ScopeGateServer

/// `--server`: the `requests` commands through the admin API of a running ScopeGate, so that an
/// approver needs neither the store file nor the audit signing key, only the admin API's address and
/// token.
struct ServerOption: ParsableArguments {
    @Option(help: "Work through the admin API of a running ScopeGate at this URL (e.g. http://127.0.0.1:8081) instead of on the store; --config is then not read.")
    var server: String?

    @Option(help: "The environment variable holding the admin API's bearer token (with --server).")
    var tokenEnv: String = "SCOPEGATE_ADMIN_TOKEN"

    /// The client, when `--server` is given.
    func client() throws -> AdminClient? {
        guard let server else { return nil }
        guard let url = URL(string: server), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
            throw ValidationError("--server must be the admin listener's http or https URL")
        }
        guard let token = ProcessInfo.processInfo.environment[tokenEnv], !token.isEmpty else {
            throw ValidationError("--server needs the admin API's token in the environment variable \(tokenEnv)")
        }
        var base = url.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        return AdminClient(base: base, token: token)
    }
}

/// The admin API's `/v1/requests` as the command line uses it.
struct AdminClient {
    let base: String
    let token: String

    private struct Failure: Decodable {
        var error: String
        var error_description: String?
    }

    func requests(state: String?) async throws -> [RequestReport] {
        try RequestReport.decoder.decode(
            [RequestReport].self, from: try await call(.GET, "/v1/requests" + (state.map { "?state=\($0)" } ?? ""), body: nil))
    }

    func request(_ id: String) async throws -> RequestReport {
        try RequestReport.decoder.decode(RequestReport.self, from: try await call(.GET, "/v1/requests/\(FormParameters.encode(id))", body: nil))
    }

    func decide(_ id: String, _ decision: String, body: [String: Any]) async throws -> RequestReport {
        let data = try JSONSerialization.data(withJSONObject: body)
        return try RequestReport.decoder.decode(
            RequestReport.self, from: try await call(.POST, "/v1/requests/\(FormParameters.encode(id))/\(decision)", body: data))
    }

    private func call(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> Data {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            bytes = try await response.body.collect(upTo: 8 << 20)
        } catch {
            throw ValidationError("cannot reach the admin API at \(base): \(error)")
        }
        let data = Data(buffer: bytes)
        guard response.status == .ok else {
            if response.status == .unauthorized { throw ValidationError("the admin API refused the token in \(base)") }
            let failure = try? JSONDecoder().decode(Failure.self, from: data)
            throw ValidationError(failure?.error_description ?? failure?.error ?? "the admin API answered HTTP \(response.status.code)")
        }
        return data
    }
}
