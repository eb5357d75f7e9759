import Foundation
import Testing

@testable import ScopeGateServer

/// Request shapes two HTTP parsers may read differently are refused and the connection closed, so
/// that nothing can be smuggled past the gate inside another request. The oracle is the upstream.
@Suite(.serialized) struct SmugglingTests {
    static func request(_ port: Int, _ lines: [String], body: String = "") -> String {
        (["POST /realms/acme/account HTTP/1.1", "Host: 127.0.0.1:\(port)"] + lines).joined(separator: "\r\n") + "\r\n\r\n" + body
    }

    @Test(arguments: [
        // Content-Length and Transfer-Encoding together.
        (["Content-Length: 4", "Transfer-Encoding: chunked"], "0\r\n\r\nGET /o/authorize/?client_id=app&response_type=code&scope=admin%3Aorg HTTP/1.1\r\nHost: x\r\n\r\n"),
        // Two different lengths.
        (["Content-Length: 4", "Content-Length: 40"], "abcd"),
        // A header folded over two lines (obs-fold).
        (["Content-Length: 4", "X-Folded: a", " b"], "abcd"),
        // A transfer coding that is not chunked alone (501).
        (["Transfer-Encoding: gzip, chunked"], "0\r\n\r\n"),
        (["Transfer-Encoding: chunked", "Transfer-Encoding: identity"], "0\r\n\r\n"),
        // A length that is not a number.
        (["Content-Length: 4, 4"], "abcd"),
    ])
    func ambiguousFramingIsRefused(lines: [String], body: String) async throws {
        try await GateHarness.with { h in
            let reply = try await RawHTTP.send(port: h.publicPort, Self.request(h.publicPort, lines, body: body), readUntilClose: true)
            #expect(reply.status == 400 || reply.status == 501, "answered \(reply.status): \(reply.head)")
            #expect(h.upstream.received.isEmpty, "the upstream received \(h.upstream.received.map(\.target))")
        }
    }

    @Test func oversizedTargetsAndScopeListsAreRefusedEarly() async throws {
        try await GateHarness.with { h in
            let long = try await h.rawGet("/realms/acme/account?x=" + String(repeating: "a", count: 9000))
            #expect(long.status == 414)
            let scopes = (0...100).map { "s\($0)" }.joined(separator: "+")
            let many = try await h.rawGet(GateHarness.authorizePath + "?" + GateHarness.authorizeQuery(scope: scopes))
            #expect(many.status == 400)
            #expect(many.body.contains("more than 100"))
            #expect(try await h.gate.service.store.approvalRequests(states: nil).isEmpty)
            #expect(h.upstream.received.isEmpty)
        }
    }
}
