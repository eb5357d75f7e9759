import Foundation
import Testing

@testable import ScopeGateServer

/// ScopeGate's event loops follow the CPUs it may run on (`taskset`, systemd `CPUAffinity=`).
@Suite struct EventLoopThreadsTests {
    @Test func kernelCPUListsAreCounted() {
        #expect(EventLoopThreads.cpuCount(list: "0") == 1)
        #expect(EventLoopThreads.cpuCount(list: "\t0-1") == 2)
        #expect(EventLoopThreads.cpuCount(list: "0-3,8,10-11") == 7)
        #expect(EventLoopThreads.cpuCount(list: "") == nil)
        #expect(EventLoopThreads.cpuCount(list: "3-1") == nil)
        #expect(EventLoopThreads.cpuCount(list: "a-b") == nil)
    }

    @Test func theAllowedCPUsAreReadFromTheProcessStatus() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("status-\(UUID().uuidString)")
        try "Name:\tscopegate\nCpus_allowed:\t1\nCpus_allowed_list:\t0\nMems_allowed_list:\t0\n".write(
            to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(EventLoopThreads.allowedCPUs(status: file.path) == 1)
        #expect(EventLoopThreads.allowedCPUs(status: "/nonexistent/status") == nil)
        #if os(Linux)
            #expect((EventLoopThreads.allowedCPUs() ?? 0) >= 1)
        #endif
    }
}
