import PostgresNIO
import SignalInbox

/// No pooled connection became available in time (server unreachable, or `run()` not running).
struct ConnectionAcquireTimeout: Error {
    var timeout: Duration
}

/// An operation held its connection longer than `operationTimeout`; the connection was closed.
struct OperationTimeout: Error {
    var timeout: Duration
}

/// Turns postgres-nio errors into ``StoreError``s whose messages hold no row data and no password.
enum PostgresErrors {
    /// Maps an error thrown while using the database.
    ///
    /// - SQLSTATE class 23 (integrity constraint) and 22 (data exception): `.rejected`.
    /// - 42P01 (undefined table), 42703 (undefined column): `.schema`.
    /// - Everything else (refused or lost connections, timeouts, pool closed, deadlock,
    ///   serialization failure, server shutting down, authentication): `.unavailable`,
    ///   which the shim retries.
    static func storeError(_ error: any Error, operation: String) -> StoreError {
        if let error = error as? StoreError { return error }
        if let timeout = error as? ConnectionAcquireTimeout {
            return StoreError(
                .unavailable,
                "no PostgreSQL connection within \(timeout.timeout) (server unreachable, pool exhausted, "
                    + "or the store's run() is not running)",
                operation: operation)
        }
        if let timeout = error as? OperationTimeout {
            return StoreError(
                .unavailable,
                "the operation did not finish within \(timeout.timeout); its connection was closed "
                    + "(server or network gone mid-transaction, or a lock held that long)",
                operation: operation)
        }
        if error is CancellationError {
            return StoreError(.unavailable, "the operation was cancelled", operation: operation)
        }
        guard let error = error as? PSQLError else {
            // NIO connect errors (connection refused, timeouts) and pool errors.
            return StoreError(.unavailable, "cannot reach PostgreSQL: \(type(of: error))", operation: operation)
        }
        guard error.code == .server, let info = error.serverInfo, let state = info[.sqlState] else {
            return StoreError(.unavailable, "PostgreSQL connection failed: \(error.code)", operation: operation)
        }
        let stateClass = state.prefix(2)
        var detail = "SQLSTATE \(state)"
        // Server messages of these classes name objects, not values; data exceptions (22)
        // and user-raised errors may quote the offending value, so they are left out.
        if ["23", "40", "42", "53", "55", "57", "08", "28", "3D"].contains(stateClass), let message = info[.message] {
            detail += ": \(message)"
        }
        let names = [("table", info[.tableName]), ("column", info[.columnName]), ("constraint", info[.constraintName])]
            .compactMap { name, value in value.map { "\(name) \($0)" } }
        if !names.isEmpty { detail += " (\(names.joined(separator: ", ")))" }

        switch state {
        case _ where stateClass == "23" || stateClass == "22":
            return StoreError(.rejected, "PostgreSQL refused the write: \(detail)", operation: operation)
        case "42P01", "42703":
            return StoreError(
                .schema, "\(detail); run `python manage.py migrate` and `signal-worker check`", operation: operation)
        default:
            return StoreError(.unavailable, "PostgreSQL error \(detail)", operation: operation)
        }
    }
}
