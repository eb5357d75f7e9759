import AsyncHTTPClient
import Foundation
import NIOSSL
import Testing

@Suite(.serialized) struct TLSTests {
    @Test func servesTheConfiguredCertificateMadeByTheCertsScript() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sg-certs-\(UUID().uuidString)")
        let script = Process()
        script.executableURL = URL(fileURLWithPath: "/bin/bash")
        script.arguments = [root.appendingPathComponent("certs/make-dev-certs.sh").path, directory.path]
        script.standardOutput = FileHandle.nullDevice
        try script.run()
        script.waitUntilExit()
        try #require(script.terminationStatus == 0)
        let keyMode = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent("server.key").path)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)

        let tls = "tls:\n  certificate: \(directory.path)/server.crt\n  key: \(directory.path)/server.key"
        try await GateHarness.with(extraConfig: tls) { h in
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .file(directory.appendingPathComponent("ca.crt").path)
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: configuration))
            let url = h.publicURL.replacingOccurrences(of: "http://", with: "https://") + "/.well-known/openid-configuration"
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            #expect(response.status == .ok)
            try await client.shutdown()
        }
    }
}
