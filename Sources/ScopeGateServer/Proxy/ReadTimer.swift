import NIOCore

/// A read timeout kept inside a connection's handler: what NIO's `IdleStateHandler` does for reads,
/// without a handler of its own that every read, write and flush of the connection passes through, and
/// without reading the clock on every read.
///
/// The timer ticks every quarter of `timeout`; `restart` only marks that something was read. `onIdle`
/// runs on the event loop once four ticks in a row found nothing read: between `timeout` and 1.25 ×
/// `timeout` after the last `restart`. The count then starts over. Used only on its event loop; `stop`
/// it when the connection closes.
final class ReadTimer {
    /// Ticks per timeout: the precision of the timeout (a tick's length late at most).
    static let ticks = 4

    private let tick: TimeAmount
    /// Whether `restart` was called since the last tick.
    private var touched = false
    /// Ticks in a row that found nothing read.
    private var quietTicks = 0
    private var scheduled: Scheduled<Void>?
    private var onIdle: (() -> Void)?

    init(timeout: TimeAmount) {
        self.tick = .nanoseconds(max(1, timeout.nanoseconds / Int64(Self.ticks)))
    }

    /// Starts the timer.
    func start(on eventLoop: any EventLoop, onIdle: @escaping () -> Void) {
        guard scheduled == nil else { return }
        self.onIdle = onIdle
        touched = false
        quietTicks = 0
        schedule(on: eventLoop)
    }

    /// Something was read (or an exchange began): the timeout counts from now.
    @inline(__always)
    func restart() {
        touched = true
    }

    func stop() {
        scheduled?.cancel()
        scheduled = nil
        onIdle = nil
    }

    private func schedule(on eventLoop: any EventLoop) {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        scheduled = eventLoop.scheduleTask(in: tick) { bound.value.ticked(on: eventLoop) }
    }

    private func ticked(on eventLoop: any EventLoop) {
        guard let onIdle else { return }
        schedule(on: eventLoop)
        if touched {
            touched = false
            quietTicks = 0
            return
        }
        quietTicks += 1
        guard quietTicks >= Self.ticks else { return }
        quietTicks = 0
        onIdle()
    }
}
