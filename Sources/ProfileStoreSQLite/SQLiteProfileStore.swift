import Foundation
import GRDB
import ProfileReceiver
import Synchronization

/// A ``ProfileStore`` over Django's SQLite database file, shared with the running Django process.
///
/// - The database is opened in WAL mode (a GRDB `DatabasePool`: one writer connection,
///   a few readers), so Django's readers never wait for the worker and the reverse.
/// - Every write transaction is `BEGIN IMMEDIATE`: the write lock is taken before the
///   first read, so a concurrent Django write makes the worker wait (up to
///   ``SQLiteStoreConfiguration/busyTimeout``) instead of failing with "database is
///   locked" in the middle of a read-then-write transaction. It waits by retrying every
///   0.5 ms (``SQLiteBusyWait``), not with SQLite's backing-off handler, which a Django
///   saving back to back can starve until the timeout.
/// - Foreign keys are enforced (Django's `user_id` key is `DEFERRABLE INITIALLY
///   DEFERRED`, so SQLite checks it at commit).
/// - `PRAGMA synchronous` is ``SQLiteStoreConfiguration/synchronous``: `FULL` unless
///   configured otherwise (acknowledged commits survive a power loss); see
///   ``SQLiteStoreConfiguration/Synchronous`` for when `NORMAL` is safe too. A batch whose
///   messages all say `durable: false` (their producer keeps them in an outbox row of this
///   file, or does not need them to survive a power loss) commits with `NORMAL`.
///
/// ```swift
/// let store = try SQLiteProfileStore(configuration: SQLiteStoreConfiguration(path: "db.sqlite3"))
/// try await store.prepareWorkerTables()
/// let problems = try await store.checkSchema()   // empty: ready
/// let outcomes = await ProfileReceiver().apply(messages, to: store)
/// ```
public final class SQLiteProfileStore: ProfileStore {
    /// The configuration the store was opened with.
    public let configuration: SQLiteStoreConfiguration
    private let pool: DatabasePool
    /// `PRAGMA synchronous` of the writer connection now (set before a batch when it must change).
    private let writerSynchronous: Mutex<SQLiteStoreConfiguration.Synchronous>
    private let statements: SQLiteStatements

    /// Opens (and, with ``SQLiteStoreConfiguration/createIfMissing``, creates) the database.
    ///
    /// Switches the file to WAL mode if it is not already (Django works unchanged in WAL
    /// mode; the mode is persistent). Throws `.unavailable` when the file is missing or
    /// cannot be opened.
    public convenience init(configuration: SQLiteStoreConfiguration) throws(StoreError) {
        try self.init(configuration: configuration, assumingSQLiteVersion: nil)
    }

    /// Opens the store; `assumingSQLiteVersion` (e.g. `3_031_001`) makes it use the SQL it
    /// would use with that library version (tests of the fallbacks for old SQLite).
    init(configuration: SQLiteStoreConfiguration, assumingSQLiteVersion: Int?) throws(StoreError) {
        if !configuration.createIfMissing, !FileManager.default.fileExists(atPath: configuration.path) {
            throw StoreError(
                .unavailable,
                "no SQLite database at \(configuration.path) (Django creates it with `python manage.py migrate`)",
                operation: "open")
        }
        var grdb = Configuration()
        grdb.label = "SQLiteProfileStore"
        grdb.busyMode = .callback(SQLiteBusyWait(timeout: configuration.busyTimeout).callback)
        grdb.foreignKeysEnabled = true
        grdb.maximumReaderCount = max(1, configuration.maximumReaderCount)
        self.configuration = configuration
        writerSynchronous = Mutex(configuration.synchronous)
        do {
            pool = try DatabasePool(path: configuration.path, configuration: grdb)
            // GRDB sets `synchronous = NORMAL` when it enables WAL: set ours afterwards
            // (the pragma is per connection; only the writer connection writes).
            let pragma = "PRAGMA synchronous = \(configuration.synchronous.rawValue)"
            let version = try pool.writeWithoutTransaction { db in
                try db.execute(sql: pragma)
                // "3.40.1" -> 3_040_001, as SQLITE_VERSION_NUMBER.
                let text = try String.fetchOne(db, sql: "SELECT sqlite_version()") ?? ""
                return text.split(separator: ".").prefix(3).reduce(0) { $0 * 1000 + (Int($1) ?? 0) }
            }
            self.statements = SQLiteStatements(configuration, sqliteVersion: assumingSQLiteVersion ?? version)
        } catch {
            throw SQLiteErrors.storeError(error, operation: "open \(configuration.path)")
        }
    }

    /// SQLite does not enforce `varchar(n)` lengths and stores NUL characters as is.
    public var columnLimits: ColumnLimits { .unenforced }

    /// Applies one batch in one `BEGIN IMMEDIATE` transaction: reads the snapshot, asks
    /// `plan`, writes profiles, dedupe ids and sequences, commits.
    public func apply(_ messages: [ProfileMessage], plan: @escaping @Sendable (StoreSnapshot) -> BatchPlan)
        async throws(StoreError) -> BatchPlan
    {
        let statements = self.statements
        let synchronous = Self.synchronous(for: messages, configured: configuration.synchronous)
        do {
            return try await pool.writeWithoutTransaction { db in
                try self.setWriterSynchronous(synchronous, db)
                var committed = BatchPlan()
                try db.inTransaction(.immediate) {
                    let snapshot = try statements.readSnapshot(for: messages, in: db)
                    committed = plan(snapshot)
                    try statements.write(committed, in: db, now: Date().timeIntervalSince1970)
                    return .commit
                }
                return committed
            }
        } catch {
            throw SQLiteErrors.storeError(error, operation: "apply a batch of \(messages.count)")
        }
    }

    /// The durability a batch's commit needs: `NORMAL` when every message says it may do without
    /// `FULL` (``ProfileMessage/durable`` false), else the configured level.
    static func synchronous(
        for messages: [ProfileMessage], configured: SQLiteStoreConfiguration.Synchronous
    ) -> SQLiteStoreConfiguration.Synchronous {
        messages.mayCommitWithoutSync ? .normal : configured
    }

    /// Sets the writer connection's `PRAGMA synchronous` (outside a transaction) if it differs.
    private func setWriterSynchronous(_ level: SQLiteStoreConfiguration.Synchronous, _ db: Database) throws {
        guard writerSynchronous.withLock({ $0 }) != level else { return }
        try db.execute(sql: "PRAGMA synchronous = \(level.rawValue)")
        writerSynchronous.withLock { $0 = level }
    }

    /// Reports what is missing or wrong in Django's tables; an empty list means usable.
    public func checkSchema() async throws(StoreError) -> [SchemaProblem] {
        let configuration = self.configuration
        do {
            return try await pool.read { db in try SQLiteSchemaCheck(configuration: configuration).problems(in: db) }
        } catch {
            throw SQLiteErrors.storeError(error, operation: "check the schema")
        }
    }

    /// Creates the worker's tables if missing and upgrades an earlier release's layout, in one
    /// `BEGIN IMMEDIATE` transaction. Never touches Django's tables.
    @discardableResult
    public func prepareWorkerTables() async throws(StoreError) -> WorkerTablesReport {
        let statements = self.statements
        do {
            return try await pool.writeWithoutTransaction { db in
                var report = WorkerTablesReport()
                try db.inTransaction(.immediate) {
                    report = try statements.prepareWorkerTables(in: db)
                    return .commit
                }
                return report
            }
        } catch {
            throw SQLiteErrors.storeError(error, operation: "prepare the worker tables")
        }
    }

    /// Deletes dedupe ids applied more than `seconds` ago; returns how many.
    ///
    /// Walks the dedupe table in primary-key order, 10,000 ids per transaction, so that
    /// Django never waits long for the write lock however large the table is.
    public func pruneApplied(olderThanSeconds seconds: Double) async throws(StoreError) -> Int {
        let statements = self.statements
        let cutoff = Date().timeIntervalSince1970 - seconds
        var total = 0
        var after = ""  // sorts before every id (ids are never empty)
        do {
            while true {
                let start = after
                let (deleted, pageEnd, pageCount) = try await pool.writeWithoutTransaction { db in
                    var result: (Int, String?, Int) = (0, nil, 0)
                    try db.inTransaction(.immediate) {
                        guard
                            let page = try Row.fetchOne(
                                db, sql: statements.prunePageEnd, arguments: [start, SQLiteStatements.prunePageSize]),
                            let end = page[0] as String?
                        else { return .commit }
                        try db.execute(sql: statements.prunePage, arguments: [start, end, cutoff])
                        result = (db.changesCount, end, page[1])
                        return .commit
                    }
                    return result
                }
                total += deleted
                guard let pageEnd, pageCount == SQLiteStatements.prunePageSize else { return total }
                after = pageEnd
            }
        } catch {
            throw SQLiteErrors.storeError(error, operation: "prune the dedupe table")
        }
    }

    /// Creates a minimal `auth_user` and the profile table exactly as Django 5.2's
    /// migrations do, each only if missing.
    ///
    /// For trials and tests without Django; normally Django's migrations
    /// (`python manage.py migrate`) create these tables, and the worker never should.
    public func createDjangoCompatibleSchema() async throws(StoreError) {
        try await executeImmediately(statements.djangoCompatibleDDL, operation: "create the Django-compatible schema")
    }

    /// Runs `sql` (DDL) in one `BEGIN IMMEDIATE` transaction.
    private func executeImmediately(_ sql: String, operation: String) async throws(StoreError) {
        do {
            try await pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    try db.execute(sql: sql)
                    return .commit
                }
            }
        } catch {
            throw SQLiteErrors.storeError(error, operation: operation)
        }
    }

    /// The value of `PRAGMA name` on the writer connection (for tests).
    func writerPragma(_ name: String) async throws -> String? {
        let sql = "PRAGMA \(name)"
        return try await pool.writeWithoutTransaction { db in try String.fetchOne(db, sql: sql) }
    }

    /// Closes the database connections; later calls fail with `.unavailable`.
    public func close() throws(StoreError) {
        do {
            try pool.close()
        } catch {
            throw SQLiteErrors.storeError(error, operation: "close")
        }
    }
}
