import Foundation
import GRDB
import SignalInbox
import Synchronization

/// The store's SQL for the worker's own tables, built from the configured names, and the hot path
/// that runs a batch's statements with cached prepared statements.
///
/// A batch's rows are spliced into multi-row statements (`VALUES (?, ?), …`) of at most
/// ``chunkSizes``[0] rows, so that a batch of 1,000 messages costs a few dozen statement
/// executions instead of several per message. Chunks use a handful of fixed sizes so that the
/// connection's statement cache stays small. Every statement stays under SQLite's oldest default
/// limit of 999 bound parameters.
struct SQLiteStatements: Sendable {
    // The worker tables' names, quoted. Named `…Table` so that no parameter or local (a list of
    // `applied` ids, a record's `sequence`) can shadow one inside an SQL string: an earlier
    // attempt interpolated its ids parameter where the table name belonged.
    let appliedTable: String
    let sequenceTable: String
    let legacySequence: String
    let schemaVersionTable: String
    /// The `sender` of the rows moved from the legacy per-user sequence table.
    let legacySequenceSender: String
    /// The last id and the size of the next page of the dedupe table (keyset pagination).
    let prunePageEnd: String
    /// Deletes the expired ids of one page.
    let prunePage: String
    let workerTablesDDL: String
    /// Whether the shim's outbox holds a row of an object (`sender`, `object_pk`) older than a `seq`
    /// (any row when the `seq` is NULL): one indexed probe per outbox check.
    let outboxHasOlder: String
    /// Statements with their rows marker expanded, per chunk size.
    private let expansions = SQLExpansions()

    /// Dedupe ids examined per pruning transaction.
    static let prunePageSize = 10_000

    /// Rows per statement, largest first; a batch is cut greedily into these sizes.
    static let chunkSizes = [128, 32, 8, 1]

    /// SQLite's oldest default limit on bound parameters per statement.
    static let parameterLimit = 999

    init(_ configuration: SQLiteStoreConfiguration) {
        appliedTable = SQLIdentifier.quoted(configuration.appliedTable)
        sequenceTable = SQLIdentifier.quoted(configuration.sequenceTable)
        legacySequence = configuration.legacySequenceTable
        schemaVersionTable = SQLIdentifier.quoted(configuration.schemaVersionTable)
        legacySequenceSender = configuration.legacySequenceSender
        outboxHasOlder = """
            SELECT 1 FROM \(SQLIdentifier.quoted(configuration.outboxTable)) \
            WHERE "sender" = ?1 AND "object_pk" = ?2 AND (?3 IS NULL OR "seq" < ?3) LIMIT 1
            """
        prunePageEnd = """
            SELECT max("message_id"), count(*) FROM \
            (SELECT "message_id" FROM \(appliedTable) WHERE "message_id" > ? ORDER BY "message_id" LIMIT ?)
            """
        prunePage = """
            DELETE FROM \(appliedTable) WHERE "message_id" > ? AND "message_id" <= ? AND "applied_at" < ?
            """
        // `applied_at` is Unix time in seconds (REAL). No index on it: it would cost every
        // apply one more B-tree insertion (~15% of the batched rate, measured), while pruning
        // (rare) can walk the primary key in short transactions instead.
        workerTablesDDL = """
            CREATE TABLE IF NOT EXISTS \(appliedTable) (
                "message_id" text NOT NULL PRIMARY KEY,
                "applied_at" real NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS \(sequenceTable) (
                "sender" text NOT NULL,
                "object_pk" text NOT NULL,
                "last_seq" bigint NOT NULL,
                PRIMARY KEY ("sender", "object_pk")
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS \(schemaVersionTable) ("version" integer NOT NULL);
            """
    }

    // MARK: - The inbox's statements

    /// Reads which of the batch's ids were applied and its objects' last sequences.
    func readInboxState(_ batch: StoreBatch, in db: Database) throws -> InboxState {
        var state = InboxState()
        let ids = BatchStatement(
            "read applied ids",
            sql: "SELECT \"message_id\" FROM \(appliedTable) WHERE \"message_id\" IN (\(BatchStatement.rowsMarker))",
            columns: [.text], values: batch.messageIDs.map(SQLValue.text))
        for row in try run(ids, in: db) {
            if let id = row[0].text { state.appliedMessageIDs.insert(id) }
        }
        let objects = BatchStatement(
            "read sequences",
            sql: """
                WITH "signal_worker_objects"("sender", "object_pk") AS (VALUES \(BatchStatement.rowsMarker)) \
                SELECT s."sender", s."object_pk", s."last_seq" FROM "signal_worker_objects" AS o \
                JOIN \(sequenceTable) AS s ON s."sender" = o."sender" AND s."object_pk" = o."object_pk"
                """,
            columns: [.text, .text], rows: batch.objects
        ) { object, values in
            values.append(.text(object.sender))
            values.append(.text(object.pk))
        }
        for row in try run(objects, in: db) {
            guard let sender = row[0].text, let pk = row[1].text, let last = row[2].integer else { continue }
            state.lastSequences[ObjectKey(sender: sender, pk: pk)] = last
        }
        if !batch.outboxChecks.isEmpty {
            // Under BEGIN IMMEDIATE: every outbox row committed before the message was sent is seen.
            let probe = RawStatement(try db.cachedStatement(sql: outboxHasOlder), in: db)
            for check in batch.outboxChecks {
                let values: [SQLValue] = [.text(check.object.sender), .text(check.object.pk), check.before.map(SQLValue.integer) ?? .null]
                var rows: [SQLRow] = []
                try probe.run(binding: values[...], into: &rows)
                if !rows.isEmpty { state.behind.insert(check) }
            }
        }
        return state
    }

    /// Records a plan's applied ids and sequences.
    func writeInbox(_ plan: InboxPlan, in db: Database, now: Double) throws {
        let ids = BatchStatement(
            "record applied ids",
            sql: "INSERT INTO \(appliedTable) (\"message_id\", \"applied_at\") VALUES \(BatchStatement.rowsMarker)",
            columns: [.text, .real], rows: plan.applied
        ) { id, values in
            values.append(.text(id))
            values.append(.real(now))
        }
        _ = try run(ids, in: db)
        let sequences = BatchStatement(
            "record sequences",
            sql: """
                INSERT INTO \(sequenceTable) ("sender", "object_pk", "last_seq") VALUES \(BatchStatement.rowsMarker) \
                ON CONFLICT ("sender", "object_pk") DO UPDATE SET "last_seq" = excluded."last_seq"
                """,
            columns: [.text, .text, .integer], rows: plan.sequences
        ) { record, values in
            values.append(.text(record.object.sender))
            values.append(.text(record.object.pk))
            values.append(.integer(record.sequence))
        }
        _ = try run(sequences, in: db)
    }

    // MARK: - Running a batch statement

    /// Runs `statement` in chunks, returning every row it produced.
    func run(_ statement: BatchStatement, in db: Database) throws -> [SQLRow] {
        var rows: [SQLRow] = []
        guard !statement.isEmpty else { return rows }
        let arity = statement.columns.count
        let template = expansions.template(statement.sql, arity: arity)
        guard template.splicesRows else {
            let prepared = RawStatement(try db.cachedStatement(sql: statement.sql), in: db)
            try prepared.run(binding: statement.parameters[...], into: &rows)
            return rows
        }
        let maximum = max(1, (Self.parameterLimit - statement.parameters.count) / arity)
        let values = statement.values
        let rowCount = statement.rowCount
        var start = 0
        while start < rowCount {
            let remaining = rowCount - start
            let chunk = Self.chunkSizes.firstIndex { $0 <= min(remaining, maximum) } ?? (Self.chunkSizes.count - 1)
            let size = Self.chunkSizes[chunk]
            let prepared = RawStatement(try db.cachedStatement(sql: template.sql(chunk)), in: db)
            try prepared.run(binding: values[(start * arity)..<((start + size) * arity)], then: statement.parameters, into: &rows)
            if statement.expectation == .oneChangePerRow, db.changesCount != size {
                // Cannot happen under BEGIN IMMEDIATE (nobody else writes between our read and this
                // write); refuse rather than acknowledge a write that did not happen.
                throw StoreError(
                    .rejected, "\(size - db.changesCount) row(s) changed during the transaction",
                    operation: statement.purpose)
            }
            start += size
        }
        return rows
    }

    // MARK: - The worker's own tables

    /// Creates the worker tables and upgrades them from an earlier layout, inside the open
    /// transaction (``WorkerTablesReport`` lists the versions).
    func prepareWorkerTables(in db: Database) throws -> WorkerTablesReport {
        try db.execute(sql: workerTablesDDL)
        let found = try Int.fetchOne(db, sql: "SELECT max(\"version\") FROM \(schemaVersionTable)")
        if let found, found > WorkerTablesReport.currentVersion { throw WorkerTablesReport.newerVersionError(found) }
        var report = WorkerTablesReport()
        let legacyExists =
            try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)",
                arguments: [legacySequence]) ?? false
        if legacyExists {
            // `WHERE true`: SQLite's parser needs it between INSERT ... SELECT and ON CONFLICT.
            try db.execute(
                sql: """
                    INSERT INTO \(sequenceTable) ("sender", "object_pk", "last_seq") \
                    SELECT ?, CAST("user_id" AS TEXT), "last_seq" FROM \(SQLIdentifier.quoted(legacySequence)) WHERE true \
                    ON CONFLICT ("sender", "object_pk") DO UPDATE SET "last_seq" = max("last_seq", excluded."last_seq")
                    """, arguments: [legacySequenceSender])
            report.movedSequences = db.changesCount
            try db.execute(sql: "DROP TABLE \(SQLIdentifier.quoted(legacySequence))")
            report.upgradedFrom = found ?? 1
        }
        if found != WorkerTablesReport.currentVersion {
            try db.execute(sql: "DELETE FROM \(schemaVersionTable)")
            try db.execute(
                sql: "INSERT INTO \(schemaVersionTable) (\"version\") VALUES (?)", arguments: [WorkerTablesReport.currentVersion])
        }
        return report
    }
}

/// Each statement's text with its rows marker replaced by `n` groups of `arity` placeholders, for
/// every chunk size, built once: a batch runs each statement in a handful of chunk sizes, and
/// building the text anew for every chunk cost as much as a fifth of a batch's time.
///
/// A short list searched with `==`, not a dictionary: a batch's statements are a handful, and
/// comparing texts (equal storage, or a length or early byte that differs) is far cheaper than
/// hashing a few hundred bytes of SQL for every chunk.
final class SQLExpansions: Sendable {
    /// One statement's text and its expansions.
    final class Template: Sendable {
        let sql: String
        let arity: Int
        /// Whether the statement takes its rows through the marker (it has columns and the marker);
        /// otherwise it runs once as written.
        let splicesRows: Bool
        /// Per chunk size (``SQLiteStatements/chunkSizes``, same order), the expanded text; empty
        /// when the statement does not splice rows.
        private let expanded: [String]

        init(sql: String, arity: Int) {
            self.sql = sql
            self.arity = arity
            splicesRows = arity > 0 && sql.contains(BatchStatement.rowsMarker)
            let group = "(" + Array(repeating: "?", count: arity).joined(separator: ", ") + ")"
            expanded = !splicesRows ? [] : SQLiteStatements.chunkSizes.map { rows in
                sql.replacingOccurrences(
                    of: BatchStatement.rowsMarker, with: Array(repeating: group, count: rows).joined(separator: ", "))
            }
        }

        /// The text for the chunk size at `chunk` in ``SQLiteStatements/chunkSizes``.
        func sql(_ chunk: Int) -> String { expanded[chunk] }
    }

    /// Beyond this many statements the oldest template is dropped (receivers' SQL is fixed, so
    /// this bound is never reached in practice; it keeps the list short whatever happens).
    static let capacity = 64

    private let templates = Mutex<[Template]>([])

    func template(_ sql: String, arity: Int) -> Template {
        if let found = templates.withLock({ $0.first { $0.arity == arity && $0.sql == sql } }) { return found }
        let made = Template(sql: sql, arity: arity)
        templates.withLock { list in
            if list.count >= Self.capacity { list.removeFirst() }
            list.append(made)
        }
        return made
    }
}
