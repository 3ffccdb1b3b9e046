import SignalInbox
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing

@testable import SignalStorePostgres

/// `BoundedStop`: the PostgreSQL store's `run()` returns a bounded time after a stop request.
@Suite("Bounded stop of the connection pool", .timeLimit(.minutes(1)))
struct BoundedStopTests {
    /// Work that ignores cancellation and returns only after `duration`.
    static func stubborn(for duration: Duration) -> @Sendable () async -> Void {
        {
            let deadline = ContinuousClock.now + duration
            while ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        }
    }

    @Test("work that ends by itself: .ended, without a stop request")
    func endsByItself() async {
        let outcome = await BoundedStop.run(Self.stubborn(for: .milliseconds(50)), stopTimeout: .seconds(30))
        #expect(outcome == .ended)
    }

    @Test("work that ends when cancelled: .ended, at once")
    func endsOnCancellation() async {
        let running = Task {
            await BoundedStop.run({ try? await Task.sleep(for: .seconds(60)) }, stopTimeout: .seconds(30))
        }
        try? await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        running.cancel()
        #expect(await running.value == .ended)
        #expect(start.duration(to: .now) < .seconds(10))
    }

    @Test("work that ignores cancellation: .abandoned after the stop timeout, long before the work ends")
    func abandonsStubbornWork() async {
        let running = Task { await BoundedStop.run(Self.stubborn(for: .seconds(20)), stopTimeout: .milliseconds(300)) }
        try? await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        running.cancel()
        #expect(await running.value == .abandoned)
        let elapsed = start.duration(to: .now)
        #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(10), "took \(elapsed)")
    }

    @Test("a graceful shutdown reaches the work, and starts the stop clock for work that ignores it")
    func gracefulShutdown() async {
        final class Flag: Sendable { let raised = Atomic(false) }
        let sawShutdown = Flag()
        await testGracefulShutdown { trigger in
            let running = Task {
                await BoundedStop.run(
                    {
                        await withGracefulShutdownHandler {
                            try? await Task.sleep(for: .seconds(60))  // ends only when cancelled
                        } onGracefulShutdown: {
                            sawShutdown.raised.store(true, ordering: .relaxed)
                        }
                    }, stopTimeout: .milliseconds(300))
            }
            try? await Task.sleep(for: .milliseconds(50))
            trigger.triggerGracefulShutdown()
            #expect(await running.value == .abandoned)
        }
        let shutdownReachedTheWork = sawShutdown.raised.load(ordering: .relaxed)
        #expect(shutdownReachedTheWork)
    }
}
