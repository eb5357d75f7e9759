import Foundation
import NIOCore

/// How many event loop threads ScopeGate runs: one per CPU it may run on.
///
/// NIO sizes its shared event loop group by the machine's cores and any cgroup CPU quota, but not by
/// the process's CPU affinity: a ScopeGate started with `taskset -c 0` (or a systemd `CPUAffinity=`)
/// would run two or more loops on one core, and pay for their context switches on every request.
public enum EventLoopThreads {
    /// The variable NIO reads for the shared group's size; an operator's own value always wins.
    static let variable = "NIO_SINGLETON_GROUP_LOOP_COUNT"

    /// Sets the shared group's size from the CPU affinity, unless the operator has set it. Must run
    /// before anything uses `MultiThreadedEventLoopGroup.singleton`.
    public static func sizeSharedGroupByAffinity() {
        guard ProcessInfo.processInfo.environment[variable] == nil, let allowed = allowedCPUs(),
            allowed < System.coreCount
        else { return }
        setenv(variable, String(allowed), 0)
    }

    /// The number of CPUs this process may run on, from `Cpus_allowed_list` in `/proc/self/status`
    /// (Linux); `nil` where that cannot be read.
    static func allowedCPUs(status path: String = "/proc/self/status") -> Int? {
        guard let status = try? String(contentsOfFile: path, encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return nil }
        return cpuCount(list: line.dropFirst("Cpus_allowed_list:".count))
    }

    /// The number of CPUs in a kernel CPU list such as `0-3,8,10-11`; `nil` when it is not one.
    static func cpuCount(list: Substring) -> Int? {
        var count = 0
        for range in list.split(separator: ",") {
            let bounds = range.trimmingCharacters(in: .whitespaces).split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1]), low <= high
            else { return nil }
            count += high - low + 1
        }
        return count > 0 ? count : nil
    }
}
