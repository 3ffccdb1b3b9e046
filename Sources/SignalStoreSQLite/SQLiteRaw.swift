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

    /// Wraps a statement of `db`'s cache (`db.cachedStatement(sql:)`), reset and unbound.
    init(_ statement: Statement, in db: Database) {
        self.statement = statement
        self.handle = statement.sqliteStatement
        self.connection = db.sqliteConnection
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    // MARK: Running

    /// Binds `values`, then `trailing`, to the parameters 1, 2, … in that order, runs the
    /// statement, appends every row it returns to `rows`, and leaves it reset and unbound.
    ///
    /// Text is not copied by SQLite value by value (`SQLITE_TRANSIENT` cost a `malloc` and a `free`
    /// per bound string: about a quarter of the worker's allocations). The bytes of every text value
    /// are copied once into one buffer, bound from there (`SQLITE_STATIC`, with their byte length, so
    /// text containing NUL is stored whole), and the buffer is freed only after the parameters
    /// are cleared: no binding outlives the memory it points to.
    func run(binding values: ArraySlice<SQLValue>, then trailing: [SQLValue] = [], into rows: inout [SQLRow]) throws {
        var textBytes = 0
        for value in values { if case .text(let text) = value { textBytes += text.utf8.count } }
        for value in trailing { if case .text(let text) = value { textBytes += text.utf8.count } }
        // At least one byte: an empty string is bound from a real address (a NULL one would bind NULL).
        let texts = UnsafeMutablePointer<CChar>.allocate(capacity: max(textBytes, 1))
        defer {
            sqlite3_clear_bindings(handle)
            texts.deallocate()
        }
        var used = 0
        var index: Int32 = 1
        func bind(_ value: SQLValue) {
            switch value {
            case .null: sqlite3_bind_null(handle, index)
            case .integer(let integer): sqlite3_bind_int64(handle, index, integer)
            case .real(let real): sqlite3_bind_double(handle, index, real)
            case .text(var text):
                let start = texts + used
                let count = text.withUTF8 { bytes in
                    if let base = bytes.baseAddress { UnsafeMutableRawPointer(start).copyMemory(from: base, byteCount: bytes.count) }
                    return bytes.count
                }
                used += count
                _ = sqlite3_bind_text(handle, index, start, Int32(count), nil)  // nil: SQLITE_STATIC
            }
            index += 1
        }
        for value in values { bind(value) }
        for value in trailing { bind(value) }
        try collect(into: &rows)
    }

    /// Advances to the next row: `true` when there is one, `false` when done.
    private func step() throws -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code: throw failure(code)
        }
    }

    /// Runs the statement, appending every row it returns to `rows`, then resets it.
    private func collect(into rows: inout [SQLRow]) throws {
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
