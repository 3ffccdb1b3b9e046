import ServiceLifecycle
import Synchronization

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
        let outcome = FirstOutcome()
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

/// The first of several possible outcomes; later ones are ignored.
private final class FirstOutcome: Sendable {
    private enum State {
        case pending([CheckedContinuation<BoundedStop.Outcome, Never>])
        case settled(BoundedStop.Outcome)
    }

    private let state = Mutex<State>(.pending([]))

    /// Records `outcome` unless one was recorded already, and wakes every waiter.
    func settle(_ outcome: BoundedStop.Outcome) {
        let waiters = state.withLock { state -> [CheckedContinuation<BoundedStop.Outcome, Never>] in
            guard case .pending(let waiters) = state else { return [] }
            state = .settled(outcome)
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: outcome) }
    }

    /// The outcome, once there is one (waiting is not ended by cancellation).
    var value: BoundedStop.Outcome {
        get async {
            await withCheckedContinuation { continuation in
                let settled = state.withLock { state -> BoundedStop.Outcome? in
                    switch state {
                    case .settled(let outcome):
                        return outcome
                    case .pending(let waiters):
                        state = .pending(waiters + [continuation])
                        return nil
                    }
                }
                if let settled { continuation.resume(returning: settled) }
            }
        }
    }
}
