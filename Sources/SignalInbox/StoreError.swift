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

/// The worker's own tables after ``SignalStore/prepareWorkerTables()``: their schema version and
/// what an upgrade did.
///
/// Versions: 1 is the layout of releases before the table `signal_worker_schema` existed (order
/// per user in `signal_worker_user_sequence`); 2 keeps order per object (sender, pk) in
/// `signal_worker_object_sequence`.
public struct WorkerTablesReport: Sendable, Hashable, CustomStringConvertible {
    /// The version the tables have now, ``currentVersion``.
    public var version: Int
    /// The version found before an upgrade, `nil` when nothing was upgraded (new or current tables).
    public var upgradedFrom: Int?
    /// Rows moved from `signal_worker_user_sequence` by the upgrade from version 1.
    public var movedSequences: Int

    /// The version this release writes.
    public static let currentVersion = 2

    /// Creates a report.
    public init(version: Int = WorkerTablesReport.currentVersion, upgradedFrom: Int? = nil, movedSequences: Int = 0) {
        self.version = version
        self.upgradedFrom = upgradedFrom
        self.movedSequences = movedSequences
    }

    /// The error for worker tables at `version`, newer than this release's: they are left as they are.
    public static func newerVersionError(_ version: Int) -> StoreError {
        StoreError(
            .schema,
            "the worker tables are at schema version \(version), written by a newer signal-worker than this one "
                + "(version \(currentVersion)): run the newer release",
            operation: "prepare the worker tables")
    }

    public var description: String {
        guard let upgradedFrom else { return "worker tables at schema version \(version)" }
        return "worker tables upgraded from schema version \(upgradedFrom) to \(version): \(movedSequences) "
            + "last sequence(s) per user moved to the per-object table"
    }
}
