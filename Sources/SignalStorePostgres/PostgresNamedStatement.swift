import Logging
import PostgresNIO
import SignalInbox

/// A statement of the store, run as a named prepared statement: each connection parses and
/// plans it once and then only binds and executes it. With unnamed statements PostgreSQL
/// parses and plans every statement of every batch again (the server log of a one-message
/// transaction showed about 1 ms of parse + bind against about 0.3 ms of execution).
///
/// postgres-nio prepares a ``PostgresPreparedStatement`` once per connection under its `name`,
/// but takes `name` and `sql` from *static* properties, while this store's SQL depends on the
/// configured table names. So ``NamedStatementCall`` reads both from a task-local that
/// ``run(_:binds:on:logger:decode:)`` binds around the call: postgres-nio reads them when the
/// call starts (and on its error path), inside that scope. The name is derived from the SQL,
/// so one name always means one text (and every connection belongs to one store anyway).
struct PostgresNamedStatement: Sendable, Hashable {
    /// `sw_` and a 64-bit FNV-1a hash of the SQL, in hex.
    let name: String
    let sql: String

    init(sql: String) {
        self.sql = sql
        name = "sw_" + String(StableHash.fnv1a(sql.utf8), radix: 16)
    }

    @TaskLocal fileprivate static var current: PostgresNamedStatement?

    /// Executes the statement on `connection` with `binds` and returns its rows, decoded by `decode`.
    func run<Row: Sendable>(
        _ binds: PostgresBindings, on connection: PostgresConnection, logger: Logger,
        decode: @escaping @Sendable (PostgresRow) throws -> Row
    ) async throws -> [Row] {
        try await Self.$current.withValue(self) {
            var rows: [Row] = []
            let call = NamedStatementCall(binds: binds, decode: decode)
            for try await row in try await connection.execute(call, logger: logger) {
                rows.append(row)
            }
            return rows
        }
    }
}

/// One execution of the ``PostgresNamedStatement`` bound in the current task.
private struct NamedStatementCall<Row: Sendable>: PostgresPreparedStatement {
    let binds: PostgresBindings
    let decode: @Sendable (PostgresRow) throws -> Row

    static var name: String { statement.name }
    static var sql: String { statement.sql }

    private static var statement: PostgresNamedStatement {
        guard let statement = PostgresNamedStatement.current else {
            preconditionFailure("a NamedStatementCall runs only inside PostgresNamedStatement.run")
        }
        return statement
    }

    func makeBindings() throws -> PostgresBindings { binds }

    func decodeRow(_ row: PostgresRow) throws -> Row { try decode(row) }
}
