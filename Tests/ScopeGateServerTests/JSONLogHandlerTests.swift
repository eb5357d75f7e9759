import Foundation
import Logging
import Synchronization
import Testing

@testable import ScopeGateServer

@Suite struct JSONLogHandlerTests {
    @Test func eachRecordIsOneJSONObjectOnOneLine() throws {
        let lines = Mutex<[String]>([])
        var handler = JSONLogHandler(label: "scopegate") { line in lines.withLock { $0.append(line) } }
        handler.logLevel = .debug
        handler[metadataKey: "sg.component"] = "gate"
        let logger = Logger(label: "scopegate", factory: { _ in handler })
        logger.info("a \"quoted\"\nmessage", metadata: ["sg.request.id": "r1"])
        logger.trace("below the level")
        let written = lines.withLock { $0 }
        #expect(written.count == 1)
        #expect(!written[0].contains("\n"))
        let record = try #require(try JSONSerialization.jsonObject(with: Data(written[0].utf8)) as? [String: String])
        #expect(record["msg"] == "a \"quoted\"\nmessage")
        #expect(record["level"] == "info" && record["logger"] == "scopegate")
        #expect(record["sg.request.id"] == "r1" && record["sg.component"] == "gate")
        #expect(record["ts"]?.hasSuffix("Z") == true)
    }
}
