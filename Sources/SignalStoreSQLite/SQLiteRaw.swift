import GRDB
import GRDBSQLite
import SignalInbox

/// SQLite's C API on a statement that GRDB prepared and caches: the store's hot path.
///
/// GRDB's `StatementArguments` and `Row` cost more than the SQL itself at 1,000 messages
/// per batch (a generic map per argument array, a copy per row); binding and reading
/// columns directly roughly halves the time of a batch. GRDB still opens, configures and
/// caches the statements and owns the transaction. Strings are bound and read with their
/// byte length, so text containing NUL is stored whole, as Python's `sqlite3` (and hence
/// Django) stores it, where GRDB's own binding would cut it at the NUL.
///
/// Every raw pointer of the store lives in this file.
struct RawStatement {
    private let statement: Statement
    private let handle: OpaquePointer
    private let connection: OpaquePointer?

    /// `SQLITE_TRANSIENT`: SQLite copies bound text before the call returns.
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    /// Wraps a statement of `db`'s cache (`db.cachedStatement(sql:)`), reset and unbound.
    init(_ statement: Statement, in db: Database) {
        self.statement = statement
        self.handle = statement.sqliteStatement
        self.connection = db.sqliteConnection
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    // MARK: Binding (1-based indexes)

    func bind(_ value: Int64, at index: Int32) {
        sqlite3_bind_int64(handle, index, value)
    }

    func bind(_ value: Double, at index: Int32) {
        sqlite3_bind_double(handle, index, value)
    }

    func bind(_ value: String, at index: Int32) {
        value.withCString { pointer in
            _ = sqlite3_bind_text(handle, index, pointer, Int32(value.utf8.count), Self.transient)
        }
    }

    func bind(_ value: SQLValue, at index: Int32) {
        switch value {
        case .null: sqlite3_bind_null(handle, index)
        case .integer(let integer): bind(integer, at: index)
        case .real(let real): bind(real, at: index)
        case .text(let text): bind(text, at: index)
        }
    }

    // MARK: Running

    /// Advances to the next row: `true` when there is one, `false` when done.
    func step() throws -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code: throw failure(code)
        }
    }

    /// Runs the statement, appending every row it returns to `rows`, then resets it.
    func collect(into rows: inout [SQLRow]) throws {
        defer { sqlite3_reset(handle) }
        let count = sqlite3_column_count(handle)
        while try step() {
            var row: SQLRow = []
            row.reserveCapacity(Int(count))
            for column in 0..<count { row.append(value(column)) }
            rows.append(row)
        }
    }

    private func failure(_ code: Int32) -> DatabaseError {
        let message = connection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
        sqlite3_reset(handle)
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
    }

    // MARK: Columns of the current row (0-based indexes)

    /// The column as a ``SQLValue`` (a BLOB is read as text).
    func value(_ index: Int32) -> SQLValue {
        switch sqlite3_column_type(handle, index) {
        case SQLITE_NULL: .null
        case SQLITE_INTEGER: .integer(sqlite3_column_int64(handle, index))
        case SQLITE_FLOAT: .real(sqlite3_column_double(handle, index))
        default: .text(anyText(index))
        }
    }

    private func anyText(_ index: Int32) -> String {
        guard let pointer = sqlite3_column_text(handle, index) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, index))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }
}
