import Foundation
import GRDB
import Synchronization

/// Group commit: write operations from many callers share one transaction, so one `fsync` makes a
/// whole batch durable (`synchronous=FULL` costs milliseconds per commit on ordinary disks).
///
/// Each operation runs in its own savepoint, so one that throws is rolled back alone and its caller
/// gets the error; every caller is answered only after the batch's commit, and if the commit fails,
/// every operation of the batch fails. While one batch commits, the next one gathers.
final class GroupCommit: Sendable {
    private struct Operation: Sendable {
        let body: @Sendable (Database) throws -> any Sendable
        let continuation: CheckedContinuation<any Sendable, any Error>
    }

    private struct Queue: ~Copyable {
        var waiting: [Operation] = []
        var draining = false
    }

    private let writer: DatabasePool
    private let queue = Mutex(Queue())
    /// Told how long each write took, from the call to its durable commit, when set.
    let observer = Mutex<(@Sendable (Duration) -> Void)?>(nil)
    private let generationBox = Mutex(0)

    /// Changes whenever what a previous operation wrote may no longer hold: at the start of each
    /// transaction and after each operation that was rolled back. Operations may cache what they
    /// read from earlier operations of the same generation.
    var generation: Int { generationBox.withLock { $0 } }
    /// The most operations one transaction takes.
    let batchLimit: Int

    init(writer: DatabasePool, batchLimit: Int = 512) {
        self.writer = writer
        self.batchLimit = batchLimit
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        guard let observe = observer.withLock({ $0 }) else { return try await enqueue(body) }
        let start = ContinuousClock.now
        let value = try await enqueue(body)
        observe(ContinuousClock.now - start)
        return value
    }

    private func enqueue<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let value = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<any Sendable, any Error>) in
            let startDrain = queue.withLock { queue -> Bool in
                queue.waiting.append(Operation(body: { try body($0) }, continuation: continuation))
                guard !queue.draining else { return false }
                queue.draining = true
                return true
            }
            if startDrain { Task { await self.drain() } }
        }
        return value as! T
    }

    private func drain() async {
        while true {
            let batch = queue.withLock { queue -> [Operation] in
                let batch = Array(queue.waiting.prefix(batchLimit))
                queue.waiting.removeFirst(batch.count)
                if batch.isEmpty { queue.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            do {
                let results = try await writer.write { [self] db -> [Result<any Sendable, any Error>] in
                    generationBox.withLock { $0 += 1 }
                    // Savepoints through cached statements: GRDB's `inSavepoint` compiles its SQL each time,
                    // and this runs once per operation.
                    let begin = try db.cachedStatement(sql: "SAVEPOINT operation")
                    let release = try db.cachedStatement(sql: "RELEASE SAVEPOINT operation")
                    let rollback = try db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT operation")
                    return batch.map { operation in
                        Result {
                            try begin.execute()
                            do {
                                let value = try operation.body(db)
                                try release.execute()
                                return value
                            } catch {
                                generationBox.withLock { $0 += 1 }
                                try rollback.execute()
                                try release.execute()
                                throw error
                            }
                        }
                    }
                }
                for (operation, result) in zip(batch, results) { operation.continuation.resume(with: result) }
            } catch {
                for operation in batch { operation.continuation.resume(throwing: error) }
            }
        }
    }
}
