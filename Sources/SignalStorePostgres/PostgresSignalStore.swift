import Logging
import PostgresNIO
import SignalInbox
import ServiceLifecycle

/// A ``SignalInbox/SignalStore`` over Django's PostgreSQL database, through postgres-nio's
/// connection pool (`PostgresClient`).
///
/// The store is a ServiceLifecycle `Service`: its ``run()`` runs the pool, and nothing
/// works while it is not running (operations fail with `.unavailable` after
/// ``PostgresStoreConfiguration/acquireTimeout``). Put it in the worker's `ServiceGroup`
/// before the worker, or run it in a task for the store's lifetime:
///
/// ```swift
/// let store = PostgresSignalStore(configuration: try PostgresStoreConfiguration(url: url))
/// try await withThrowingTaskGroup(of: Void.self) { group in
///     group.addTask { try await store.run() }
///     try await store.prepareWorkerTables()
///     let inbox = Inbox(receivers: [ProfileReceiver()])
///     let report = try await store.checkSchema(inbox.tables)
///     let outcomes = await inbox.adapted(to: report.facts).apply(messages, to: store)
///     group.cancelAll()  // closes the pool
/// }
/// ```
///
/// A batch is one transaction with a constant number of round trips (BEGIN, lock the objects,
/// read the inbox state (with the first receiver read in a small batch), each receiver statement
/// once, the last write also recording the inbox, COMMIT: five for the profile receiver alone in
/// a batch of up to 128 messages), using
/// `unnest(...)` array parameters. Several workers may share one database: per-object advisory
/// locks keep each object's messages in order (see `PostgresStatements`).
///
/// When the server goes away, postgres-nio's pool reconnects by itself in the background,
/// with exponential backoff (100 ms growing to at most 60 s between attempts); meanwhile
/// operations fail with `.unavailable`.
public final class PostgresSignalStore: SignalStore, Service {
    /// The configuration the store was created with.
    public let configuration: PostgresStoreConfiguration
    private let client: PostgresClient
    /// The client's event loops; the acquire timeout is scheduled on one of them.
    private let eventLoopGroup: any EventLoopGroup = PostgresClient.defaultEventLoopGroup
    private let logger: Logger
    private let statements: PostgresStatements

    /// Creates a store; no connection is made until ``run()`` runs and an operation needs one.
    public init(configuration: PostgresStoreConfiguration, logger: Logger = Logger(label: "signal-worker.postgres-store")) {
        self.configuration = configuration
        self.logger = logger
        self.statements = PostgresStatements(configuration)
        let tls: PostgresClient.Configuration.TLS
        switch configuration.tls {
        case .disable:
            tls = .disable
        case .prefer:
            var context = TLSConfiguration.makeClientConfiguration()
            context.certificateVerification = .none
            tls = .prefer(context)
        case .require:
            var context = TLSConfiguration.makeClientConfiguration()
            context.certificateVerification = .none
            tls = .require(context)
        case .verifyCA:
            var context = TLSConfiguration.makeClientConfiguration()
            context.certificateVerification = .noHostnameVerification
            tls = .require(context)
        case .verifyFull:
            tls = .require(.makeClientConfiguration())
        }
        var client = PostgresClient.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: tls)
        client.options.connectTimeout = configuration.connectTimeout
        client.options.maximumConnections = max(1, configuration.maximumConnections)
        client.options.additionalStartupParameters = [("application_name", configuration.applicationName)]
        if let searchPath = configuration.searchPath {
            client.options.additionalStartupParameters.append(("search_path", searchPath))
        }
        self.client = PostgresClient(configuration: client, eventLoopGroup: eventLoopGroup, backgroundLogger: logger)
    }

    /// Runs the connection pool until the task is cancelled or a graceful shutdown is triggered.
    ///
    /// Must be running for any other method to work. Call it once. Returns at most
    /// ``PostgresStoreConfiguration/stopTimeout`` after the stop request, even when the pool
    /// has not ended by then (see ``BoundedStop``); that is logged as a warning.
    public func run() async throws {
        let client = self.client
        let stopTimeout = configuration.stopTimeout
        let outcome = await BoundedStop.run({ await client.run() }, stopTimeout: stopTimeout)
        if outcome == .abandoned {
            logger.warning(
                """
                the PostgreSQL connection pool did not stop within \(stopTimeout) of the stop request \
                (a connection attempt still pending?); stopping without it
                """)
        }
    }

    /// The receivers' SQL for this store.
    public var dialect: SQLDialect { .postgres }

    /// Applies one batch in one transaction; see the type's documentation for the steps.
    public func apply(_ batch: StoreBatch) async throws(StoreError) -> InboxPlan {
        let statements = self.statements
        let logger = self.logger
        do {
            return try await withConnection { connection in
                try await Self.inTransaction(connection, logger: logger) {
                    try await statements.applyBatch(batch, on: connection, logger: logger)
                }
            }
        } catch {
            throw PostgresErrors.storeError(error, operation: "apply a batch of \(batch.messageIDs.count)")
        }
    }

    /// Verifies Django's tables for the receivers' `requirements` (existence, column types,
    /// nullability, keys) and reads the `varchar` lengths PostgreSQL enforces.
    public func checkSchema(_ requirements: [TableRequirement]) async throws(StoreError) -> SchemaReport {
        let logger = self.logger
        do {
            return try await withConnection { connection in
                try await PostgresSchemaCheck(requirements: requirements).run(on: connection, logger: logger)
            }
        } catch {
            throw PostgresErrors.storeError(error, operation: "check the schema")
        }
    }

    /// Creates the worker's tables if missing and upgrades an earlier release's layout, in one
    /// transaction under the schema lock (workers starting together take turns). Never touches
    /// Django's tables.
    @discardableResult
    public func prepareWorkerTables() async throws(StoreError) -> WorkerTablesReport {
        let statements = self.statements
        return try await withSchemaLock(operation: "prepare the worker tables") { connection, logger in
            for ddl in statements.workerTablesDDL {
                _ = try await connection.query(PostgresQuery(unsafeSQL: ddl), logger: logger).collect()
            }
            var found: Int64?
            for try await version in try await connection.query(
                PostgresQuery(unsafeSQL: statements.readSchemaVersion), logger: logger
            ).decode(Int64?.self) { found = version }
            if let found, found > WorkerTablesReport.currentVersion {
                throw WorkerTablesReport.newerVersionError(Int(found))
            }
            var report = WorkerTablesReport()
            var binds = PostgresBindings(capacity: 1)
            binds.append(statements.legacySequenceTable)
            var legacyExists = false
            for try await exists in try await connection.query(
                PostgresQuery(unsafeSQL: "SELECT to_regclass($1::text) IS NOT NULL", binds: binds), logger: logger
            ).decode(Bool.self) { legacyExists = exists }
            if legacyExists {
                var sender = PostgresBindings(capacity: 1)
                sender.append(statements.legacySequenceSender)
                for try await moved in try await connection.query(
                    PostgresQuery(unsafeSQL: statements.moveLegacySequences, binds: sender), logger: logger
                ).decode(Int64.self) { report.movedSequences = Int(moved) }
                _ = try await connection.query(PostgresQuery(unsafeSQL: statements.dropLegacySequences), logger: logger)
                    .collect()
                report.upgradedFrom = found.map(Int.init) ?? 1
            }
            if found != Int64(WorkerTablesReport.currentVersion) {
                for sql in statements.writeSchemaVersion {
                    _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
                }
            }
            return report
        }
    }

    /// Deletes dedupe ids applied more than `seconds` ago; returns how many.
    public func pruneApplied(olderThanSeconds seconds: Double) async throws(StoreError) -> Int {
        let sql = statements.pruneApplied
        let logger = self.logger
        do {
            return try await withConnection { connection in
                var binds = PostgresBindings(capacity: 1)
                binds.append(seconds)
                var deleted: Int64 = 0
                let rows = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
                for try await count in rows.decode(Int64.self) { deleted = count }
                return Int(deleted)
            }
        } catch {
            throw PostgresErrors.storeError(error, operation: "prune the dedupe table")
        }
    }

    /// Runs the receivers' Django-compatible DDL (`--create-schema`) in one transaction under the
    /// schema lock.
    ///
    /// For trials and tests without Django; normally Django's migrations
    /// (`python manage.py migrate`) create these tables, and the worker never should.
    public func createTables(_ ddl: [String]) async throws(StoreError) {
        try await withSchemaLock(operation: "create the Django-compatible schema") { connection, logger in
            for statement in ddl {
                _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger).collect()
            }
        }
    }

    /// Runs `body` in a transaction that holds the schema advisory lock, which serializes the
    /// `CREATE TABLE IF NOT EXISTS` of several workers starting at once.
    @discardableResult
    private func withSchemaLock<Result: Sendable>(
        operation: String, _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> Result
    ) async throws(StoreError) -> Result {
        let namespace = statements.namespace
        let logger = self.logger
        do {
            return try await withConnection { connection in
                try await Self.inTransaction(connection, logger: logger) {
                    _ = try await connection.query("SELECT pg_advisory_xact_lock(\(namespace &+ 1), 0)", logger: logger)
                        .collect()
                    return try await body(connection, logger)
                }
            }
        } catch {
            throw PostgresErrors.storeError(error, operation: operation)
        }
    }

    // MARK: - Connections and transactions

    /// Runs `body` in BEGIN ... COMMIT. When it throws, the connection is closed (which rolls
    /// the transaction back) rather than given back to the pool: postgres-nio remembers a named
    /// statement whose preparation failed (a table missing or locked at that moment) for the
    /// connection's lifetime and would fail every later batch on it; the pool opens a fresh one.
    private static func inTransaction<Result: Sendable>(
        _ connection: PostgresConnection, logger: Logger, _ body: () async throws -> Result
    ) async throws -> Result {
        _ = try await connection.query("BEGIN", logger: logger).collect()
        let result: Result
        do {
            result = try await body()
        } catch {
            try? await connection.close()
            throw error
        }
        // A failing COMMIT (e.g. the deferred foreign key) ends the transaction by itself.
        _ = try await connection.query("COMMIT", logger: logger).collect()
        return result
    }

    /// Leases a pooled connection for `body` and runs `body` on it, waiting at most
    /// `acquireTimeout` for the connection and `operationTimeout` for `body`.
    ///
    /// Neither wait depends on postgres-nio ending what it was asked to end: the caller waits for
    /// a ``ConnectionLease``'s outcome, not for the task that holds the lease. That task may
    /// outlive the wait twice over: a lease request whose cancellation postgres-nio holds up (a
    /// server that accepts and never answers), and a query sent on a connection that the server
    /// (or a proxy) has just closed, which can stay pending for good (vapor/postgres-nio#487,
    /// reverted in #501) even after the connection is closed. After an operation timeout the
    /// connection is closed and goes back to the pool (which discards it) only if `body` ends.
    ///
    /// `body` runs with the connection's event loop as its preferred executor
    /// (``EventLoopTaskExecutor``), and both timers are scheduled on event loops: a batch costs
    /// one task and no thread hand-offs between its queries.
    private func withConnection<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let lease = ConnectionLease<Result>()
        let operationTimeout = configuration.operationTimeout
        let work = Task { [client] in
            do {
                try await client.withConnection { connection in
                    guard lease.claim() else { return }  // the caller gave up: straight back
                    let watchdog = operationTimeout.map { timeout in
                        connection.eventLoop.scheduleTask(in: .init(timeout)) {
                            // Fails the running query where postgres-nio notices, which ends the transaction.
                            guard lease.settle(.failure(OperationTimeout(timeout: timeout))) else { return }
                            let _: EventLoopFuture<Void> = connection.close()
                        }
                    }
                    let result: Swift.Result<Result, any Error>
                    do {
                        result = .success(
                            try await withTaskExecutorPreference(EventLoopTaskExecutor(connection.eventLoop)) {
                                try await body(connection)
                            })
                    } catch {
                        result = .failure(error)
                    }
                    watchdog?.cancel()
                    lease.settle(result)
                }
            } catch {
                lease.settle(.failure(error))  // no connection (pool closed, connect failure, cancelled)
            }
        }
        let acquireTimeout = configuration.acquireTimeout
        let acquireTimer = eventLoopGroup.next().scheduleTask(in: .init(acquireTimeout)) {
            if lease.giveUp(ConnectionAcquireTimeout(timeout: acquireTimeout)) { work.cancel() }
        }
        defer { acquireTimer.cancel() }
        return try await withTaskCancellationHandler {
            try await lease.outcome()
        } onCancel: {
            // Waiting for a connection ends now; a running `body` sees the cancellation.
            _ = lease.giveUp(CancellationError())
            work.cancel()
        }
    }
}
