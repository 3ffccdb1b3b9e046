import GRDB
import SignalInbox

/// Turns GRDB and SQLite errors into ``StoreError``s without row data in the message.
enum SQLiteErrors {
    /// Maps an error thrown while using the database.
    ///
    /// - Busy, locked, I/O, cannot-open, disk-full, out-of-memory, interrupted:
    ///   `.unavailable` (retrying later may work).
    /// - Constraint, datatype mismatch, too big, bind out of range: `.rejected`.
    /// - "no such table/column": `.schema`.
    /// - Anything else: `.unavailable`, so that the message is retried rather than dropped.
    static func storeError(_ error: any Error, operation: String) -> StoreError {
        if let error = error as? StoreError { return error }
        if error is CancellationError {
            return StoreError(.unavailable, "the operation was cancelled", operation: operation)
        }
        guard let error = error as? DatabaseError else {
            return StoreError(.unavailable, "unexpected error: \(type(of: error))", operation: operation)
        }
        // SQLite's messages name tables, columns and constraints, never bound values; the
        // SQL text has placeholders only.
        let detail = "SQLite error \(error.extendedResultCode.rawValue): \(error.message ?? "no message")"
        let context = error.sql.map { "\(operation): \($0)" } ?? operation
        switch error.resultCode {
        case .SQLITE_CONSTRAINT, .SQLITE_MISMATCH, .SQLITE_TOOBIG, .SQLITE_RANGE:
            return StoreError(.rejected, detail, operation: context)
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return StoreError(.unavailable, "\(detail) (another connection held the lock past the busy timeout)", operation: context)
        case .SQLITE_ERROR:
            let message = error.message ?? ""
            if message.hasPrefix("no such table") || message.hasPrefix("no such column")
                || message.contains("has no column named")
            {
                return StoreError(.schema, "\(detail) (run `python manage.py migrate` and `signal-worker check`)", operation: context)
            }
            return StoreError(.unavailable, detail, operation: context)
        default:
            return StoreError(.unavailable, detail, operation: context)
        }
    }
}
