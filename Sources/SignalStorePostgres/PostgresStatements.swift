import Logging
import PostgresNIO
import SignalInbox

/// The store's SQL for the worker's own tables, built once from the configured table names (as
/// named prepared statements, see ``PostgresNamedStatement``), and the batch transaction that
/// runs a ``SignalInbox/StoreBatch``: BEGIN, lock the objects, read the inbox state (in a batch
/// of up to ``joinedReadLimit`` messages together with the first receiver read), the receivers'
/// reads, their writes (the last one also recording the inbox), COMMIT — a constant number of
/// round trips per batch, whatever its size: five for one receiver in a small batch, six in a
/// large one.
struct PostgresStatements: Sendable {
    let lockObjects: PostgresNamedStatement
    let readInbox: PostgresNamedStatement
    /// ``readInbox`` plus the batch's outbox checks that found an older row (first column NULL).
    let readInboxChecking: PostgresNamedStatement
    /// The text of ``readInbox`` (`checking`: of ``readInboxChecking``) with its parameters
    /// numbered from `first` on, for ``inboxWithRead(_:inboxFrom:checking:)``.
    let inboxState: @Sendable (_ first: Int, _ checking: Bool) -> String
    let writeInbox: PostgresNamedStatement
    /// The two data-modifying CTEs that record a batch's applied ids and sequences, their four
    /// arrays numbered from the given parameter on.
    let inboxWrites: @Sendable (Int) -> String
    let pruneApplied: String
    let workerTablesDDL: [String]
    let namespace: Int32
    /// The `sender` of the rows moved from the legacy per-user sequence table.
    let legacySequenceSender: String
    let readSchemaVersion: String
    let legacySequenceTable: String
    let moveLegacySequences: String
    let dropLegacySequences: String
    let writeSchemaVersion: [String]

    init(_ configuration: PostgresStoreConfiguration) {
        let applied = SQLIdentifier.quoted(configuration.appliedTable)
        let sequence = SQLIdentifier.quoted(configuration.sequenceTable)
        namespace = configuration.advisoryLockNamespace
        legacySequenceSender = configuration.legacySequenceSender
        let schemaVersion = SQLIdentifier.quoted(configuration.schemaVersionTable)
        let legacy = SQLIdentifier.quoted(configuration.legacySequenceTable)
        legacySequenceTable = legacy
        readSchemaVersion = "SELECT max(\"version\")::int8 FROM \(schemaVersion)"
        moveLegacySequences = """
            WITH moved AS (
                INSERT INTO \(sequence) ("sender", "object_pk", "last_seq")
                SELECT $1::text, "user_id"::text, "last_seq" FROM \(legacy)
                ON CONFLICT ("sender", "object_pk") DO UPDATE SET "last_seq" = GREATEST(\(sequence)."last_seq", EXCLUDED."last_seq")
                RETURNING 1
            ) SELECT count(*)::int8 FROM moved
            """
        dropLegacySequences = "DROP TABLE \(legacy)"
        writeSchemaVersion = [
            "DELETE FROM \(schemaVersion)",
            "INSERT INTO \(schemaVersion) (\"version\") VALUES (\(WorkerTablesReport.currentVersion))",
        ]

        // Per-object ordering across several workers sharing the database: each batch takes a
        // transaction-scoped advisory lock per object before it reads anything, so two batches
        // touching one object run one after the other, and the second reads what the first
        // committed (READ COMMITTED takes a fresh snapshot per statement, and the reads are
        // later statements than the lock). Advisory locks rather than row locks because the
        // rows may not exist yet (a `created` message, an object without a sequence row), they
        // cost no table writes, and they go away at COMMIT/ROLLBACK. Keys are locked in
        // ascending order (the array is sorted and deduplicated in Swift, and the aggregate
        // consumes the sorted subquery row by row), so overlapping batches cannot deadlock.
        // The same round trip turns `synchronous_commit` off for this transaction when $3 says
        // no message of the batch needs a durable commit (`durable: false`, docs/PROTOCOL.md);
        // otherwise the server's setting stays as configured. It also sets the planner settings
        // of the batch's statements (``plannerSettings``), for this transaction only: as startup
        // parameters of the connection they would make PgBouncer refuse it ("unsupported startup
        // parameter"), and a pooler in transaction mode would not keep them anyway.
        let planner = Self.plannerSettings.map { "set_config('\($0.name)', '\($0.value)', true)" }
            .joined(separator: " || ")
        lockObjects = PostgresNamedStatement(
            sql: """
                SELECT count(pg_advisory_xact_lock($1::int4, k.key)), \
                CASE WHEN $3::bool THEN set_config('synchronous_commit', 'off', true) END, \
                \(planner) \
                FROM (SELECT key FROM unnest($2::int4[]) AS u(key) ORDER BY key) AS k
                """)
        // The inbox state in one statement: the batch's ids already applied, then the last
        // sequence of each object that has one, told apart by the first column. LATERAL ... LIMIT 1
        // probes the primary key once per key, whatever the tables' sizes. The outbox checks ride on
        // the same round trip, a later statement than the object locks: every outbox row committed
        // before the message was sent is in its snapshot.
        let outbox = SQLIdentifier.quoted(configuration.outboxTable)
        inboxState = Self.inboxState(applied: applied, sequence: sequence, outbox: outbox)
        readInbox = PostgresNamedStatement(sql: inboxState(1, false))
        readInboxChecking = PostgresNamedStatement(sql: inboxState(1, true))
        inboxWrites = Self.inboxWrites(applied: applied, sequence: sequence)
        // Data-modifying CTEs run even when unreferenced.
        writeInbox = PostgresNamedStatement(sql: "WITH \(inboxWrites(1)) SELECT 1")
        pruneApplied = """
            WITH deleted AS (
                DELETE FROM \(applied) WHERE "applied_at" < now() - make_interval(secs => $1::float8) RETURNING 1
            ) SELECT count(*)::int8 FROM deleted
            """
        // COLLATE "C": byte order, the fastest comparison for the primary key index. No index
        // on applied_at: it would cost every apply an index insertion, while pruning (rare)
        // can afford a sequential scan, which on PostgreSQL blocks no writer.
        // fillfactor 70 on the sequence table leaves room in each page for HOT updates of
        // last_seq (no index insertion per update).
        workerTablesDDL = [
            """
            CREATE TABLE IF NOT EXISTS \(applied) (
                "message_id" text COLLATE "C" NOT NULL PRIMARY KEY,
                "applied_at" timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS \(sequence) ("sender" text COLLATE "C" NOT NULL, \
            "object_pk" text COLLATE "C" NOT NULL, "last_seq" bigint NOT NULL, PRIMARY KEY ("sender", "object_pk")) \
            WITH (fillfactor = 70)
            """,
            "CREATE TABLE IF NOT EXISTS \(schemaVersion) (\"version\" integer NOT NULL)",
        ]
    }

    /// The CTEs of ``inboxWrites``: `$n` the ids, `$n+1 … $n+3` the sequences' senders, pks, values.
    private static func inboxWrites(applied: String, sequence: String) -> @Sendable (Int) -> String {
        { first in
            """
            signal_worker_applied AS (
                INSERT INTO \(applied) ("message_id", "applied_at") SELECT m, now() FROM unnest($\(first)::text[]) AS m
            ), signal_worker_sequences AS (
                INSERT INTO \(sequence) ("sender", "object_pk", "last_seq")
                SELECT x.s, x.p, x.q FROM unnest($\(first + 1)::text[], $\(first + 2)::text[], $\(first + 3)::int8[]) AS x(s, p, q)
                ON CONFLICT ("sender", "object_pk") DO UPDATE SET "last_seq" = EXCLUDED."last_seq"
            )
            """
        }
    }

    /// The text of the inbox state's read (see `init`), its parameters numbered from `first`: the
    /// ids, the objects' senders and pks, and with `checking` the outbox checks' senders, pks and
    /// sequences.
    private static func inboxState(applied: String, sequence: String, outbox: String) -> @Sendable (Int, Bool) -> String {
        { first, checking in
            let state = """
                SELECT false, a."message_id", NULL::text, NULL::int8 FROM unnest($\(first)::text[]) AS m(id) \
                CROSS JOIN LATERAL (SELECT "message_id" FROM \(applied) WHERE "message_id" = m.id LIMIT 1) AS a \
                UNION ALL \
                SELECT true, o.sender, o.pk, s."last_seq" FROM unnest($\(first + 1)::text[], $\(first + 2)::text[]) AS o(sender, pk) \
                CROSS JOIN LATERAL (SELECT "last_seq" FROM \(sequence) WHERE "sender" = o.sender AND "object_pk" = o.pk \
                LIMIT 1) AS s
                """
            guard checking else { return state }
            return state + """
                 UNION ALL \
                SELECT NULL::bool, c.sender, c.pk, c.before \
                FROM unnest($\(first + 3)::text[], $\(first + 4)::text[], $\(first + 5)::int8[]) AS c(sender, pk, before) \
                WHERE EXISTS (SELECT 1 FROM \(outbox) AS b WHERE b."sender" = c.sender AND b."object_pk" = c.pk \
                AND (c.before IS NULL OR b."seq" < c.before))
                """
        }
    }

    /// The largest batch (in messages) whose first receiver read rides on the inbox state's
    /// (``inboxWithRead(_:inboxFrom:checking:)``); larger batches read them one after the other.
    ///
    /// The round trip saved is what a small batch waits for: one-at-a-time updates answered in a
    /// median 1,994 instead of 2,209 µs (8 alternating runs of `worker-benchmark --only postgres`,
    /// the database on the same 2 cores). In batches of 1,000 the joined statement cost more than
    /// the round trip it saves (32,044 against 36,817 creates/s, same runs); at `--max-batch` 16
    /// and 128 the rates were the same either way (4 alternating runs each).
    static let joinedReadLimit = 128

    /// The inbox state's read and a receiver's read in one statement (one round trip less per
    /// batch): `FULL JOIN ... ON false` puts the rows of both side by side, each with the other's
    /// columns NULL, so neither needs to know the other's columns. The first column is true on
    /// the inbox's rows and NULL on the receiver's, which follow the inbox's four columns. The
    /// receiver's statement keeps its parameters (`$1 … $k`), the inbox's are numbered from
    /// `first` = k + 1 on.
    ///
    /// Only a join can put them together (a `UNION` would need the receiver's columns), and with
    /// hash and merge joins off (``plannerSettings``) PostgreSQL still picks the merge join, at
    /// its "disabled" cost: it reads each side once. That cost is why JIT is off.
    func inboxWithRead(_ read: String, inboxFrom first: Int, checking: Bool) -> PostgresNamedStatement {
        PostgresNamedStatement(
            sql: """
                SELECT i.*, r.* FROM (SELECT true AS signal_worker_inbox, s.* FROM (\(inboxState(first, checking))) AS s) AS i \
                FULL JOIN (\(read)) AS r ON false
                """)
    }

    /// Planner settings of a batch's statements, set by ``lockObjects`` for its transaction.
    ///
    /// Every statement of a batch touches the batch's keys (at most a few thousand rows) in
    /// tables that may hold millions. Seeing 1,000 constant keys, the planner prefers hash joins
    /// over full table scans (e.g. for `UPDATE ... FROM unnest(...)`), which measured 5x slower
    /// at 100,000 rows and grows with the table: hash and merge joins are off.
    ///
    /// The statements are prepared once per connection (``PostgresNamedStatement``), but with
    /// `plan_cache_mode = auto` PostgreSQL still planned every execution again (their array
    /// parameters never let a generic plan look cheaper: `pg_prepared_statements` showed 600
    /// custom plans out of 600). Their plan shape is fixed by `LATERAL ... LIMIT 1` and the join
    /// settings above, so the generic plan is the same plan without the planning: measured on
    /// one-message transactions, the read went from 536 to 270 µs and a whole batch from about
    /// 2.4 to 1.9 ms. `plan_cache_mode` exists since PostgreSQL 12 (Django 4.2 needs 12 or later).
    ///
    /// JIT compilation is off: the statements are short, and the joined read
    /// (``inboxWithRead(_:inboxFrom:checking:)``) carries the "disabled" cost of its merge join,
    /// far above `jit_above_cost`, which would otherwise compile it on every execution.
    static let plannerSettings: [(name: String, value: String)] = [
        ("enable_hashjoin", "off"),
        ("enable_mergejoin", "off"),
        ("plan_cache_mode", "force_generic_plan"),
        ("jit", "off"),
    ]

    /// The advisory lock key of an object: an integer primary key itself when it fits 32 bits
    /// (the key earlier releases took for a user id, so that they and this one keep order together
    /// during a rolling upgrade), else a fold of its ``SignalInbox/StableHash``. Two objects sharing
    /// a key only serialize a little more.
    static func lockKey(_ object: ObjectKey) -> Int32 {
        if let integer = Int64(object.pk) {
            return Int32(exactly: integer) ?? Int32(truncatingIfNeeded: integer ^ (integer >> 32))
        }
        let hash = StableHash.of(object.sender.utf8 + [0xFF] + object.pk.utf8)
        return Int32(truncatingIfNeeded: hash ^ (hash >> 32))
    }

    /// Runs one batch inside an open transaction: lock, read, plan, write.
    func applyBatch(_ batch: StoreBatch, on connection: PostgresConnection, logger: Logger) async throws -> InboxPlan {
        var lock = PostgresBindings(capacity: 3)
        lock.append(namespace)
        lock.append(Set(batch.objects.map(Self.lockKey)).sorted())
        lock.append(batch.mayCommitWithoutSync)
        _ = try await lockObjects.run(lock, on: connection, logger: logger) { try $0.decode((Int64, String?, String).self) }

        // The inbox state, and in a small batch the first receiver read in the same round trip.
        let checks = batch.outboxChecks
        var state = InboxState()
        var rows: [[SQLRow]] = []
        rows.reserveCapacity(batch.reads.count)
        var reads = batch.reads[...]
        if let first = reads.first, !first.isEmpty, batch.messageIDs.count <= Self.joinedReadLimit {
            reads = reads.dropFirst()
            var binds = Self.binds(first, extra: checks.isEmpty ? 3 : 6)
            let statement = inboxWithRead(first.sql, inboxFrom: binds.count + 1, checking: !checks.isEmpty)
            Self.appendInboxState(batch, to: &binds)
            let joined = try await statement.run(binds, on: connection, logger: logger) { try JoinedRow($0) }
            var read: [SQLRow] = []
            read.reserveCapacity(joined.count)
            for row in joined {
                switch row {
                case .inbox(let isSequence, let text, let pk, let last):
                    Self.record(isSequence, text, pk, last, into: &state)
                case .read(let values):
                    read.append(values)
                }
            }
            rows.append(read)
        } else {
            var binds = PostgresBindings(capacity: checks.isEmpty ? 3 : 6)
            Self.appendInboxState(batch, to: &binds)
            let inboxRows = try await (checks.isEmpty ? readInbox : readInboxChecking).run(binds, on: connection, logger: logger) {
                row in try row.decode((Bool?, String?, String?, Int64?).self)
            }
            for (isSequence, first, pk, last) in inboxRows { Self.record(isSequence, first, pk, last, into: &state) }
        }
        for read in reads { rows.append(try await run(read, on: connection, logger: logger)) }
        let planned = try batch.plan(state, rows)
        let recordsInbox = !(planned.applied.isEmpty && planned.sequences.isEmpty)
        // The inbox's record rides on the last receiver write when that is a plain INSERT, UPDATE
        // or DELETE (one round trip less per batch): different tables, and a data-modifying CTE
        // runs exactly once whether or not the query reads it.
        if recordsInbox, let last = planned.writes.last, Self.isDataModifying(last) {
            for write in planned.writes.dropLast() { _ = try await run(write, on: connection, logger: logger) }
            _ = try await run(last, on: connection, logger: logger, carrying: planned)
            return planned
        }
        for write in planned.writes { _ = try await run(write, on: connection, logger: logger) }
        guard recordsInbox else { return planned }
        var inbox = PostgresBindings(capacity: 4)
        Self.appendInbox(planned, to: &inbox)
        _ = try await writeInbox.run(inbox, on: connection, logger: logger) { _ in () }
        return planned
    }

    /// Binds the inbox state's arrays (``inboxState``): the batch's ids, its objects, and its
    /// outbox checks if it has any.
    static func appendInboxState(_ batch: StoreBatch, to binds: inout PostgresBindings) {
        binds.append(batch.messageIDs)
        binds.append(batch.objects.map(\.sender))
        binds.append(batch.objects.map(\.pk))
        let checks = batch.outboxChecks
        guard !checks.isEmpty else { return }
        binds.append(checks.map(\.object.sender))
        binds.append(checks.map(\.object.pk))
        binds.append(NullableArray(type: .integer, elements: checks.map { $0.before.map(SQLValue.integer) ?? .null }))
    }

    /// Adds one row of the inbox state to `state` (its first column tells which part it is).
    static func record(_ isSequence: Bool?, _ first: String?, _ pk: String?, _ last: Int64?, into state: inout InboxState) {
        switch isSequence {
        case false?:
            if let first { state.appliedMessageIDs.insert(first) }
        case true?:
            if let sender = first, let pk, let last { state.lastSequences[ObjectKey(sender: sender, pk: pk)] = last }
        case nil:
            if let sender = first, let pk { state.behind.insert(OutboxCheck(object: ObjectKey(sender: sender, pk: pk), before: last)) }
        }
    }

    /// Binds the four arrays of ``inboxWrites``: the plan's applied ids and its sequences.
    static func appendInbox(_ planned: InboxPlan, to binds: inout PostgresBindings) {
        binds.append(planned.applied)
        binds.append(planned.sequences.map(\.object.sender))
        binds.append(planned.sequences.map(\.object.pk))
        binds.append(planned.sequences.map(\.sequence))
    }

    /// Whether `statement` is an INSERT, UPDATE or DELETE (a `SELECT` in a CTE that nothing reads
    /// would not run at all, so only these may carry the inbox's writes).
    static func isDataModifying(_ statement: BatchStatement) -> Bool {
        let first = statement.sql.prefix { !$0.isWhitespace && $0 != "(" }
        return ["INSERT", "UPDATE", "DELETE"].contains(first.uppercased())
    }

    /// A receiver statement's binds: its rows' columns as arrays, then its parameters (room for
    /// `extra` more).
    static func binds(_ statement: BatchStatement, extra: Int) -> PostgresBindings {
        var binds = PostgresBindings(capacity: statement.columns.count + statement.parameters.count + extra)
        let arity = statement.columns.count
        for (index, type) in statement.columns.enumerated() {
            let column = stride(from: index, to: statement.values.count, by: arity).map { statement.values[$0] }
            binds.append(NullableArray(type: type, elements: column))
        }
        for parameter in statement.parameters {
            switch parameter {
            case .null: binds.appendNull()
            case .integer(let value): binds.append(value)
            case .real(let value): binds.append(value)
            case .text(let value): binds.append(value)
            }
        }
        return binds
    }

    /// Runs a receiver's statement: its rows' columns bound as arrays, then its parameters; with
    /// `inbox`, the plan's inbox writes (``inboxWrites``) in the same statement, bound after them.
    func run(
        _ statement: BatchStatement, on connection: PostgresConnection, logger: Logger,
        carrying inbox: InboxPlan? = nil
    ) async throws -> [SQLRow] {
        guard !statement.isEmpty else { return [] }
        var binds = Self.binds(statement, extra: 4)
        let counts = statement.expectation == .oneChangePerRow
        var ctes = ""
        if let inbox {
            ctes = ", " + inboxWrites(binds.count + 1)
            Self.appendInbox(inbox, to: &binds)
        }
        guard counts || inbox != nil else {
            return try await PostgresNamedStatement(sql: statement.sql).run(binds, on: connection, logger: logger) {
                try PostgresValues.row($0)
            }
        }
        // Counted by the server: one row back instead of one per changed row.
        let result = counts ? "SELECT count(*)::int8 FROM signal_worker_changed" : "SELECT 0::int8"
        let sql = "WITH signal_worker_changed AS (\(statement.sql))\(ctes) \(result)"
        let changed = try await PostgresNamedStatement(sql: sql).run(binds, on: connection, logger: logger) {
            try $0.decode(Int64.self)
        }.first ?? 0
        if counts, changed != Int64(statement.rowCount) {
            // A row read under our object lock vanished before the write (deleted by Django
            // meanwhile): refuse rather than acknowledge writes that did not happen.
            throw StoreError(
                .rejected, "\(Int64(statement.rowCount) - changed) row(s) changed during the transaction",
                operation: statement.purpose)
        }
        return []
    }
}

/// One row of ``PostgresStatements/inboxWithRead(_:inboxFrom:checking:)``: the inbox state's
/// (its four columns) or the receiver read's (the columns after them).
enum JoinedRow: Sendable {
    case inbox(Bool?, String?, String?, Int64?)
    case read(SQLRow)

    /// Columns before the receiver's: the marker and the inbox state's four.
    static let inboxColumns = 5

    init(_ row: PostgresRow) throws {
        var index = row.startIndex
        guard index != row.endIndex, row[index].bytes != nil else {
            self = .read(try PostgresValues.cells(row[row.index(row.startIndex, offsetBy: Self.inboxColumns)...]))
            return
        }
        func next<Value: PostgresDecodable>(_ type: Value.Type) throws -> Value? {
            index = row.index(after: index)
            let cell = row[index]
            return cell.bytes == nil ? nil : try cell.decode(Value.self)
        }
        self = .inbox(try next(Bool.self), try next(String.self), try next(String.self), try next(Int64.self))
    }
}
