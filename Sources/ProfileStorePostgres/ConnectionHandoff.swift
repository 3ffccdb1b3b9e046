import PostgresNIO
import Synchronization

/// Hands a pooled connection from the task that leases it to the operation that uses it, so
/// that the operation can stop waiting (acquire timeout, cancellation) without waiting for the
/// lease to end.
///
/// `PostgresClient.withConnection` only lends a connection inside its closure, and its lease
/// request does not always end promptly when cancelled: against a server that accepts and never
/// answers, on a loaded machine, a batch with a 0.5 s acquire timeout took 10 s while the store
/// waited for the cancelled lease (postgres-nio 1.33.2; where exactly the cancellation is held up
/// was not pinned down). So the lease runs in a task of its own; the operation waits here for the
/// first of: the connection, a failure, the timeout, its own cancellation. A connection offered
/// after the operation gave up goes straight back to the pool.
final class ConnectionHandoff: Sendable {
    private enum State {
        /// The operation waits (its continuation, once it is suspended).
        case waiting(CheckedContinuation<PostgresConnection, any Error>?)
        /// The lease failed or the operation gave up before the connection came.
        case failed(any Error)
        /// The operation uses the connection; the lease task waits for it to be given back.
        case inUse(PostgresConnection, givenBack: CheckedContinuation<Void, Never>?)
        /// Given back (or never to be used).
        case done
    }

    private let state = Mutex<State>(.waiting(nil))

    // MARK: The operation's side

    /// Waits for the connection; throws the lease's error, or what ``fail(_:)`` was given.
    /// Not ended by cancellation by itself: pair it with `withTaskCancellationHandler` calling `fail`.
    func connection() async throws -> PostgresConnection {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<PostgresConnection, any Error>? in
                switch state {
                case .waiting:
                    state = .waiting(continuation)
                    return nil
                case .failed(let error):
                    return .failure(error)
                case .inUse(let connection, _):
                    return .success(connection)
                case .done:
                    return .failure(CancellationError())
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// Ends the wait with `error` if no connection came yet (timeout, cancellation, lease failure).
    func fail(_ error: any Error) {
        let waiter = state.withLock { state -> CheckedContinuation<PostgresConnection, any Error>? in
            guard case .waiting(let waiter) = state else { return nil }
            state = .failed(error)
            return waiter
        }
        waiter?.resume(throwing: error)
    }

    /// The connection, while the operation still uses it (for the operation timeout).
    var connectionInUse: PostgresConnection? {
        state.withLock { state in
            guard case .inUse(let connection, _) = state else { return nil }
            return connection
        }
    }

    /// The operation is done with the connection: the lease task returns it to the pool.
    func giveBack() {
        let leaseTask = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard case .inUse(_, let leaseTask) = state else { return nil }
            state = .done
            return leaseTask
        }
        leaseTask?.resume()
    }

    // MARK: The lease task's side

    /// Offers the leased connection; `false` when the operation no longer waits for it.
    func offer(_ connection: PostgresConnection) -> Bool {
        let outcome = state.withLock { state -> (taken: Bool, waiter: CheckedContinuation<PostgresConnection, any Error>?) in
            guard case .waiting(let waiter) = state else { return (false, nil) }
            state = .inUse(connection, givenBack: nil)
            return (true, waiter)
        }
        outcome.waiter?.resume(returning: connection)
        return outcome.taken
    }

    /// Waits until the operation gives the connection back (after a successful ``offer(_:)``).
    func untilGivenBack() async {
        await withCheckedContinuation { continuation in
            let returned = state.withLock { state -> Bool in
                guard case .inUse(let connection, _) = state else { return true }
                state = .inUse(connection, givenBack: continuation)
                return false
            }
            if returned { continuation.resume() }
        }
    }
}
