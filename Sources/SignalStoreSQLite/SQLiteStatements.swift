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
    let applied: String
    let sequence: String
    let legacySequence: String
    let schemaVersion: String
    /// The `sender` of the rows moved from the legacy per-user sequence table.
    let legacySequenceSender: String
    /// The last id and the size of the next page of the dedupe table (keyset pagination).
    let prunePageEnd: String
    /// Deletes the expired ids of one page.
    let prunePage: String
    let workerTablesDDL: String
    /// Statements with their rows marker expanded, per chunk size.
    private let expansions = SQLExpansions()

    /// Dedupe ids examined per pruning transaction.
    static let prunePageSize = 10_000

    /// Rows per statement, largest first; a batch is cut greedily into these sizes.
    static let chunkSizes = [128, 32, 8, 1]

    /// SQLite's oldest default limit on bound parameters per statement.
    static let parameterLimit = 999

    init(_ configuration: SQLiteStoreConfiguration) {
        applied = SQLIdentifier.quoted(configuration.appliedTable)
        sequence = SQLIdentifier.quoted(configuration.sequenceTable)
        legacySequence = configuration.legacySequenceTable
        schemaVersion = SQLIdentifier.quoted(configuration.schemaVersionTable)
        legacySequenceSender = configuration.legacySequenceSender
        prunePageEnd = """
            SELECT max("message_id"), count(*) FROM \
            (SELECT "message_id" FROM \(applied) WHERE "message_id" > ? ORDER BY "message_id" LIMIT ?)
            """
        prunePage = """
            DELETE FROM \(applied) WHERE "message_id" > ? AND "message_id" <= ? AND "applied_at" < ?
            """
        // `applied_at` is Unix time in seconds (REAL). No index on it: it would cost every
        // apply one more B-tree insertion (~15% of the batched rate, measured), while pruning
        // (rare) can walk the primary key in short transactions instead.
        workerTablesDDL = """
            CREATE TABLE IF NOT EXISTS \(applied) (
                "message_id" text NOT NULL PRIMARY KEY,
                "applied_at" real NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS \(sequence) (
                "sender" text NOT NULL,
                "object_pk" text NOT NULL,
                "last_seq" bigint NOT NULL,
                PRIMARY KEY ("sender", "object_pk")
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS \(schemaVersion) ("version" integer NOT NULL);
            """
    }

    // MARK: - The inbox's statements

    private var selectApplied: BatchStatement {
        BatchStatement(
            "read applied ids", sql: "SELECT \"message_id\" FROM \(applied) WHERE \"message_id\" IN (\(BatchStatement.rowsMarker))",
            columns: [.text])
    }

    private var selectSequences: BatchStatement {
        BatchStatement(
            "read sequences",
            sql: """
                WITH "signal_worker_objects"("sender", "object_pk") AS (VALUES \(BatchStatement.rowsMarker)) \
                SELECT s."sender", s."object_pk", s."last_seq" FROM "signal_worker_objects" AS o \
                JOIN \(sequence) AS s ON s."sender" = o."sender" AND s."object_pk" = o."object_pk"
                """,
            columns: [.text, .text])
    }

    private var insertApplied: BatchStatement {
        BatchStatement(
            "record applied ids",
            sql: "INSERT INTO \(applied) (\"message_id\", \"applied_at\") VALUES \(BatchStatement.rowsMarker)",
            columns: [.text, .real])
    }

    private var upsertSequences: BatchStatement {
        BatchStatement(
            "record sequences",
            sql: """
                INSERT INTO \(sequence) ("sender", "object_pk", "last_seq") VALUES \(BatchStatement.rowsMarker) \
                ON CONFLICT ("sender", "object_pk") DO UPDATE SET "last_seq" = excluded."last_seq"
                """,
            columns: [.text, .text, .integer])
    }

    /// Reads which of the batch's ids were applied and its objects' last sequences.
    func readInboxState(_ batch: StoreBatch, in db: Database) throws -> InboxState {
        var state = InboxState()
        var ids = selectApplied
        ids.rows = batch.messageIDs.map { [.text($0)] }
        for row in try run(ids, in: db) {
            if let id = row[0].text { state.appliedMessageIDs.insert(id) }
        }
        var objects = selectSequences
        objects.rows = batch.objects.map { [.text($0.sender), .text($0.pk)] }
        for row in try run(objects, in: db) {
            guard let sender = row[0].text, let pk = row[1].text, let last = row[2].integer else { continue }
            state.lastSequences[ObjectKey(sender: sender, pk: pk)] = last
        }
        return state
    }

    /// Records a plan's applied ids and sequences.
    func writeInbox(_ plan: InboxPlan, in db: Database, now: Double) throws {
        var ids = insertApplied
        ids.rows = plan.applied.map { [.text($0), .real(now)] }
        _ = try run(ids, in: db)
        var sequences = upsertSequences
        sequences.rows = plan.sequences.map { [.text($0.object.sender), .text($0.object.pk), .integer($0.sequence)] }
        _ = try run(sequences, in: db)
    }

    // MARK: - Running a batch statement

    /// Runs `statement` in chunks, returning every row it produced.
    func run(_ statement: BatchStatement, in db: Database) throws -> [SQLRow] {
        var rows: [SQLRow] = []
        guard !statement.isEmpty else { return rows }
        let arity = statement.columns.count
        guard arity > 0, statement.sql.contains(BatchStatement.rowsMarker) else {
            let prepared = RawStatement(try db.cachedStatement(sql: statement.sql), in: db)
            for (offset, value) in statement.parameters.enumerated() { prepared.bind(value, at: Int32(offset + 1)) }
            try prepared.collect(into: &rows)
            return rows
        }
        let maximum = max(1, (Self.parameterLimit - statement.parameters.count) / arity)
        var start = 0
        while start < statement.rows.count {
            let remaining = statement.rows.count - start
            let size = Self.chunkSizes.first { $0 <= min(remaining, maximum) } ?? 1
            let sql = expansions.sql(statement.sql, arity: arity, rows: size)
            let prepared = RawStatement(try db.cachedStatement(sql: sql), in: db)
            var index: Int32 = 1
            for row in statement.rows[start..<(start + size)] {
                for value in row {
                    prepared.bind(value, at: index)
                    index += 1
                }
            }
            for value in statement.parameters {
                prepared.bind(value, at: index)
                index += 1
            }
            try prepared.collect(into: &rows)
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
        let found = try Int.fetchOne(db, sql: "SELECT max(\"version\") FROM \(schemaVersion)")
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
                    INSERT INTO \(sequence) ("sender", "object_pk", "last_seq") \
                    SELECT ?, CAST("user_id" AS TEXT), "last_seq" FROM \(SQLIdentifier.quoted(legacySequence)) WHERE true \
                    ON CONFLICT ("sender", "object_pk") DO UPDATE SET "last_seq" = max("last_seq", excluded."last_seq")
                    """, arguments: [legacySequenceSender])
            report.movedSequences = db.changesCount
            try db.execute(sql: "DROP TABLE \(SQLIdentifier.quoted(legacySequence))")
            report.upgradedFrom = found ?? 1
        }
        if found != WorkerTablesReport.currentVersion {
            try db.execute(sql: "DELETE FROM \(schemaVersion)")
            try db.execute(
                sql: "INSERT INTO \(schemaVersion) (\"version\") VALUES (?)", arguments: [WorkerTablesReport.currentVersion])
        }
        return report
    }
}

/// `sql` with its rows marker replaced by `rows` groups of `arity` placeholders, built once per
/// (statement, chunk size): a batch runs each statement in a handful of chunk sizes, and building
/// the text anew for every chunk cost as much as a fifth of a batch's time.
final class SQLExpansions: Sendable {
    private struct Key: Hashable {
        var sql: String
        var rows: Int
    }

    private let cache = Mutex<[Key: String]>([:])

    func sql(_ sql: String, arity: Int, rows: Int) -> String {
        let key = Key(sql: sql, rows: rows)
        if let expanded = cache.withLock({ $0[key] }) { return expanded }
        let group = "(" + Array(repeating: "?", count: arity).joined(separator: ", ") + ")"
        let expanded = sql.replacingOccurrences(
            of: BatchStatement.rowsMarker, with: Array(repeating: group, count: rows).joined(separator: ", "))
        cache.withLock { $0[key] = expanded }
        return expanded
    }
}
