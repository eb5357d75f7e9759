import Foundation

/// Sends bytes exactly as written over a new TCP connection and reads the answer, for request targets
/// and framings that an HTTP client library would refuse or repair.
enum RawHTTP {
    struct Reply {
        var status: Int
        var head: String
        var body: String
    }

    /// Sends `request` and reads the reply. The blocking socket calls run on a thread of their own: on
    /// Swift's cooperative pool (two threads on a two-core machine) they would starve every other test.
    /// With `readUntilClose`, it keeps reading after the reply until the server closes the connection.
    static func send(port: Int, _ request: String, readUntilClose: Bool = false) async throws -> Reply {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try exchange(port: port, request, readUntilClose: readUntilClose) }) }.start()
        }
    }

    private static func exchange(port: Int, _ request: String, readUntilClose: Bool) throws -> Reply {
        try {
            guard let fd = FreePorts.connectLoopback(port) else { throw CancellationError() }
            defer { close(fd) }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let bytes = Array(request.utf8)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = read(fd, &buffer, buffer.count)
                if count <= 0 { break }
                received.append(contentsOf: buffer[0..<count])
                if let text = String(bytes: received, encoding: .utf8), let split = text.range(of: "\r\n\r\n") {
                    let head = String(text[..<split.lowerBound])
                    let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                        .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                    if !readUntilClose, text.utf8.count - text.utf8.distance(from: text.startIndex, to: split.upperBound) >= length { break }
                }
            }
            let text = String(decoding: received, as: UTF8.self)
            let head = text.components(separatedBy: "\r\n\r\n").first ?? ""
            let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
            return Reply(status: status, head: head, body: body)
        }()
    }
}

extension GateHarness {
    var publicPort: Int { Int(publicURL.split(separator: ":").last!)! }

    /// A GET with the request target exactly as given.
    func rawGet(_ target: String, headers: String = "") async throws -> RawHTTP.Reply {
        try await RawHTTP.send(
            port: publicPort, "GET \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(publicPort)\r\n\(headers)Connection: close\r\n\r\n")
    }
}
