import ServiceLifecycle

/// Runs work that is asked to stop by cancellation (or a graceful shutdown) but may not stop
/// in time, and stops waiting for it a bounded time after the request.
///
/// postgres-nio's pool ends when cancelled, but version 1.33.2 can keep it waiting for a
/// connection attempt in flight (vapor/postgres-nio#599): a worker told to stop while its
/// database is unreachable would then not exit. With this, ``run(_:stopTimeout:)`` returns
/// at most `stopTimeout` after the request; the work is left running unobserved (the
/// process is about to exit).
enum BoundedStop {
    /// How the wait ended.
    enum Outcome: Equatable, Sendable {
        /// The work returned (by itself, or after the stop request within the timeout).
        case ended
        /// The work was still running `stopTimeout` after the stop request.
        case abandoned
    }

    /// Runs `work` in a task of its own (which inherits task-local values, so ServiceLifecycle's
    /// graceful shutdown reaches it) and waits for it; on cancellation of the caller the task is
    /// cancelled too. Either request starts the `stopTimeout` clock.
    static func run(
        _ work: @escaping @Sendable () async -> Void, stopTimeout: Duration
    ) async -> Outcome {
        let outcome = FirstOutcome<Outcome>()
        let task = Task {
            await work()
            outcome.settle(.ended)
        }
        let startStopClock: @Sendable () -> Void = {
            Task {
                try? await Task.sleep(for: stopTimeout)
                outcome.settle(.abandoned)
            }
        }
        return await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await outcome.value
            } onCancel: {
                task.cancel()
                startStopClock()
            }
        } onGracefulShutdown: {
            startStopClock()
        }
    }
}
