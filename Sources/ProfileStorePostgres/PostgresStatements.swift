import Logging
import PostgresNIO
import ProfileReceiver

/// The SQL of the store, built once from the configured table names (the batch's statements
/// as named prepared statements, see ``PostgresNamedStatement``), and the batch transaction
/// that runs it: a constant number of round trips per batch, whatever its size
/// (BEGIN, lock the users, read, write, COMMIT).
struct PostgresStatements: Sendable {
    let lockUsers: PostgresNamedStatement
    let readSnapshot: PostgresNamedStatement
    let writeBatch: PostgresNamedStatement
    let pruneApplied: String
    let workerTablesDDL: [String]
    let createUserTable: String
    let createProfileTable: [String]
    let profileTable: String
    let userTable: String
    let namespace: Int32
    /// The `sender` of the profile receiver's rows in the sequence table.
    let senderLabel: String
    let readSchemaVersion: String
    let legacySequenceTable: String
    let moveLegacySequences: String
    let dropLegacySequences: String
    let writeSchemaVersion: [String]

    init(_ configuration: PostgresStoreConfiguration) {
        let profile = quoted(configuration.profileTable)
        let user = quoted(configuration.userTable)
        let applied = quoted(configuration.appliedTable)
        let sequence = quoted(configuration.sequenceTable)
        profileTable = profile
        userTable = user
        namespace = configuration.advisoryLockNamespace
        senderLabel = configuration.senderLabel
        let schemaVersion = quoted(configuration.schemaVersionTable)
        let legacy = quoted(configuration.legacySequenceTable)
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

        // Per-user ordering across several workers sharing the database: each batch takes a
        // transaction-scoped advisory lock per user before it reads anything, so two batches
        // touching one user run one after the other, and the second reads what the first
        // committed (READ COMMITTED takes a fresh snapshot per statement, and the reads are
        // later statements than the lock). Advisory locks rather than row locks because the
        // rows may not exist yet (a `created` message, a user without a sequence row), they
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
        lockUsers = PostgresNamedStatement(
            sql: """
                SELECT count(pg_advisory_xact_lock($1::int4, k.key)), \
                CASE WHEN $3::bool THEN set_config('synchronous_commit', 'off', true) END, \
                \(planner) \
                FROM (SELECT key FROM unnest($2::int4[]) AS u(key) ORDER BY key) AS k
                """)
        // Everything the plan needs, in one statement (one round trip): one row per user of the
        // batch (exists?, profile with birthdate as days since 2000-01-01, independent of
        // DateStyle, last sequence), then one row per message id already applied, told apart by
        // the first column. Reads probe an index once per key: LATERAL ... LIMIT 1 fixes that plan
        // shape. Left to itself the planner sees 1,000 constant keys and picks hash joins over
        // full scans of the tables, several times slower once they hold ~100,000 rows, and linear
        // in their size.
        readSnapshot = PostgresNamedStatement(
            sql: """
                SELECT false, u.id, au.found IS NOT NULL, p."user_id" IS NOT NULL, p."profile_type"::text, p."sex"::text, \
                (p."birthdate" - DATE '2000-01-01')::int4, s."last_seq"::int8, NULL::text \
                FROM unnest($1::int8[]) AS u(id) \
                LEFT JOIN LATERAL (SELECT true AS found FROM \(user) WHERE "id" = u.id LIMIT 1) AS au ON true \
                LEFT JOIN LATERAL (SELECT "user_id", "profile_type", "sex", "birthdate" FROM \(profile) \
                WHERE "user_id" = u.id LIMIT 1) AS p ON true \
                LEFT JOIN LATERAL (SELECT "last_seq" FROM \(sequence) WHERE "sender" = $3::text AND "object_pk" = u.id::text \
                LIMIT 1) AS s ON true \
                UNION ALL \
                SELECT true, NULL, NULL, NULL, NULL, NULL, NULL, NULL, a."message_id" FROM unnest($2::text[]) AS m(id) \
                CROSS JOIN LATERAL (SELECT "message_id" FROM \(applied) WHERE "message_id" = m.id LIMIT 1) AS a
                """)
        // All writes of a batch in one statement; data-modifying CTEs run even when unreferenced.
        // The UPDATE's join is a nested loop over the user_id index because the batch's
        // transaction disables hash and merge joins (``plannerSettings``, set by lockUsers).
        writeBatch = PostgresNamedStatement(
            sql: """
                WITH inserted AS (
                    INSERT INTO \(profile) ("profile_type", "sex", "birthdate", "user_id")
                    SELECT x.t, x.s, x.b, x.u FROM unnest($1::int8[], $2::text[], $3::text[], $4::date[]) AS x(u, t, s, b)
                ), updated AS (
                    UPDATE \(profile) AS p SET "profile_type" = x.t, "sex" = x.s, "birthdate" = x.b
                    FROM unnest($5::int8[], $6::text[], $7::text[], $8::date[]) AS x(u, t, s, b)
                    WHERE p."user_id" = x.u
                    RETURNING 1
                ), applied AS (
                    INSERT INTO \(applied) ("message_id", "applied_at") SELECT m, now() FROM unnest($9::text[]) AS m
                ), sequences AS (
                    INSERT INTO \(sequence) ("sender", "object_pk", "last_seq")
                    SELECT $12::text, x.u::text, x.s FROM unnest($10::int8[], $11::int8[]) AS x(u, s)
                    ON CONFLICT ("sender", "object_pk") DO UPDATE SET "last_seq" = EXCLUDED."last_seq"
                )
                SELECT count(*)::int8 FROM updated
                """)
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
            "CREATE TABLE IF NOT EXISTS \(quoted(configuration.schemaVersionTable)) (\"version\" integer NOT NULL)",
        ]
        // Django 5.2's DDL (sqlmigrate auth 0001-0012, accounts 0001).
        createUserTable = """
            CREATE TABLE IF NOT EXISTS \(user) ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, \
            "password" varchar(128) NOT NULL, "last_login" timestamp with time zone NULL, \
            "is_superuser" boolean NOT NULL, "username" varchar(150) NOT NULL UNIQUE, \
            "first_name" varchar(150) NOT NULL, "last_name" varchar(150) NOT NULL, "email" varchar(254) NOT NULL, \
            "is_staff" boolean NOT NULL, "is_active" boolean NOT NULL, "date_joined" timestamp with time zone NOT NULL)
            """
        createProfileTable = [
            """
            CREATE TABLE \(profile) ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, \
            "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "birthdate" date NULL, \
            "user_id" integer NOT NULL UNIQUE)
            """,
            """
            ALTER TABLE \(profile) ADD CONSTRAINT \(quoted(configuration.profileTable + "_user_id_fk_" + configuration.userTable + "_id")) \
            FOREIGN KEY ("user_id") REFERENCES \(user) ("id") DEFERRABLE INITIALLY DEFERRED
            """,
        ]
    }

    /// Planner settings of a batch's statements, set by ``lockUsers`` for its transaction.
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
    static let plannerSettings: [(name: String, value: String)] = [
        ("enable_hashjoin", "off"),
        ("enable_mergejoin", "off"),
        ("plan_cache_mode", "force_generic_plan"),
    ]

    /// The advisory lock key of a user id: the id itself when it fits 32 bits, else a fold
    /// of both halves (two users sharing a key only serialize a little more).
    static func lockKey(_ userID: Int64) -> Int32 {
        Int32(exactly: userID) ?? Int32(truncatingIfNeeded: userID ^ (userID >> 32))
    }

    /// Runs one batch inside an open transaction: lock, read, plan, write.
    func applyBatch(
        _ messages: [ProfileMessage], plan: @Sendable (StoreSnapshot) -> BatchPlan, on connection: PostgresConnection,
        logger: Logger
    ) async throws -> BatchPlan {
        var userSet = Set<Int64>()
        var idSet = Set<String>()
        for message in messages {
            userSet.insert(message.userID)
            idSet.insert(message.id)
        }
        let users = userSet.sorted()
        let lockKeys = Set(users.map(Self.lockKey)).sorted()

        var lock = PostgresBindings(capacity: 3)
        lock.append(namespace)
        lock.append(lockKeys)
        lock.append(messages.mayCommitWithoutSync)
        _ = try await lockUsers.run(lock, on: connection, logger: logger) { try $0.decode((Int64, String?, String).self) }

        var snapshot = StoreSnapshot()
        var readBinds = PostgresBindings(capacity: 3)
        readBinds.append(users)
        readBinds.append(Array(idSet))
        readBinds.append(senderLabel)
        let rows = try await readSnapshot.run(readBinds, on: connection, logger: logger) { row in
            try row.decode((Bool, Int64?, Bool?, Bool?, String?, String?, Int32?, Int64?, String?).self)
        }
        for (isAppliedID, userID, exists, hasProfile, profileType, sex, birthdateDays, lastSequence, appliedID) in rows {
            if isAppliedID {
                if let appliedID { snapshot.appliedMessageIDs.insert(appliedID) }
                continue
            }
            guard let userID else { continue }
            if exists == true { snapshot.existingUsers.insert(userID) }
            if let lastSequence { snapshot.lastSequences[userID] = lastSequence }
            guard hasProfile == true, let profileType else { continue }
            var birthdate: DjangoDate?
            if let birthdateDays {
                guard let date = PostgresDates.date(fromDays: Int(birthdateDays)) else {
                    throw StoreError(
                        .rejected, "the stored birthdate of user \(userID) is outside 0001-01-01...9999-12-31",
                        operation: "read profiles")
                }
                birthdate = date
            }
            snapshot.profiles[userID] = ProfileRow(userID: userID, profileType: profileType, sex: sex, birthdate: birthdate)
        }

        let planned = plan(snapshot)
        guard !(planned.writesNoProfiles && planned.applied.isEmpty && planned.sequences.isEmpty) else { return planned }

        var writes = PostgresBindings(capacity: 12)
        for rows in [planned.inserts, planned.updates] {
            writes.append(rows.map(\.userID))
            writes.append(NullableTextArray(elements: rows.map(\.profileType)))
            writes.append(NullableTextArray(elements: rows.map(\.sex)))
            writes.append(NullableDateArray(elements: rows.map(\.birthdate)))
        }
        writes.append(planned.applied)
        writes.append(planned.sequences.map(\.userID))
        writes.append(planned.sequences.map(\.sequence))
        writes.append(senderLabel)
        let updatedCount = try await writeBatch.run(writes, on: connection, logger: logger) { try $0.decode(Int64.self) }
            .last ?? 0
        guard updatedCount == Int64(planned.updates.count) else {
            // A profile read under our user lock vanished before the update (deleted by Django
            // meanwhile): refuse rather than acknowledge writes that did not happen.
            throw StoreError(
                .rejected, "\(Int64(planned.updates.count) - updatedCount) profile(s) changed during the transaction",
                operation: "write batch")
        }
        return planned
    }
}

/// Quotes an SQL identifier (`"name"`, inner quotes doubled).
func quoted(_ identifier: String) -> String {
    var out = "\""
    for character in identifier {
        if character == "\"" { out += "\"\"" } else { out.append(character) }
    }
    return out + "\""
}
