import NIOCore
import NIOEmbedded
import Testing

@testable import ScopeGateServer

/// The read timeout the proxy's handlers keep, on an event loop whose clock the test moves.
@Suite struct ReadTimerTests {
    final class Fired { var count = 0 }

    @Test func firesBetweenTheTimeoutAndAQuarterMoreWhenNothingIsRead() {
        let loop = EmbeddedEventLoop()
        let timer = ReadTimer(timeout: .seconds(4))
        let fired = Fired()
        timer.start(on: loop) { fired.count += 1 }
        loop.advanceTime(by: .milliseconds(3999))
        #expect(fired.count == 0, "not before the timeout")
        loop.advanceTime(by: .seconds(1))
        #expect(fired.count == 1, "at most a quarter of the timeout late")
        loop.advanceTime(by: .seconds(4))
        #expect(fired.count == 2, "the count starts over")
        timer.stop()
        loop.advanceTime(by: .seconds(20))
        #expect(fired.count == 2, "a stopped timer never fires")
    }

    @Test func aReadPostponesTheTimeoutByAWholeTimeoutFromTheRead() {
        let loop = EmbeddedEventLoop()
        let timer = ReadTimer(timeout: .seconds(4))
        let fired = Fired()
        timer.start(on: loop) { fired.count += 1 }
        // Reads just before each tick, for longer than the timeout: never idle.
        for _ in 0..<12 {
            loop.advanceTime(by: .milliseconds(990))
            timer.restart()
            loop.advanceTime(by: .milliseconds(10))
        }
        #expect(fired.count == 0)
        // The last read was 10 ms before a tick: the timeout counts from the read, not from the tick.
        loop.advanceTime(by: .milliseconds(3980))
        #expect(fired.count == 0)
        loop.advanceTime(by: .seconds(1))
        #expect(fired.count == 1)
        timer.stop()
    }
}
