import PostgresNIO

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
    /// The leased connection, or why there is none (lease failure, acquire timeout, cancellation).
    private let leased = FirstOutcome<Swift.Result<PostgresConnection, any Error>>()
    /// Settled when the operation is done with the connection.
    private let givenBack = FirstOutcome<Void>()

    // MARK: The operation's side

    /// Waits for the connection; throws the lease's error, or what ``fail(_:)`` was given.
    /// Not ended by cancellation by itself: pair it with `withTaskCancellationHandler` calling `fail`.
    func connection() async throws -> PostgresConnection {
        try await leased.value.get()
    }

    /// Ends the wait with `error` if no connection came yet (timeout, cancellation, lease failure).
    func fail(_ error: any Error) {
        leased.settle(.failure(error))
    }

    /// The operation is done with the connection: the lease task returns it to the pool.
    func giveBack() {
        givenBack.settle(())
    }

    // MARK: The lease task's side

    /// Offers the leased connection; `false` when the operation no longer waits for it.
    func offer(_ connection: PostgresConnection) -> Bool {
        leased.settle(.success(connection))
    }

    /// Waits until the operation gives the connection back (after a successful ``offer(_:)``).
    func untilGivenBack() async {
        await givenBack.value
    }
}
