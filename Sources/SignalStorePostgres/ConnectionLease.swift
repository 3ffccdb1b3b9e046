import Synchronization

/// The meeting point of a store operation waiting for its outcome and the task that leases a
/// pooled connection and runs the operation on it.
///
/// `PostgresClient.withConnection` only lends a connection inside its closure, and its lease
/// request does not always end promptly when cancelled: against a server that accepts and never
/// answers, on a loaded machine, a batch with a 0.5 s acquire timeout took 10 s while the store
/// waited for the cancelled lease (postgres-nio 1.33.2). So the caller never waits for that task:
/// it waits here for the first of the operation's result, a failure to lease, its own timeouts
/// and its cancellation. A connection that arrives after the caller gave up goes straight back.
final class ConnectionLease<Value: Sendable>: Sendable {
    private enum Phase {
        case waiting, claimed, abandoned
    }

    private let phase = Mutex(Phase.waiting)
    private let result = FirstOutcome<Result<Value, any Error>>()

    // MARK: The caller's side

    /// The operation's result, or why there is none. Not ended by cancellation by itself: pair
    /// it with `withTaskCancellationHandler` calling ``giveUp(_:)``.
    func outcome() async throws -> Value {
        try await result.value.get()
    }

    /// Stops waiting for a connection (acquire timeout, cancellation), failing with `error`;
    /// `false`, and no effect, once a connection was claimed: then only the operation's end or
    /// its timeout settle the outcome.
    func giveUp(_ error: any Error) -> Bool {
        let gaveUp = leaveWaiting(for: .abandoned)
        if gaveUp { result.settle(.failure(error)) }
        return gaveUp
    }

    // MARK: The lease task's side

    /// A connection was leased: `true` if the caller still waits (the task runs the operation on
    /// it), `false` if it gave up (the task gives the connection straight back).
    func claim() -> Bool {
        leaveWaiting(for: .claimed)
    }

    /// Moves from `waiting` to `next`; `false` if another phase came first (claim and give-up race).
    private func leaveWaiting(for next: Phase) -> Bool {
        phase.withLock { phase -> Bool in
            guard phase == .waiting else { return false }
            phase = next
            return true
        }
    }

    /// Records the outcome unless there is one already (the first wins: result, lease failure,
    /// operation timeout); `true` when this call settled it.
    @discardableResult
    func settle(_ outcome: Result<Value, any Error>) -> Bool {
        result.settle(outcome)
    }
}
