/// Settings of a ``SQLiteSignalStore``: which file, the worker's own tables, how to wait for locks.
///
/// ```swift
/// let store = try SQLiteSignalStore(configuration: SQLiteStoreConfiguration(path: "/srv/app/db.sqlite3"))
/// ```
public struct SQLiteStoreConfiguration: Sendable, Hashable {
    /// How hard SQLite works to make a committed transaction survive an OS crash or power
    /// loss (`PRAGMA synchronous` in WAL mode, <https://www.sqlite.org/pragma.html#pragma_synchronous>).
    ///
    /// The default is ``full``: every commit syncs the WAL, so a transaction the worker
    /// acknowledged survives a power loss. It costs one `fsync` per transaction; on this
    /// project's test machine (Benchmarks/results/store.md) that was 0-25% of the rate of
    /// 1,000-message batches (within the machine's run-to-run noise) and 30-50% of the rate
    /// of one-message transactions.
    ///
    /// ``normal`` is safe in a narrower but common case. In WAL mode it never corrupts the
    /// database and an application crash loses nothing; an OS crash or power loss can roll
    /// back the last transactions committed before it, acknowledged ones included. When the
    /// shim's outbox lives in the same database file, that still loses no message: the WAL
    /// is one append-only log whose valid frames survive as a prefix, and every consequence
    /// of an acknowledgement (Django deleting the outbox row, any later commit) is written
    /// after the worker's commit. Either the apply survives, or it is lost together with the
    /// outbox row's deletion and the relay sends the message again (the dedupe table makes
    /// that harmless). Do not use it when anything outside this database relies on the
    /// acknowledgement (producers without an outbox, an outbox in another database).
    public enum Synchronous: String, Sendable, Hashable, CaseIterable {
        /// `FULL`: every commit syncs the WAL; an acknowledged transaction survives a power loss.
        case full = "FULL"
        /// `NORMAL`: the WAL is synced at checkpoints only; see ``Synchronous`` for when that is safe.
        case normal = "NORMAL"
    }

    /// Path of the database file Django uses (its `DATABASES["default"]["NAME"]`).
    public var path: String
    /// The worker's dedupe table (message ids already applied).
    public var appliedTable: String
    /// The worker's table of last applied outbox sequence per object (sender, pk).
    public var sequenceTable: String
    /// The earlier releases' table of last sequence per user, moved into ``sequenceTable`` and
    /// dropped by ``SQLiteSignalStore/prepareWorkerTables()``.
    public var legacySequenceTable: String
    /// The worker's one-row table holding the version of its own tables.
    public var schemaVersionTable: String
    /// The shim's outbox table (python-bridge's `OutboxMessage`), read by `outbox_check`.
    public var outboxTable: String
    /// The `sender` (the user model label) of the rows moved from ``legacySequenceTable``, which
    /// kept the last sequence of each user.
    public var legacySequenceSender: String
    /// How long a write waits for a lock held by another connection (Django) before failing
    /// with `StoreError.Code.unavailable`.
    public var busyTimeout: Duration
    /// Durability of commits; see ``Synchronous``. Default ``Synchronous/full``. A batch of
    /// messages that all say `durable: false` commits with ``Synchronous/normal`` anyway.
    public var synchronous: Synchronous
    /// Whether opening a path where no file exists creates an empty database. Off by default,
    /// so that a mistyped path is an error instead of a new, empty database.
    public var createIfMissing: Bool
    /// Largest number of concurrent read connections (schema checks); writes use one connection.
    public var maximumReaderCount: Int

    /// Creates a configuration; the defaults suit the reference Django project.
    public init(
        path: String, appliedTable: String = "signal_worker_applied", sequenceTable: String = "signal_worker_object_sequence",
        legacySequenceTable: String = "signal_worker_user_sequence", schemaVersionTable: String = "signal_worker_schema",
        legacySequenceSender: String = "auth.user", outboxTable: String = "signal_bridge_outbox",
        busyTimeout: Duration = .seconds(5), synchronous: Synchronous = .full, createIfMissing: Bool = false,
        maximumReaderCount: Int = 2
    ) {
        self.path = path
        self.appliedTable = appliedTable
        self.sequenceTable = sequenceTable
        self.legacySequenceTable = legacySequenceTable
        self.schemaVersionTable = schemaVersionTable
        self.legacySequenceSender = legacySequenceSender
        self.outboxTable = outboxTable
        self.busyTimeout = busyTimeout
        self.synchronous = synchronous
        self.createIfMissing = createIfMissing
        self.maximumReaderCount = maximumReaderCount
    }
}

extension Duration {
    /// The duration in seconds, as GRDB's `TimeInterval`-based APIs take it.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
