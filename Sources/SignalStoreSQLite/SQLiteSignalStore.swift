import Foundation
import GRDB
import SignalInbox
import Synchronization

/// A ``SignalInbox/SignalStore`` over Django's SQLite database file, shared with the running Django process.
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
/// let store = try SQLiteSignalStore(configuration: SQLiteStoreConfiguration(path: "db.sqlite3"))
/// try await store.prepareWorkerTables()
/// let inbox = Inbox(receivers: [ProfileReceiver()])
/// let report = try await store.checkSchema(inbox.tables)   // no problems: ready
/// let outcomes = await inbox.adapted(to: report.facts).apply(messages, to: store)
/// ```
public final class SQLiteSignalStore: SignalStore {
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

    /// The oldest SQLite library the store runs on: receivers write `UPDATE ... FROM` (3.33, 2020;
    /// Debian 11 ships 3.34).
    public static let minimumSQLiteVersion = 3_033_000

    /// Opens the store; `assumingSQLiteVersion` (e.g. `3_031_001`) stands for the library's version
    /// (tests of the refusal of old libraries).
    init(configuration: SQLiteStoreConfiguration, assumingSQLiteVersion: Int?) throws(StoreError) {
        if !configuration.createIfMissing, !FileManager.default.fileExists(atPath: configuration.path) {
            throw StoreError(
                .unavailable,
                "no SQLite database at \(configuration.path) (Django creates it with `python manage.py migrate`)",
                operation: "open")
        }
        var grdb = Configuration()
        grdb.label = "SQLiteSignalStore"
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
            self.statements = SQLiteStatements(configuration)
            if (assumingSQLiteVersion ?? version) < Self.minimumSQLiteVersion {
                try? pool.close()
                throw StoreError(
                    .unavailable,
                    "the SQLite library is version \(Self.versionText(assumingSQLiteVersion ?? version)); the worker needs "
                        + "\(Self.versionText(Self.minimumSQLiteVersion)) or later (UPDATE ... FROM)",
                    operation: "open")
            }
        } catch {
            throw SQLiteErrors.storeError(error, operation: "open \(configuration.path)")
        }
    }

    /// `3_033_000` as `3.33.0`.
    static func versionText(_ number: Int) -> String { "\(number / 1_000_000).\(number / 1000 % 1000).\(number % 1000)" }

    /// The receivers' SQL for this store.
    public var dialect: SQLDialect { .sqlite }

    /// Applies one batch in one `BEGIN IMMEDIATE` transaction: reads the inbox state and the
    /// receivers' rows, asks the batch's plan, writes, commits.
    public func apply(_ batch: StoreBatch) async throws(StoreError) -> InboxPlan {
        let statements = self.statements
        let synchronous = batch.mayCommitWithoutSync ? .normal : configuration.synchronous
        do {
            return try await pool.writeWithoutTransaction { db in
                try self.setWriterSynchronous(synchronous, db)
                var committed = InboxPlan()
                try db.inTransaction(.immediate) {
                    let state = try statements.readInboxState(batch, in: db)
                    let rows = try batch.reads.map { try statements.run($0, in: db) }
                    committed = try batch.plan(state, rows)
                    for write in committed.writes { _ = try statements.run(write, in: db) }
                    try statements.writeInbox(committed, in: db, now: Date().timeIntervalSince1970)
                    return .commit
                }
                return committed
            }
        } catch {
            throw SQLiteErrors.storeError(error, operation: "apply a batch of \(batch.messageIDs.count)")
        }
    }

    /// Sets the writer connection's `PRAGMA synchronous` (outside a transaction) if it differs.
    private func setWriterSynchronous(_ level: SQLiteStoreConfiguration.Synchronous, _ db: Database) throws {
        guard writerSynchronous.withLock({ $0 }) != level else { return }
        try db.execute(sql: "PRAGMA synchronous = \(level.rawValue)")
        writerSynchronous.withLock { $0 = level }
    }

    /// Reports what is missing or wrong in Django's tables for the receivers' `requirements`.
    /// SQLite does not enforce `varchar(n)` lengths and stores NUL characters as is.
    public func checkSchema(_ requirements: [TableRequirement]) async throws(StoreError) -> SchemaReport {
        do {
            let problems = try await pool.read { db in try SQLiteSchemaCheck(requirements: requirements).problems(in: db) }
            return SchemaReport(problems: problems, facts: SchemaFacts())
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

    /// Runs the receivers' Django-compatible DDL (`--create-schema`) in one transaction.
    ///
    /// For trials and tests without Django; normally Django's migrations
    /// (`python manage.py migrate`) create these tables, and the worker never should.
    public func createTables(_ ddl: [String]) async throws(StoreError) {
        try await executeImmediately(ddl.joined(separator: ";\n"), operation: "create the Django-compatible schema")
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
