import NIOCore

/// A read timeout kept inside a connection's handler: what NIO's `IdleStateHandler` does for reads,
/// without a handler of its own that every read, write and flush of the connection passes through.
///
/// `onIdle` runs on the event loop when `timeout` has passed since the last `restart`; the timer then
/// starts over. Used only on its event loop; `stop` it when the connection closes.
final class ReadTimer {
    private let timeout: TimeAmount
    private var last = NIODeadline.now()
    private var scheduled: Scheduled<Void>?
    private var onIdle: (() -> Void)?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    /// Starts the timer.
    func start(on eventLoop: any EventLoop, onIdle: @escaping () -> Void) {
        guard scheduled == nil else { return }
        self.onIdle = onIdle
        last = .now()
        schedule(in: timeout, on: eventLoop)
    }

    /// Something was read (or an exchange began): the timeout counts from now.
    @inline(__always)
    func restart() {
        last = .now()
    }

    func stop() {
        scheduled?.cancel()
        scheduled = nil
        onIdle = nil
    }

    private func schedule(in delay: TimeAmount, on eventLoop: any EventLoop) {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        scheduled = eventLoop.scheduleTask(in: delay) { bound.value.fired(on: eventLoop) }
    }

    private func fired(on eventLoop: any EventLoop) {
        guard let onIdle else { return }
        let quiet = NIODeadline.now() - last
        if quiet >= timeout {
            schedule(in: timeout, on: eventLoop)
            last = .now()
            onIdle()
        } else {
            schedule(in: timeout - quiet, on: eventLoop)
        }
    }
}
