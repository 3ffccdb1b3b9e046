import SignalProtocol

/// Where profiles live: Django's database, behind one transaction per batch.
///
/// A store owns the transaction: it reads a ``StoreSnapshot`` for the batch inside
/// its write transaction, asks `plan` what to write, writes it (profile rows, dedupe
/// ids, sequences) and commits. The logic of the port lives in ``ProfileReceiver``;
/// stores know SQL, not Django semantics.
public protocol ProfileStore: Sendable {
    /// The limits the database enforces on the profile columns (read by the schema check).
    var columnLimits: ColumnLimits { get async }

    /// Applies one batch in one transaction and returns the plan it committed.
    ///
    /// Throws ``StoreError`` with code `.rejected` when the database refused a write
    /// (the transaction rolled back, nothing was written), `.unavailable` when it could
    /// not be reached.
    func apply(_ messages: [ProfileMessage], plan: @escaping @Sendable (StoreSnapshot) -> BatchPlan) async throws(StoreError)
        -> BatchPlan

    /// Verifies the Django schema; an empty list means it is usable.
    func checkSchema() async throws(StoreError) -> [SchemaProblem]

    /// Creates the worker's own tables (dedupe, sequences) if missing. Never touches Django's.
    func prepareWorkerTables() async throws(StoreError)

    /// Deletes dedupe ids recorded more than `seconds` ago; returns how many.
    func pruneApplied(olderThanSeconds seconds: Double) async throws(StoreError) -> Int
}

/// A store failure, with the context needed to act on it.
public struct StoreError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What kind of failure.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable { case unavailable, rejected, schema }
        private let base: Base

        /// The database cannot be reached or is busy; retrying later may work.
        public static let unavailable = Code(base: .unavailable)
        /// The database refused the content (constraint, type, length); retrying will not help.
        public static let rejected = Code(base: .rejected)
        /// The schema does not match what the worker needs.
        public static let schema = Code(base: .schema)

        public var description: String { base.rawValue }
    }

    /// The kind of failure.
    public var code: Code
    /// What failed, for logs and replies; no row data, no credentials.
    public var message: String
    /// The statement or operation that failed, for debugging.
    public var operation: String?

    /// Creates a store error.
    public init(_ code: Code, _ message: String, operation: String? = nil) {
        self.code = code
        self.message = message
        self.operation = operation
    }

    public var description: String { "\(code): \(message)" }
    public var debugDescription: String {
        operation.map { "\(code): \($0): \(message)" } ?? description
    }
}

/// One thing wrong with the database schema, as `signal-worker check` prints it.
public struct SchemaProblem: Sendable, Hashable, CustomStringConvertible {
    /// The table concerned.
    public var table: String
    /// The column concerned, if any.
    public var column: String?
    /// What is wrong and what to do about it.
    public var problem: String

    /// Creates a problem report.
    public init(table: String, column: String? = nil, problem: String) {
        self.table = table
        self.column = column
        self.problem = problem
    }

    public var description: String {
        column.map { "\(table).\($0): \(problem)" } ?? "\(table): \(problem)"
    }
}
