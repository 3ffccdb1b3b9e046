/// The SQL a store speaks. A receiver writes its statements once per dialect; nothing else
/// differs between the stores it runs on.
public enum SQLDialect: String, Sendable, Hashable, CaseIterable {
    /// SQLite (Django's `db.sqlite3`): `?` parameters; a batch's rows are spliced in as `VALUES` rows.
    case sqlite
    /// PostgreSQL: `$n` parameters; a batch's rows are bound column by column as arrays.
    case postgres
}

/// A value bound to or read from a statement.
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    /// The integer, `nil` for NULL or another type.
    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The text, `nil` for NULL or another type.
    public var text: String? {
        if case .text(let value) = self { return value }
        return nil
    }

    /// Whether the value is NULL.
    public var isNull: Bool { self == .null }

    /// A boolean read from the database (`EXISTS`, a flag): a non-zero integer or `true`.
    public var isTrue: Bool {
        if case .integer(let value) = self { return value != 0 }
        return false
    }
}

/// A nullable text value.
extension SQLValue {
    /// `.text(value)`, or `.null` for `nil`.
    public static func text(_ value: String?) -> SQLValue { value.map(SQLValue.text) ?? .null }
}

/// The type of one column of a batch's rows; PostgreSQL binds each column as an array of it.
public enum SQLColumnType: String, Sendable, Hashable {
    /// `int8[]` on PostgreSQL.
    case integer
    /// `float8[]` on PostgreSQL.
    case real
    /// `text[]` on PostgreSQL.
    case text
}

/// One row a statement returned, its columns in `SELECT` order.
public typealias SQLRow = [SQLValue]

/// A statement run once for a whole batch, with one row of values per item of the batch.
///
/// - **SQLite** (``SQLDialect/sqlite``): `sql` contains the marker ``rowsMarker``, which the store
///   replaces with `(?, ?), (?, ?), …`, one group per row (cut into chunks of a few fixed sizes, so
///   that statements are prepared once and stay under SQLite's parameter limit); the rows' values
///   are bound first, then ``parameters``. Use it as `VALUES {rows}` or `IN ({rows})`.
/// - **PostgreSQL** (``SQLDialect/postgres``): the rows are bound column by column as arrays,
///   `$1 … $n` for the ``columns`` in order (`unnest($1::int8[], $2::text[])`), then ``parameters``
///   as `$n+1 …`. The statement runs once, as a prepared statement of its connection.
///
/// A statement without rows runs once with its parameters when it has no marker and no columns;
/// a statement that has columns but an empty batch of rows is not run at all.
public struct BatchStatement: Sendable, Hashable {
    /// What the store checks after running the statement.
    public enum Expectation: Sendable, Hashable {
        /// Nothing.
        case none
        /// Every row changed exactly one row of the table (an `UPDATE` whose rows were read in
        /// this transaction); otherwise the batch is refused (`StoreError.rejected`) and rolls back.
        /// On PostgreSQL the statement must return one row per changed row (`RETURNING 1`); the store
        /// counts them on the server.
        case oneChangePerRow
    }

    /// The marker the SQLite store replaces with the rows' placeholder groups.
    public static let rowsMarker = "{rows}"

    /// The statement text, in the dialect of the store it is meant for.
    public var sql: String
    /// The types of the rows' columns (their count is the arity of a row).
    public var columns: [SQLColumnType]
    /// The rows' values, row after row (`columns.count` values per row): one flat array, not an
    /// array per row, so a batch of a thousand rows costs one allocation.
    public private(set) var values: [SQLValue]
    /// Values bound after the rows (SQLite) or after the column arrays (PostgreSQL).
    public var parameters: [SQLValue]
    /// What the store checks after running it.
    public var expectation: Expectation
    /// Names the statement in errors ("update profiles").
    public var purpose: String

    /// Creates a statement whose rows' values are given row after row in `values`
    /// (`values.count` is a multiple of `columns.count`).
    public init(
        _ purpose: String, sql: String, columns: [SQLColumnType] = [], values: [SQLValue],
        parameters: [SQLValue] = [], expectation: Expectation = .none
    ) {
        precondition(
            columns.isEmpty ? values.isEmpty : values.count % columns.count == 0,
            "\(purpose): \(values.count) values do not make rows of \(columns.count) columns")
        self.purpose = purpose
        self.sql = sql
        self.columns = columns
        self.values = values
        self.parameters = parameters
        self.expectation = expectation
    }

    /// Creates a statement with one array of values per row (each has `columns.count` values).
    public init(
        _ purpose: String, sql: String, columns: [SQLColumnType] = [], rows: [[SQLValue]] = [],
        parameters: [SQLValue] = [], expectation: Expectation = .none
    ) {
        precondition(rows.allSatisfy { $0.count == columns.count }, "\(purpose): a row does not have \(columns.count) values")
        self.init(
            purpose, sql: sql, columns: columns, values: rows.flatMap { $0 }, parameters: parameters,
            expectation: expectation)
    }

    /// Creates a statement with one row per element of `items`, whose values `row` appends.
    ///
    /// Inlinable so that it is specialized where it is called: unspecialized, each element is read
    /// through the `Collection` witness, which allocates a frame per element (one `malloc` per row).
    @inlinable
    public init<Items: Collection>(
        _ purpose: String, sql: String, columns: [SQLColumnType], rows items: Items,
        parameters: [SQLValue] = [], expectation: Expectation = .none,
        values row: (Items.Element, inout [SQLValue]) -> Void
    ) {
        var values: [SQLValue] = []
        values.reserveCapacity(items.count * columns.count)
        for item in items { row(item, &values) }
        self.init(purpose, sql: sql, columns: columns, values: values, parameters: parameters, expectation: expectation)
    }

    /// The number of rows.
    public var rowCount: Int { columns.isEmpty ? 0 : values.count / columns.count }

    /// The rows, one array each (for reading in tests; the stores read ``values``).
    public var rows: [[SQLValue]] {
        guard !columns.isEmpty else { return [] }
        return stride(from: 0, to: values.count, by: columns.count).map { Array(values[$0..<($0 + columns.count)]) }
    }

    /// Whether the store skips it: it has columns but no rows.
    public var isEmpty: Bool { !columns.isEmpty && values.isEmpty }
}

/// SQL identifier quoting, `"name"` with inner quotes doubled: the one quoting function of every
/// store and receiver. Table names come from configuration and are also checked at start-up.
public enum SQLIdentifier {
    /// The quoted identifier.
    public static func quoted(_ identifier: String) -> String {
        var out = "\""
        for character in identifier {
            if character == "\"" { out += "\"\"" } else { out.append(character) }
        }
        return out + "\""
    }
}
