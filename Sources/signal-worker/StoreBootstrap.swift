import SignalBroker
import SignalWorker
import WorkerOperations
import Foundation
import Logging
import SignalInbox
import SignalStorePostgres
import SignalStoreSQLite
import ServiceLifecycle

/// A store opened from a ``StoreLocation``, with the service that must run while it is used
/// (PostgreSQL's connection pool; SQLite needs none).
public struct OpenedStore: Sendable {
    /// The store.
    public var store: any SignalStore
    /// Runs the store's connections; put it before the worker in the `ServiceGroup`.
    public var service: (any Service)?
    /// Closes what `service` does not (SQLite's file handles).
    public var close: @Sendable () -> Void

    /// Opens the store the configuration names, after checking its table names.
    public static func open(_ configuration: WorkerConfiguration, logger: Logger) throws(WorkerError) -> OpenedStore {
        try checkTableName(configuration.profileTable, option: "--profile-table")
        try checkTableName(configuration.userTable, option: "--user-table")
        try checkTableName(configuration.outboxTable, option: "--outbox-table")
        do {
            switch configuration.store {
            case .sqlite(let path):
                if !configuration.createSchema, !FileManager.default.fileExists(atPath: path) {
                    throw WorkerError(
                        .schema,
                        "no SQLite database at \(path): run `python manage.py migrate` in your Django project and point "
                            + "--store at its db.sqlite3, or pass --create-schema to try the worker without Django")
                }
                let store = try SQLiteSignalStore(
                    configuration: SQLiteStoreConfiguration(
                        path: path, legacySequenceSender: configuration.userModelLabel, outboxTable: configuration.outboxTable,
                        busyTimeout: configuration.sqliteBusyTimeout,
                        synchronous: configuration.sqliteSynchronous, createIfMissing: configuration.createSchema))
                return OpenedStore(store: store, service: nil, close: { try? store.close() })
            case .postgres(let url):
                var postgres = try PostgresStoreConfiguration(url: url)
                postgres.legacySequenceSender = configuration.userModelLabel
                postgres.outboxTable = configuration.outboxTable
                let store = PostgresSignalStore(configuration: postgres, logger: logger)
                return OpenedStore(store: store, service: store, close: {})
            }
        } catch let error as WorkerError {
            throw error
        } catch let error as StoreError {
            throw WorkerError(.store, "cannot open \(configuration.store): \(error.message)")
        } catch {
            throw WorkerError(.store, "cannot open \(configuration.store): \(error)")
        }
    }

    /// Refuses a configured table name that is not a plain SQL identifier: 1 to 63 ASCII letters,
    /// digits and `_`, not starting with a digit (what Django derives from `app_label` and model
    /// names). The stores quote every name and bind every value, so this is not what keeps SQL
    /// injection out; it turns a typo or a hostile setting into a clear error at start-up
    /// instead of an odd one at the first write.
    static func checkTableName(_ name: String, option: String) throws(WorkerError) {
        let bytes = Array(name.utf8)
        let isPlain =
            (1...63).contains(bytes.count) && !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[0])
            && bytes.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
            }
        guard isPlain else {
            throw WorkerError(
                .configuration,
                "\(option) \(name.debugDescription) is not a plain table name: use 1 to 63 letters, digits and _, "
                    + "not starting with a digit (the model's db_table, e.g. accounts_userprofile)")
        }
    }

    /// Runs `body` with the store's service running (for one-shot commands such as `check`).
    public func withRunning<T: Sendable>(_ body: @Sendable (any SignalStore) async throws -> T) async throws -> T {
        guard let service else {
            defer { close() }
            return try await body(store)
        }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await service.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(store)
        }
    }
}

/// What the worker does with a store before serving: optional schema creation, the schema
/// check of every configured receiver's tables (refusing to start on a wrong schema), its own
/// tables, and the receivers adapted to what the database enforces.
public enum StorePreparation {
    /// A store ready to serve: the inbox configured for its schema, and its worker tables.
    public struct Prepared: Sendable {
        /// The configured receivers, adapted to the column limits the database enforces.
        public var inbox: Inbox
        /// The worker tables' schema version and what an upgrade did.
        public var workerTables: WorkerTablesReport
        /// Why `outbox_check` is refused (the shim's outbox table is missing or different), `nil`
        /// when the worker answers it.
        public var outboxCheckUnavailable: String?
    }

    /// Checks (and with `createSchema` creates) the receivers' tables, prepares (and upgrades)
    /// the worker's own tables, logging an upgrade; returns the inbox adapted to the schema.
    public static func prepare(
        _ store: any SignalStore, configuration: WorkerConfiguration, logger: Logger
    ) async throws(WorkerError) -> Prepared {
        let inbox = try ReceiverCatalog.inbox(configuration)
        do {
            if configuration.createSchema {
                try await store.createTables(inbox.djangoCompatibleDDL(store.dialect))
                logger.notice("created missing Django-compatible tables (--create-schema)")
            }
            let report = try await store.checkSchema(inbox.tables)
            guard report.problems.isEmpty else {
                throw WorkerError(.schema, schemaReport(report.problems, location: configuration.store))
            }
            let workerTables = try await store.prepareWorkerTables()
            if workerTables.upgradedFrom != nil {
                logger.notice(
                    "\(workerTables)",
                    metadata: ["store": "\(configuration.store)", "sender": "\(configuration.userModelLabel)"])
            }
            // The shim's outbox is optional: without it the worker refuses `outbox_check` and the
            // shim runs its own backlog query (docs/PROTOCOL.md, "Outbox check").
            let outbox = try await store.checkSchema([.shimOutbox(configuration.outboxTable)])
            let unavailable = outbox.problems.isEmpty ? nil : outbox.problems.map(\.description).joined(separator: "; ")
            if let unavailable {
                logger.notice(
                    "outbox_check off: \(unavailable); sync saves run their own backlog query",
                    metadata: ["outbox_table": "\(configuration.outboxTable)"])
            }
            return Prepared(
                inbox: inbox.adapted(to: report.facts).checkingOutbox(unavailable == nil), workerTables: workerTables,
                outboxCheckUnavailable: unavailable)
        } catch let error as WorkerError {
            throw error
        } catch let error as StoreError {
            throw WorkerError(
                error.code == .schema ? .schema : .store, "store \(configuration.store) failed: \(error.debugDescription)")
        } catch {
            throw WorkerError(.store, "store \(configuration.store) failed: \(error)")
        }
    }

    /// The text `check` and a refused start print for a wrong schema.
    public static func schemaReport(_ problems: [SchemaProblem], location: StoreLocation) -> String {
        var lines = ["the database \(location) does not have the schema the worker needs:"]
        lines += problems.map { "  - \($0)" }
        lines.append(
            "Run Django's migrations (`python manage.py migrate`) against this database, check --profile-table / --user-table "
                + "and --receivers, or pass --create-schema to create the tables for a trial without Django.")
        return lines.joined(separator: "\n")
    }
}
