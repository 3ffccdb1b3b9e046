import GRDB
import GRDBSQLite
import ProfileReceiver

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

    func bind(_ value: String?, at index: Int32) {
        if let value { bind(value, at: index) } else { sqlite3_bind_null(handle, index) }
    }

    /// Binds a date as Django stores it, `YYYY-MM-DD` (without building a `String`).
    func bind(_ value: DjangoDate?, at index: Int32) {
        guard let value else {
            sqlite3_bind_null(handle, index)
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 10) { buffer in
            func put(_ number: Int, digits: Int, at offset: Int) {
                var number = number
                for position in stride(from: offset + digits - 1, through: offset, by: -1) {
                    buffer[position] = UInt8(ascii: "0") + UInt8(number % 10)
                    number /= 10
                }
            }
            put(value.year, digits: 4, at: 0)
            buffer[4] = UInt8(ascii: "-")
            put(value.month, digits: 2, at: 5)
            buffer[7] = UInt8(ascii: "-")
            put(value.day, digits: 2, at: 8)
            buffer.withMemoryRebound(to: CChar.self) { text in
                _ = sqlite3_bind_text(handle, index, text.baseAddress, 10, Self.transient)
            }
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

    /// Runs a statement that returns no rows, then resets it for the next use.
    func execute() throws {
        defer { sqlite3_reset(handle) }
        while try step() {}
    }

    /// Resets the statement so that it can be bound again.
    func reset() {
        sqlite3_reset(handle)
    }

    private func failure(_ code: Int32) -> DatabaseError {
        let message = connection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
        sqlite3_reset(handle)
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
    }

    // MARK: Columns of the current row (0-based indexes)

    func isNull(_ index: Int32) -> Bool {
        sqlite3_column_type(handle, index) == SQLITE_NULL
    }

    func int64(_ index: Int32) -> Int64 {
        sqlite3_column_int64(handle, index)
    }

    /// The column as text; `nil` when it is NULL or not text.
    func text(_ index: Int32) -> String? {
        guard sqlite3_column_type(handle, index) == SQLITE_TEXT, let pointer = sqlite3_column_text(handle, index) else {
            return nil
        }
        let count = Int(sqlite3_column_bytes(handle, index))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }
}
